-- Revenue per day, currency, customer country and region (completed and pending lines).
CREATE OR REPLACE VIEW reporting.sales_by_region AS
SELECT
    f.sale_date,
    f.currency,
    COALESCE(c.country, 'unknown') AS country,
    COALESCE(c.region, 'unknown') AS region,
    COUNT(DISTINCT f.order_id) AS orders,
    SUM(f.quantity) AS units,
    SUM(f.net) AS net_revenue
FROM sales.fact_sales AS f
JOIN sales.dim_customer AS c ON c.customer_id = f.customer_id
WHERE f.status IN ('completed', 'pending')
GROUP BY f.sale_date, f.currency, COALESCE(c.country, 'unknown'), COALESCE(c.region, 'unknown')
