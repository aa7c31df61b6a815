-- Redshift only: why this session's last COPY failed (shown in the raised error).
SELECT start_time, file_name, line_number, column_name, error_code, error_message
FROM sys_load_error_detail
WHERE session_id = PG_BACKEND_PID()
ORDER BY start_time DESC
LIMIT 20
