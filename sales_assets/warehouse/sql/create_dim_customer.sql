-- One row per customer, latest attributes (by updated_at) win. Small table: copied to every node.
CREATE TABLE IF NOT EXISTS sales.dim_customer (
    customer_id   VARCHAR(128) NOT NULL ENCODE zstd,
    customer_name VARCHAR(512)          ENCODE zstd,
    email         VARCHAR(320)          ENCODE zstd,
    segment       VARCHAR(64)           ENCODE zstd,
    country       VARCHAR(64)           ENCODE zstd,
    region        VARCHAR(128)          ENCODE zstd,
    city          VARCHAR(128)          ENCODE zstd,
    updated_at    TIMESTAMP    NOT NULL ENCODE az64,
    loaded_at     TIMESTAMP    NOT NULL ENCODE az64,
    PRIMARY KEY (customer_id)
)
DISTSTYLE ALL
SORTKEY (customer_id)
