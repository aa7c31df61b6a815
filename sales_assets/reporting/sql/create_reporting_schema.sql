-- The schema Power BI and the dashboard read: views only, named for people.
CREATE SCHEMA IF NOT EXISTS reporting
