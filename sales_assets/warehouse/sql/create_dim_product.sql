-- One row per product, latest attributes (by updated_at) win. Small table: copied to every node.
CREATE TABLE IF NOT EXISTS sales.dim_product (
    product_id   VARCHAR(128) NOT NULL ENCODE zstd,
    sku          VARCHAR(128)          ENCODE zstd,
    product_name VARCHAR(512)          ENCODE zstd,
    category     VARCHAR(128)          ENCODE zstd,
    brand        VARCHAR(128)          ENCODE zstd,
    updated_at   TIMESTAMP    NOT NULL ENCODE az64,
    loaded_at    TIMESTAMP    NOT NULL ENCODE az64,
    PRIMARY KEY (product_id)
)
DISTSTYLE ALL
SORTKEY (product_id)
