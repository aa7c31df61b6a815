-- One calendar row (values computed in Python, bound as parameters).
INSERT INTO sales.dim_date (
    date_key, year, quarter, month, month_name, day_of_month, iso_year, iso_week,
    day_of_week, day_name, is_weekend
)
VALUES (
    :date_key, :year, :quarter, :month, :month_name, :day_of_month, :iso_year, :iso_week,
    :day_of_week, :day_name, :is_weekend
)
