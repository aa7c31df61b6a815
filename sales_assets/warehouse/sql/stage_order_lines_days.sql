-- Staged lines per order_date: the loader refuses rows outside the days it replaces.
SELECT order_date, COUNT(*) AS line_count
FROM stage_order_lines
GROUP BY order_date
ORDER BY order_date
