-- Upsert, step 1: drop warehouse rows that a staged row is at least as new as.
DELETE FROM sales.dim_product
USING stage_dim_product
WHERE dim_product.product_id = stage_dim_product.product_id
  AND stage_dim_product.updated_at >= dim_product.updated_at
