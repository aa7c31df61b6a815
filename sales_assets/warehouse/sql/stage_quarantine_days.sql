-- Staged quarantine lines per order_date: the loader refuses rows outside the loaded days.
SELECT order_date, COUNT(*) AS line_count
FROM stage_quarantine
GROUP BY order_date
ORDER BY order_date
