-- Customer dimension for Power BI (latest attributes).
CREATE OR REPLACE VIEW reporting.customers AS
SELECT customer_id, customer_name, segment, country, region, city
FROM sales.dim_customer
