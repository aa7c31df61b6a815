-- Upsert, step 1 (inside the load transaction): a staged row older than the held one loses.
DELETE FROM stage_latest_dim_product
USING sales.dim_product
WHERE dim_product.product_id = stage_latest_dim_product.product_id
  AND dim_product.updated_at > stage_latest_dim_product.updated_at
