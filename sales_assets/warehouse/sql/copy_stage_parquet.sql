-- Redshift only: template of the one statement that reads the lake (local runs stage with
-- DuckDB read_parquet instead). Redshift accepts no bind parameters in COPY, so
-- RedshiftSession.copy_statement swaps the three sentinels below (the table name, the source
-- literal and the role literal) for an allow-listed staging table and validated, quoted
-- literals, then re-parses the result to prove it is this COPY and nothing else.
COPY stage_order_lines
FROM 's3://bucket/prefix/curated/order_lines/order_date=2000-01-01/part-'
IAM_ROLE 'arn:aws:iam::000000000000:role/placeholder'
FORMAT AS PARQUET
