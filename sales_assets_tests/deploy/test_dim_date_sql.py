"""The exported warehouse batch fills dim_date for its day, with the loader's calendar values.

Risk guarded: a Step Functions load leaving fact rows without their dim_date row (the loaders
fill it, the exported batch did not), or filling it with values that differ from
``loader.calendar_rows`` at the edges where Redshift and Python calendars could disagree: leap
day, ISO week 53 and days of January that belong to the previous ISO year (or December days
of the next), Sunday as ISO weekday 7; and a re-run duplicating the row.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from sales_assets.definitions import defs
from sales_assets.deploy import asl
from sales_assets.warehouse import loader, transpile

# 2020: leap year, 2020-W53, starts on a Wednesday. 2021: Jan 1-3 are 2020-W53.
# 2024: leap, Dec 30-31 are 2025-W01. 2026/2027: 2026-W53 runs into Jan 1-3 2027.
YEARS = (2020, 2021, 2024, 2026, 2027)


def _for_day(sql: str, day: dt.date) -> str:
    # What States.Format does in the state machine: every {} becomes the (validated) order_date.
    return sql.replace("{}", day.isoformat())


@pytest.fixture(scope="module")
def statement() -> str:
    return transpile.to_duckdb(asl.ensure_dim_date_sql(), source="ensure_dim_date")


@pytest.fixture(scope="module")
def duck(statement):
    """dim_date after running the statement once for every day of ``YEARS``."""
    connection = duckdb.connect()
    connection.execute(transpile.duckdb_sql("create_schema"))
    connection.execute(transpile.duckdb_sql("create_dim_date"))
    for year in YEARS:
        day = dt.date(year, 1, 1)
        while day.year == year:
            connection.execute(_for_day(statement, day))
            day += dt.timedelta(days=1)
    yield connection
    connection.close()


def _rows(connection) -> list[dict]:
    cursor = connection.execute("SELECT * FROM sales.dim_date ORDER BY date_key")
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def test_statement_parses_as_redshift_with_one_date_placeholder():
    sql = asl.ensure_dim_date_sql()
    tree = transpile.parse_redshift(sql, source="ensure_dim_date")
    assert tree.key == "insert"
    assert sql.count("{}") == 1 and "{" not in sql.replace("{}", "")  # States.Format's only placeholder


def test_every_day_of_the_years_yields_exactly_calendar_rows(duck, statement):
    expected = loader.calendar_rows(YEARS)
    assert any(r["date_key"] == dt.date(2024, 2, 29) for r in expected)
    assert _rows(duck) == expected
    # A re-run of any day (a retried or re-driven execution) leaves one row per day.
    for day in (dt.date(2021, 1, 1), dt.date(2024, 2, 29), dt.date(2024, 12, 30), dt.date(2027, 1, 3)):
        duck.execute(_for_day(statement, day))
    assert _rows(duck) == expected


def test_iso_edges_are_what_python_says(duck):
    # Spelled out, so a wrong expectation in calendar_rows cannot hide a wrong statement.
    held = {r["date_key"]: r for r in _rows(duck)}
    assert (held[dt.date(2021, 1, 3)]["iso_year"], held[dt.date(2021, 1, 3)]["iso_week"]) == (2020, 53)
    assert (held[dt.date(2024, 12, 30)]["iso_year"], held[dt.date(2024, 12, 30)]["iso_week"]) == (2025, 1)
    sunday = held[dt.date(2026, 11, 22)]
    assert (sunday["day_of_week"], sunday["day_name"], sunday["is_weekend"]) == (7, "Sunday", True)
    leap = held[dt.date(2024, 2, 29)]
    assert (leap["quarter"], leap["month_name"], leap["day_of_month"]) == (1, "February", 29)


def test_the_exported_batch_creates_dim_date_then_fills_the_day_in_the_same_transaction():
    statements = asl.redshift_day_load_sqls()
    create = next(i for i, q in enumerate(statements) if "CREATE TABLE IF NOT EXISTS sales.dim_date" in q)
    assert statements.index(asl.ensure_dim_date_sql()) > create
    machine = asl.build_state_machine(asl.pipeline_steps(defs))
    batch = machine["States"]["Days"]["ItemProcessor"]["States"]["WarehouseTablesStart"]["Parameters"]
    # One batchExecuteStatement = one transaction; the calendar insert is one of its Sqls.
    assert "INSERT INTO sales.dim_date" in batch["Sqls.$"]
    assert json.dumps(batch).count("sales-day-load") == 1
