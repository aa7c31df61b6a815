-- Calendar keys are replaced, not merged: delete the span about to be re-inserted.
DELETE FROM sales.dim_date
WHERE date_key BETWEEN :first_day AND :last_day
