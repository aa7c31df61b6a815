-- One row per day and currency. Revenue columns count completed and pending lines only;
-- cancelled and returned lines are in reporting.returns_and_cancellations.
CREATE OR REPLACE VIEW reporting.daily_sales AS
SELECT
    f.sale_date,
    d.year,
    d.quarter,
    d.month,
    d.iso_week,
    d.day_name,
    d.is_weekend,
    f.currency,
    COUNT(DISTINCT f.order_id) AS orders,
    COUNT(*) AS order_lines,
    SUM(f.quantity) AS units,
    SUM(f.gross) AS gross_sales,
    SUM(f.discount_amount) AS discounts,
    SUM(f.net) AS net_revenue,
    SUM(f.tax_amount) AS tax,
    SUM(f.total) AS total_with_tax
FROM sales.fact_sales AS f
JOIN sales.dim_date AS d ON d.date_key = f.sale_date
WHERE f.status IN ('completed', 'pending')
GROUP BY f.sale_date, d.year, d.quarter, d.month, d.iso_week, d.day_name, d.is_weekend, f.currency
