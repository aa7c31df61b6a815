-- Upsert, step 2 (same transaction): new customers inserted, known ones updated in place.
MERGE INTO sales.dim_customer
USING stage_latest_dim_customer AS s
ON dim_customer.customer_id = s.customer_id
WHEN MATCHED THEN UPDATE SET
    customer_name = s.customer_name, email = s.email, segment = s.segment, country = s.country,
    region = s.region, city = s.city, updated_at = s.updated_at, loaded_at = :loaded_at
WHEN NOT MATCHED THEN INSERT (
    customer_id, customer_name, email, segment, country, region, city, updated_at, loaded_at
) VALUES (
    s.customer_id, s.customer_name, s.email, s.segment, s.country, s.region, s.city,
    s.updated_at, :loaded_at
)
