-- A session may load several times; start each load from an empty staging table.
DROP TABLE IF EXISTS stage_quarantine
