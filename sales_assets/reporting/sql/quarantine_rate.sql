-- Per day: lines the ETL accepted (the fact table) and quarantined, and the quarantined share
-- of all lines read. A day with quarantined lines only still appears (rate 1).
CREATE OR REPLACE VIEW reporting.quarantine_rate AS
WITH accepted AS (
    SELECT sale_date AS day, COUNT(*) AS accepted_lines
    FROM sales.fact_sales
    GROUP BY sale_date
),
rejected AS (
    SELECT quarantine_date AS day, SUM(quarantined_lines) AS quarantined_lines
    FROM sales.quarantine_daily
    GROUP BY quarantine_date
),
days AS (
    SELECT day FROM accepted
    UNION
    SELECT day FROM rejected
)
SELECT
    days.day AS sale_date,
    COALESCE(a.accepted_lines, 0) AS accepted_lines,
    COALESCE(r.quarantined_lines, 0) AS quarantined_lines,
    -- Cast after dividing too: the engines differ in a quotient's type (DuckDB: DOUBLE).
    CAST(
        CAST(COALESCE(r.quarantined_lines, 0) AS DECIMAL(18, 6))
        / NULLIF(COALESCE(a.accepted_lines, 0) + COALESCE(r.quarantined_lines, 0), 0)
        AS DECIMAL(10, 6)
    ) AS quarantine_rate
FROM days
LEFT JOIN accepted AS a ON a.day = days.day
LEFT JOIN rejected AS r ON r.day = days.day
