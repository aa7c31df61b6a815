-- Day-replace (same transaction): the staged quarantine lines, counted per day and reason.
INSERT INTO sales.quarantine_daily (quarantine_date, reason, quarantined_lines, loaded_at)
SELECT order_date, COALESCE(reason, 'unknown'), COUNT(*), :loaded_at
FROM stage_quarantine
GROUP BY order_date, COALESCE(reason, 'unknown')
