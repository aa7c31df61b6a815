-- Day-replace (inside the load transaction): the day's previous quarantine counts go.
DELETE FROM sales.quarantine_daily
WHERE quarantine_date = :sale_date
