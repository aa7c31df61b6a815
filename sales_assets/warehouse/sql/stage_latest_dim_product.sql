-- Upsert source, built before the load transaction: the latest staged row per product.
CREATE TEMP TABLE stage_latest_dim_product AS
SELECT product_id, sku, product_name, category, brand, updated_at
FROM (
    SELECT
        product_id, sku, product_name, category, brand, updated_at,
        ROW_NUMBER() OVER (
            PARTITION BY product_id ORDER BY updated_at DESC, order_date DESC
        ) AS recency
    FROM stage_dim_product
) AS ranked
WHERE recency = 1
