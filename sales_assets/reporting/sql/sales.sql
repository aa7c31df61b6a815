-- The star's fact for Power BI: one row per order line, with is_revenue marking lines that
-- count as sales (cancelled and returned lines do not).
CREATE OR REPLACE VIEW reporting.sales AS
SELECT
    order_id, line_number, sale_date, order_timestamp, customer_id, product_id, channel,
    store_id, status, currency, quantity, unit_price, gross, discount_amount, net,
    tax_amount, total,
    CASE WHEN status IN ('completed', 'pending') THEN TRUE ELSE FALSE END AS is_revenue
FROM sales.fact_sales
