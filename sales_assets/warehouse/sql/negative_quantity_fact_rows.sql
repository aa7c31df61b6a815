-- The day's fact rows with a negative quantity (returns are a status, never a negative line).
SELECT COUNT(*) AS negative_rows
FROM sales.fact_sales
WHERE sale_date = :sale_date
  AND quantity < 0
