-- Day-replace, step 1 (inside the load transaction): remove the day's previous copy.
DELETE FROM sales.fact_sales
WHERE sale_date = :sale_date
