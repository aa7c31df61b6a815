-- Per day and currency: every line, and the share of them returned or cancelled.
CREATE OR REPLACE VIEW reporting.returns_and_cancellations AS
SELECT
    f.sale_date,
    f.currency,
    COUNT(*) AS order_lines,
    SUM(CASE WHEN f.status = 'returned' THEN 1 ELSE 0 END) AS returned_lines,
    SUM(CASE WHEN f.status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled_lines,
    SUM(f.net) AS net_all_lines,
    SUM(CASE WHEN f.status = 'returned' THEN f.net ELSE 0 END) AS returned_net,
    SUM(CASE WHEN f.status = 'cancelled' THEN f.net ELSE 0 END) AS cancelled_net,
    CAST(
        CAST(SUM(CASE WHEN f.status = 'returned' THEN 1 ELSE 0 END) AS DECIMAL(18, 6)) / COUNT(*)
        AS DECIMAL(10, 6)
    ) AS returns_rate,
    CAST(
        CAST(SUM(CASE WHEN f.status = 'cancelled' THEN 1 ELSE 0 END) AS DECIMAL(18, 6)) / COUNT(*)
        AS DECIMAL(10, 6)
    ) AS cancellation_rate
FROM sales.fact_sales AS f
GROUP BY f.sale_date, f.currency
