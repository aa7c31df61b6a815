-- A session may load several times; rebuild the upsert source each load.
DROP TABLE IF EXISTS stage_latest_dim_customer
