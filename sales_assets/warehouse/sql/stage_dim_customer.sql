-- Session-scoped staging for curated/dim_customer (column order = the parquet files').
CREATE TEMP TABLE stage_dim_customer (
    customer_id   VARCHAR(128),
    customer_name VARCHAR(512),
    email         VARCHAR(320),
    segment       VARCHAR(64),
    country       VARCHAR(64),
    region        VARCHAR(128),
    city          VARCHAR(128),
    updated_at    TIMESTAMP,
    order_date    DATE
)
