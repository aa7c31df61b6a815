-- Calendar, one row per day of every year a load touched; rows are computed in Python
-- (loader.calendar_rows) so both engines hold identical values. day_of_week is ISO (1 = Monday).
CREATE TABLE IF NOT EXISTS sales.dim_date (
    date_key     DATE        NOT NULL ENCODE raw,
    year         SMALLINT    NOT NULL ENCODE az64,
    quarter      SMALLINT    NOT NULL ENCODE az64,
    month        SMALLINT    NOT NULL ENCODE az64,
    month_name   VARCHAR(9)  NOT NULL ENCODE zstd,
    day_of_month SMALLINT    NOT NULL ENCODE az64,
    iso_year     SMALLINT    NOT NULL ENCODE az64,
    iso_week     SMALLINT    NOT NULL ENCODE az64,
    day_of_week  SMALLINT    NOT NULL ENCODE az64,
    day_name     VARCHAR(9)  NOT NULL ENCODE zstd,
    is_weekend   BOOLEAN     NOT NULL ENCODE raw,
    PRIMARY KEY (date_key)
)
DISTSTYLE ALL
SORTKEY (date_key)
