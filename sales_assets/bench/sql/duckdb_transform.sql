-- The benchmark's DuckDB baseline: the curate transform as ONE statement over the landed pages.
-- Flatten (one row per order line), validate the contract's main rules, keep the newest copy of
-- each order (updated_at), price with DECIMAL and half-up rounding, write parquet partitioned by
-- order_date. {files} and {out_dir} are filled by the harness with quoted literals.
COPY (
    WITH raw AS (
        SELECT regexp_extract(filename, 'order_date=([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})', 1) AS order_date,
               unnest(string_split(content, chr(10))) AS line
        FROM read_text({files})
    ),
    orders AS (
        SELECT order_date,
               CAST(line AS JSON) AS j
        FROM raw
        WHERE line <> '' AND json_valid(line) AND json_type(CAST(line AS JSON)) = 'OBJECT'
    ),
    typed AS (
        SELECT CAST(order_date AS DATE) AS order_date,
               j ->> 'order_id' AS order_id,
               TRY_CAST(j ->> 'order_timestamp' AS TIMESTAMPTZ) AS order_ts,
               TRY_CAST(j ->> 'updated_at' AS TIMESTAMPTZ) AS updated_at,
               j ->> 'status' AS status,
               j ->> 'channel' AS channel,
               j ->> 'store_id' AS store_id,
               j ->> 'currency' AS currency,
               j -> 'customer' ->> 'customer_id' AS customer_id,
               CASE WHEN json_type(j -> 'lines') = 'ARRAY' THEN CAST(j -> 'lines' AS JSON[]) END AS lines
        FROM orders
        WHERE json_type(j -> 'order_id') = 'VARCHAR' AND j ->> 'order_id' <> ''
    ),
    latest AS (
        SELECT * FROM typed
        QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY updated_at DESC NULLS LAST) = 1
    ),
    order_lines AS (
        SELECT l.* EXCLUDE (lines), unnest(l.lines) AS line FROM latest AS l
        WHERE l.order_ts IS NOT NULL AND l.updated_at IS NOT NULL
          AND CAST(timezone('UTC', l.order_ts) AS DATE) = l.order_date
          AND l.status IN ('completed', 'pending', 'cancelled', 'returned')
          AND l.channel IN ('web', 'store', 'mobile', 'marketplace')
          AND l.currency IN ('USD', 'EUR', 'GBP', 'CAD', 'AUD', 'JPY', 'CHF', 'SEK', 'NOK', 'DKK',
                             'PLN', 'CZK', 'NZD', 'SGD', 'HKD', 'MXN', 'BRL', 'INR', 'CNY', 'ZAR')
          AND l.customer_id IS NOT NULL AND l.customer_id <> ''
          AND len(l.lines) > 0
    ),
    line_values AS (
        SELECT * EXCLUDE (line),
               TRY_CAST(line ->> 'line_number' AS DECIMAL(38, 9)) AS line_number_d,
               line ->> 'product_id' AS product_id,
               TRY_CAST(line ->> 'quantity' AS DECIMAL(38, 9)) AS quantity_d,
               TRY_CAST(line ->> 'unit_price' AS DECIMAL(38, 9)) AS unit_price_d,
               COALESCE(TRY_CAST(line ->> 'discount' AS DECIMAL(38, 9)), 0) AS discount_d,
               COALESCE(TRY_CAST(line ->> 'tax_rate' AS DECIMAL(38, 9)), 0) AS tax_rate_d
        FROM order_lines
        WHERE json_type(line) = 'OBJECT'
    ),
    valid AS (
        SELECT *,
               CAST(quantity_d AS DECIMAL(18, 0)) * CAST(unit_price_d AS DECIMAL(18, 2)) AS gross
        FROM line_values
        WHERE line_number_d >= 1 AND line_number_d = trunc(line_number_d)
          AND product_id IS NOT NULL AND product_id <> ''
          AND quantity_d >= 1 AND quantity_d = trunc(quantity_d)
          AND unit_price_d >= 0 AND unit_price_d = round(unit_price_d, 2)
          AND discount_d BETWEEN 0 AND 1 AND tax_rate_d BETWEEN 0 AND 1
        -- A repeated line_number inside one order is quarantined, not priced twice.
        QUALIFY count(*) OVER (PARTITION BY order_id, line_number_d) = 1
    ),
    priced AS (
        SELECT *, round(gross * discount_d, 2) AS discount_amount FROM valid
    ),
    netted AS (
        SELECT *, gross - discount_amount AS net FROM priced
    )
    SELECT order_id,
           CAST(line_number_d AS INTEGER) AS line_number,
           timezone('UTC', order_ts) AS order_timestamp,
           timezone('UTC', updated_at) AS updated_at,
           customer_id, product_id, status, channel, store_id, currency,
           CAST(quantity_d AS INTEGER) AS quantity,
           CAST(unit_price_d AS DECIMAL(18, 2)) AS unit_price,
           CAST(gross AS DECIMAL(18, 2)) AS gross,
           CAST(discount_amount AS DECIMAL(18, 2)) AS discount_amount,
           CAST(net AS DECIMAL(18, 2)) AS net,
           CAST(round(net * tax_rate_d, 2) AS DECIMAL(18, 2)) AS tax_amount,
           CAST(net + round(net * tax_rate_d, 2) AS DECIMAL(18, 2)) AS total,
           order_date
    FROM netted
) TO {out_dir} (FORMAT parquet, PARTITION_BY (order_date), OVERWRITE_OR_IGNORE true)
