-- Upsert, step 2: insert the latest staged row per product unless a newer one is kept.
INSERT INTO sales.dim_product (
    product_id, sku, product_name, category, brand, updated_at, loaded_at
)
SELECT
    latest.product_id, latest.sku, latest.product_name, latest.category, latest.brand,
    latest.updated_at, :loaded_at
FROM (
    SELECT
        product_id, sku, product_name, category, brand, updated_at,
        ROW_NUMBER() OVER (
            PARTITION BY product_id ORDER BY updated_at DESC, order_date DESC
        ) AS recency
    FROM stage_dim_product
) AS latest
LEFT JOIN sales.dim_product AS current_row
    ON current_row.product_id = latest.product_id
WHERE latest.recency = 1
  AND current_row.product_id IS NULL
