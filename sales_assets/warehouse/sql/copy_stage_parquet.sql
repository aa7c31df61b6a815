-- Redshift only: template of the one statement that reads the lake (local runs stage with
-- DuckDB read_parquet instead). FROM names a COPY manifest listing exactly the committed
-- part files (RedshiftSession writes it), never a bare prefix: an object that appears under
-- the prefix mid-load, or a leftover from an aborted writer, is not loaded. Redshift accepts
-- no bind parameters in COPY, so RedshiftSession.copy_statement swaps the three sentinels
-- below (the table name, the manifest literal and the role literal) for an allow-listed
-- staging table and validated, quoted literals, then re-parses the result to prove it is
-- this COPY and nothing else.
COPY stage_order_lines
FROM 's3://bucket/prefix/_warehouse/copy_manifests/stage_order_lines/placeholder.manifest'
IAM_ROLE 'arn:aws:iam::000000000000:role/placeholder'
FORMAT AS PARQUET
MANIFEST
