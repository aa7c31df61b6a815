-- Session-scoped staging for curated/quarantine (column order = the parquet files').
CREATE TEMP TABLE stage_quarantine (
    order_date    DATE,
    order_id      VARCHAR(128),
    line_number   INTEGER,
    reason        VARCHAR(64),
    detail        VARCHAR(65535),
    raw_record    VARCHAR(65535),
    source_page   INTEGER,
    ingest_run_id VARCHAR(128)
)
