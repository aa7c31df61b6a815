-- Revenue per day, currency and product category (completed and pending lines).
CREATE OR REPLACE VIEW reporting.sales_by_category AS
SELECT
    f.sale_date,
    f.currency,
    COALESCE(p.category, 'unknown') AS category,
    COUNT(DISTINCT f.order_id) AS orders,
    SUM(f.quantity) AS units,
    SUM(f.net) AS net_revenue
FROM sales.fact_sales AS f
JOIN sales.dim_product AS p ON p.product_id = f.product_id
WHERE f.status IN ('completed', 'pending')
GROUP BY f.sale_date, f.currency, COALESCE(p.category, 'unknown')
