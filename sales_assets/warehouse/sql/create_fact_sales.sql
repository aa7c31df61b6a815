-- Grain: one order line, key (order_id, line_number). Redshift treats PRIMARY KEY as
-- informational (not enforced); the duplicate-key asset check is what proves uniqueness.
-- DISTKEY customer_id co-locates a customer's lines for customer-level joins; SORTKEY
-- sale_date makes the day-replace DELETE and date-range scans touch few blocks. The sort key
-- column stays ENCODE RAW (AWS advice: a compressed sort key defeats zone maps).
CREATE TABLE IF NOT EXISTS sales.fact_sales (
    order_id        VARCHAR(128)  NOT NULL ENCODE zstd,
    line_number     INTEGER       NOT NULL ENCODE az64,
    sale_date       DATE          NOT NULL ENCODE raw,
    order_timestamp TIMESTAMP     NOT NULL ENCODE az64,
    updated_at      TIMESTAMP     NOT NULL ENCODE az64,
    customer_id     VARCHAR(128)  NOT NULL ENCODE zstd,
    product_id      VARCHAR(128)  NOT NULL ENCODE zstd,
    channel         VARCHAR(32)   NOT NULL ENCODE zstd,
    store_id        VARCHAR(128)           ENCODE zstd,
    status          VARCHAR(32)   NOT NULL ENCODE zstd,
    currency        VARCHAR(3)    NOT NULL ENCODE zstd,
    quantity        INTEGER       NOT NULL ENCODE az64,
    unit_price      DECIMAL(18,2) NOT NULL ENCODE az64,
    gross           DECIMAL(18,2) NOT NULL ENCODE az64,
    discount_amount DECIMAL(18,2) NOT NULL ENCODE az64,
    net             DECIMAL(18,2) NOT NULL ENCODE az64,
    tax_amount      DECIMAL(18,2) NOT NULL ENCODE az64,
    total           DECIMAL(18,2) NOT NULL ENCODE az64,
    ingest_run_id   VARCHAR(128)           ENCODE zstd,
    loaded_at       TIMESTAMP     NOT NULL ENCODE az64,
    PRIMARY KEY (order_id, line_number)
)
DISTSTYLE KEY
DISTKEY (customer_id)
SORTKEY (sale_date)
