-- Keys of the day's fact rows that occur more than once anywhere in fact_sales (a key may
-- also collide with another day's copy, e.g. after an order's timestamp moved).
SELECT f.order_id, f.line_number
FROM sales.fact_sales AS f
JOIN (
    SELECT DISTINCT order_id, line_number
    FROM sales.fact_sales
    WHERE sale_date = :sale_date
) AS day_keys
    ON day_keys.order_id = f.order_id AND day_keys.line_number = f.line_number
GROUP BY f.order_id, f.line_number
HAVING COUNT(*) > 1
