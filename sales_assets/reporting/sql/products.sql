-- Product dimension for Power BI (latest attributes).
CREATE OR REPLACE VIEW reporting.products AS
SELECT product_id, sku, product_name, category, brand
FROM sales.dim_product
