-- Rows held per warehouse table, for the materializations' dagster/row_count.
SELECT 'fact_sales' AS table_name, COUNT(*) AS row_count FROM sales.fact_sales
UNION ALL
SELECT 'dim_customer', COUNT(*) FROM sales.dim_customer
UNION ALL
SELECT 'dim_product', COUNT(*) FROM sales.dim_product
UNION ALL
SELECT 'dim_date', COUNT(*) FROM sales.dim_date
UNION ALL
SELECT 'quarantine_daily', COUNT(*) FROM sales.quarantine_daily
