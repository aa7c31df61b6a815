-- Upsert, step 1: drop warehouse rows that a staged row is at least as new as (latest wins;
-- on a tie the newest load wins, so a corrected re-run replaces the attributes).
DELETE FROM sales.dim_customer
USING stage_dim_customer
WHERE dim_customer.customer_id = stage_dim_customer.customer_id
  AND stage_dim_customer.updated_at >= dim_customer.updated_at
