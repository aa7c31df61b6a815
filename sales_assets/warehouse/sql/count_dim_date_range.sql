-- Calendar rows held in a span: the loader writes a year only when it is not held whole.
SELECT COUNT(*) AS held_days
FROM sales.dim_date
WHERE date_key BETWEEN :first_day AND :last_day
