-- Revenue per day, currency, channel and store (store_id is null outside the store channel).
CREATE OR REPLACE VIEW reporting.sales_by_channel AS
SELECT
    f.sale_date,
    f.currency,
    f.channel,
    f.store_id,
    COUNT(DISTINCT f.order_id) AS orders,
    SUM(f.quantity) AS units,
    SUM(f.net) AS net_revenue
FROM sales.fact_sales AS f
WHERE f.status IN ('completed', 'pending')
GROUP BY f.sale_date, f.currency, f.channel, f.store_id
