-- Upsert, step 2: insert the latest staged row per customer unless the warehouse still holds
-- a newer one (which step 1 kept). Across staged days, ties on updated_at go to the later day.
INSERT INTO sales.dim_customer (
    customer_id, customer_name, email, segment, country, region, city, updated_at, loaded_at
)
SELECT
    latest.customer_id, latest.customer_name, latest.email, latest.segment, latest.country,
    latest.region, latest.city, latest.updated_at, :loaded_at
FROM (
    SELECT
        customer_id, customer_name, email, segment, country, region, city, updated_at,
        ROW_NUMBER() OVER (
            PARTITION BY customer_id ORDER BY updated_at DESC, order_date DESC
        ) AS recency
    FROM stage_dim_customer
) AS latest
LEFT JOIN sales.dim_customer AS current_row
    ON current_row.customer_id = latest.customer_id
WHERE latest.recency = 1
  AND current_row.customer_id IS NULL
