-- Reconciliation figures of one day: line count and exact sum of net.
SELECT COUNT(*) AS line_count, SUM(net) AS net_sum
FROM sales.fact_sales
WHERE sale_date = :sale_date
