-- Date dimension for Power BI (mark it as the model's date table on date_key).
CREATE OR REPLACE VIEW reporting.calendar AS
SELECT
    date_key, year, quarter, month, month_name, day_of_month, iso_year, iso_week,
    day_of_week, day_name, is_weekend
FROM sales.dim_date
