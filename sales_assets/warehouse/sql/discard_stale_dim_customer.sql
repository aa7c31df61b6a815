-- Upsert, step 1 (inside the load transaction): latest updated_at wins, so a staged row
-- older than the one the warehouse holds is dropped (on a tie the newest load wins).
-- Redshift MERGE has no `WHEN MATCHED AND <condition>`, hence this step.
DELETE FROM stage_latest_dim_customer
USING sales.dim_customer
WHERE dim_customer.customer_id = stage_latest_dim_customer.customer_id
  AND dim_customer.updated_at > stage_latest_dim_customer.updated_at
