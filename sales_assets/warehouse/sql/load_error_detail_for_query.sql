-- Redshift only: why a COPY run through the Data API failed. The Data API runs each batch in
-- its own session, so the failed COPY is found by its query id (DescribeStatement's
-- RedshiftQueryId of the failed sub-statement), not by PG_BACKEND_PID().
SELECT start_time, file_name, line_number, column_name, error_code, error_message
FROM sys_load_error_detail
WHERE query_id = :query_id
ORDER BY start_time DESC
LIMIT 20
