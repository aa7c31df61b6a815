-- Lines the ETL quarantined, counted per day and reason code: what reporting.quarantine_rate
-- divides by. Counts only: the rejected records themselves stay in the lake
-- (curated/quarantine), which holds raw payloads the warehouse has no use for.
CREATE TABLE IF NOT EXISTS sales.quarantine_daily (
    quarantine_date   DATE        NOT NULL ENCODE raw,
    reason            VARCHAR(64) NOT NULL ENCODE zstd,
    quarantined_lines INTEGER     NOT NULL ENCODE az64,
    loaded_at         TIMESTAMP   NOT NULL ENCODE az64,
    PRIMARY KEY (quarantine_date, reason)
)
DISTSTYLE ALL
SORTKEY (quarantine_date)
