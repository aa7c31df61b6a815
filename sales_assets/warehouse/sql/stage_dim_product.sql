-- Session-scoped staging for curated/dim_product (column order = the parquet files').
CREATE TEMP TABLE stage_dim_product (
    product_id   VARCHAR(128),
    sku          VARCHAR(128),
    product_name VARCHAR(512),
    category     VARCHAR(128),
    brand        VARCHAR(128),
    updated_at   TIMESTAMP,
    order_date   DATE
)
