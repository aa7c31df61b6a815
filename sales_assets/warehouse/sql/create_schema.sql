-- The one schema every warehouse table lives in.
CREATE SCHEMA IF NOT EXISTS sales
