"""Day-replace loader: curated parquet days -> the `sales` warehouse schema.

Engine-agnostic: every function takes a `WarehouseSession` from a `WarehouseResource`
(DuckDB locally, Redshift on AWS) and runs the named statements of `warehouse/sql/`.

Callers may rely on:
- `ensure_schema(session)` is idempotent (CREATE ... IF NOT EXISTS only).
- `load_days(session, lake_root, days)` replaces each given day in ONE transaction: the day's
  previous fact rows and quarantine counts are deleted and the staged curated lines and
  quarantine counts (per reason) inserted, dimensions upserted with MERGE (latest
  `updated_at` wins), and the calendar rows of the days' years written when dim_date does not
  hold that whole year already (calendar rows never change, so a held year is kept). Any
  failure rolls the whole transaction back, so any number of re-runs leaves exactly one copy of a day. Each curated
  table-day is read through its commit record (`curated/<table>/order_date=D/_manifest.json`,
  `sales_assets.transform.curated_manifest`): exactly the files it lists, never whatever the
  folder holds. A day whose record lists zero rows (no valid lines) replaces the day with
  nothing; a day without a record raises `CuratedRecordMissingError` (run the transform) before
  anything in the warehouse changes, never an empty load.
- `fact_figures`, `duplicate_fact_keys`, `orphan_fact_rows` are read-only and work on a
  read-only session.
"""
from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal

from sales_assets.warehouse.session import WarehouseSession

SCHEMA_STATEMENTS = (
    "create_schema",
    "create_fact_sales",
    "create_dim_customer",
    "create_dim_product",
    "create_dim_date",
    "create_quarantine_daily",
)
# curated table -> staging table (both allow-listed identifiers), with their DDL statements.
STAGES = {
    "order_lines": "stage_order_lines",
    "dim_customer": "stage_dim_customer",
    "dim_product": "stage_dim_product",
    "quarantine": "stage_quarantine",
}
# Per-key dedup of the staged dimensions, built before the transaction (the MERGE sources).
LATEST_STAGES = ("stage_latest_dim_customer", "stage_latest_dim_product")
# Staged tables whose rows carry an order_date that must be one of the days being replaced.
DAY_CHECKED_STAGES = {"order_lines": "stage_order_lines_days", "quarantine": "stage_quarantine_days"}
CURATED_FOLDER = "curated"
PARTITION_KEY = "order_date"
ZERO_MONEY = Decimal("0.00")


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What one `load_days` call did.

    `rows_inserted` counts rows written per warehouse table (dimension rows merged, i.e. new
    or at least as new as the held row; dim_date counts calendar rows written, 0 when every
    year of the days was held already; quarantine_daily counts (day, reason) rows);
    `lines_per_day` is the fact rows now held for each loaded day; `days_without_lines` lists
    days whose committed curated order_lines hold no row (replaced by nothing).
    """

    days: tuple[dt.date, ...]
    rows_inserted: dict[str, int]
    lines_per_day: dict[dt.date, int]
    days_without_lines: tuple[dt.date, ...]


def ensure_schema(session: WarehouseSession) -> None:
    """Create the `sales` schema and its tables when absent; once per session (connection)."""
    if session.schema_ready:
        return
    for name in SCHEMA_STATEMENTS:
        session.execute(name)
    # Inside a transaction the DDL could still be rolled back: only remember it outside one.
    session.schema_ready = not session.in_transaction


def curated_day_location(lake_root: str, table: str, day: dt.date) -> str:
    """`<lake_root>/curated/<table>/order_date=YYYY-MM-DD/` for an allow-listed table.

    This is where lake locations are built; the Redshift session additionally validates the
    result before it enters a COPY statement (the only value ever placed in SQL text).
    """
    if table not in STAGES:
        raise ValueError(f"unknown curated table {table!r} (allowed: {sorted(STAGES)})")
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise TypeError(f"day must be a datetime.date, got {day!r}")
    root = str(lake_root).rstrip("/")
    return f"{root}/{CURATED_FOLDER}/{table}/{PARTITION_KEY}={day.isoformat()}/"


def calendar_rows(years: Iterable[int]) -> list[dict]:
    """dim_date rows for every day of the given years (ISO week and weekday, 1 = Monday)."""
    rows = []
    for year in sorted(set(years)):
        day = dt.date(year, 1, 1)
        while day.year == year:
            iso = day.isocalendar()
            rows.append(
                {
                    "date_key": day,
                    "year": day.year,
                    "quarter": (day.month - 1) // 3 + 1,
                    "month": day.month,
                    "month_name": calendar.month_name[day.month],
                    "day_of_month": day.day,
                    "iso_year": iso.year,
                    "iso_week": iso.week,
                    "day_of_week": iso.weekday,
                    "day_name": calendar.day_name[iso.weekday - 1],
                    "is_weekend": iso.weekday >= 6,
                }
            )
            day += dt.timedelta(days=1)
    return rows


def load_days(session: WarehouseSession, lake_root: str, days: Sequence[dt.date]) -> LoadReport:
    """Replace `days` in the warehouse with their curated parquet (see module docstring)."""
    days = tuple(sorted(set(days)))
    if not days:
        raise ValueError("load_days needs at least one day")
    ensure_schema(session)

    # Staging happens before the transaction: a COPY/read failure leaves the warehouse untouched.
    # One stage call per table with every day's folder: the session reads each day's record
    # (a missing one fails here, before the transaction) and stages exactly the listed files.
    for table, stage in STAGES.items():
        session.reset_stage(stage)
        session.stage_parquet(stage, [curated_day_location(lake_root, table, day) for day in days])
    # A day whose tables two transform runs committed (one stopped between two tables) is
    # refused before the transaction (CuratedRunMismatchError names the day: re-run the transform).
    from sales_assets.transform.curated_manifest import require_one_run_per_day

    require_one_run_per_day(lake_root, days, tuple(STAGES), getattr(session, "s3_client", None))

    staged_per_day: dict[dt.date, int] = {}
    for table, statement in DAY_CHECKED_STAGES.items():
        per_day = {row[0]: int(row[1]) for row in session.execute(statement)}
        strays = sorted(d for d in per_day if d not in days)
        if strays:
            # Inserting them would create a second copy of a day this load does not replace.
            raise ValueError(f"curated {table} of {list(days)} hold rows dated {strays}")
        if table == "order_lines":
            staged_per_day = per_day
    for latest in LATEST_STAGES:
        session.execute(f"drop_{latest}")
        session.execute(latest)

    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # warehouse stores UTC
    stamp = {"loaded_at": loaded_at}
    years = sorted({day.year for day in days})
    inserted: dict[str, int] = {}
    with session.transaction():
        for day in days:
            session.execute_count("delete_fact_days", {"sale_date": day})
            session.execute_count("delete_quarantine_days", {"sale_date": day})
        inserted["fact_sales"] = session.execute_count("insert_fact_from_stage", stamp)
        inserted["quarantine_daily"] = session.execute_count("insert_quarantine_daily_from_stage", stamp)
        session.execute_count("discard_stale_dim_customer")
        inserted["dim_customer"] = session.execute_count("merge_dim_customer", stamp)
        session.execute_count("discard_stale_dim_product")
        inserted["dim_product"] = session.execute_count("merge_dim_product", stamp)
        inserted["dim_date"] = 0
        for year in years:
            year_rows = calendar_rows([year])
            first_day, last_day = dt.date(year, 1, 1), dt.date(year, 12, 31)
            held = session.execute("count_dim_date_range", {"first_day": first_day, "last_day": last_day})
            if int(held[0][0]) == len(year_rows):
                continue  # the whole year is held; its rows are the same every time
            session.execute_count(
                "delete_dim_date_range", {"first_day": first_day, "last_day": last_day}
            )
            # One executemany per year keeps each statement batch bounded (Data API limits);
            # the DuckDB session runs it as one set insert.
            session.executemany("insert_dim_date", year_rows)
            inserted["dim_date"] += len(year_rows)

    return LoadReport(
        days=days,
        rows_inserted=inserted,
        lines_per_day={day: staged_per_day.get(day, 0) for day in days},
        days_without_lines=tuple(day for day in days if not staged_per_day.get(day)),
    )


def fact_figures(session: WarehouseSession, days: Sequence[dt.date]) -> dict[dt.date, tuple[int, Decimal]]:
    """(line count, exact Decimal sum of net) of fact_sales per day; (0, 0.00) for empty days."""
    figures = {}
    for day in sorted(set(days)):
        count, net = session.execute("fact_day_figures", {"sale_date": day})[0]
        figures[day] = (int(count), ZERO_MONEY if net is None else Decimal(net).quantize(ZERO_MONEY))
    return figures


def duplicate_fact_keys(session: WarehouseSession, days: Sequence[dt.date]) -> int:
    """Number of distinct (order_id, line_number) keys of these days held more than once.

    A key counts whether its other copy is on the same day or on any other day.
    """
    keys: set[tuple] = set()
    for day in sorted(set(days)):
        keys.update(tuple(row) for row in session.execute("duplicate_fact_keys", {"sale_date": day}))
    return len(keys)


def orphan_fact_rows(session: WarehouseSession, days: Sequence[dt.date]) -> int:
    """Fact rows of these days without their dim_customer, dim_product or dim_date row."""
    return sum(int(session.execute("orphan_fact_rows", {"sale_date": day})[0][0]) for day in sorted(set(days)))


WAREHOUSE_TABLES = ("fact_sales", "dim_customer", "dim_product", "dim_date", "quarantine_daily")


def table_row_counts(session: WarehouseSession) -> dict[str, int]:
    """Rows currently held by each warehouse table."""
    return {name: int(count) for name, count in session.execute("table_row_counts")}


def table_schemas() -> dict[str, list[tuple[str, str]]]:
    """(column, Redshift type) of each warehouse table, read from its CREATE statement.

    The DDL is the single source of the schema, so metadata cannot drift from it.
    """
    from sqlglot import exp

    from sales_assets.warehouse.transpile import parse_redshift, redshift_sql

    schemas = {}
    for table in WAREHOUSE_TABLES:
        tree = parse_redshift(redshift_sql(f"create_{table}"), f"create_{table}.sql")
        schemas[table] = [
            (column.name, column.args["kind"].sql(dialect="redshift"))
            for column in tree.find_all(exp.ColumnDef)
        ]
    return schemas
