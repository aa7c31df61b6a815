-- The day's fact rows lacking their dim_customer, dim_product or dim_date row.
SELECT COUNT(*) AS orphan_rows
FROM sales.fact_sales AS f
LEFT JOIN sales.dim_customer AS c ON c.customer_id = f.customer_id
LEFT JOIN sales.dim_product AS p ON p.product_id = f.product_id
LEFT JOIN sales.dim_date AS d ON d.date_key = f.sale_date
WHERE f.sale_date = :sale_date
  AND (c.customer_id IS NULL OR p.product_id IS NULL OR d.date_key IS NULL)
