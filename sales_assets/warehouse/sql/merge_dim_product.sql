-- Upsert, step 2 (same transaction): new products inserted, known ones updated in place.
MERGE INTO sales.dim_product
USING stage_latest_dim_product AS s
ON dim_product.product_id = s.product_id
WHEN MATCHED THEN UPDATE SET
    sku = s.sku, product_name = s.product_name, category = s.category, brand = s.brand,
    updated_at = s.updated_at, loaded_at = :loaded_at
WHEN NOT MATCHED THEN INSERT (
    product_id, sku, product_name, category, brand, updated_at, loaded_at
) VALUES (
    s.product_id, s.sku, s.product_name, s.category, s.brand, s.updated_at, :loaded_at
)
