-- Day-replace, step 2 (same transaction): the staged curated lines become the day.
INSERT INTO sales.fact_sales (
    order_id, line_number, sale_date, order_timestamp, updated_at, customer_id, product_id,
    channel, store_id, status, currency, quantity, unit_price, gross, discount_amount, net,
    tax_amount, total, ingest_run_id, loaded_at
)
SELECT
    order_id, line_number, order_date, order_timestamp, updated_at, customer_id, product_id,
    channel, store_id, status, currency, quantity, unit_price, gross, discount_amount, net,
    tax_amount, total, ingest_run_id, :loaded_at
FROM stage_order_lines
