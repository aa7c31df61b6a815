-- Upsert source, built before the load transaction: the latest staged row per customer
-- (ties on updated_at go to the later order_date). Redshift MERGE wants one source row per
-- target key and reads a table, so the dedup is materialized here.
CREATE TEMP TABLE stage_latest_dim_customer AS
SELECT customer_id, customer_name, email, segment, country, region, city, updated_at
FROM (
    SELECT
        customer_id, customer_name, email, segment, country, region, city, updated_at,
        ROW_NUMBER() OVER (
            PARTITION BY customer_id ORDER BY updated_at DESC, order_date DESC
        ) AS recency
    FROM stage_dim_customer
) AS ranked
WHERE recency = 1
