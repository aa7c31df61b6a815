"""The `reporting` schema: views named for people, written once in Redshift's dialect.

Callers may rely on:
- `VIEW_NAMES` lists the views in creation order; each is `sql/<name>.sql` (one
  `CREATE OR REPLACE VIEW reporting.<name>` statement) and nothing else is ever created.
- `view_sql(name)` is its Redshift text; `create_views(session)` runs the schema and every
  view on a warehouse session (DuckDB transpiles through `warehouse.transpile`) and is
  idempotent; `view_row_counts(session)` counts each view's rows.
"""
from __future__ import annotations

import functools
import importlib.resources

from sales_assets.resources.warehouse import WarehouseSession

SQL_PACKAGE = "sales_assets.reporting"
SCHEMA = "reporting"
SCHEMA_STATEMENT = "create_reporting_schema"
# The star Power BI models (fact + dimensions) first, then the ready-made aggregates.
STAR_VIEWS = ("sales", "customers", "products", "calendar")
AGGREGATE_VIEWS = (
    "daily_sales",
    "sales_by_product",
    "sales_by_category",
    "sales_by_region",
    "sales_by_channel",
    "returns_and_cancellations",
    "quarantine_rate",
)
VIEW_NAMES = STAR_VIEWS + AGGREGATE_VIEWS


@functools.cache
def view_sql(name: str) -> str:
    """Redshift text of `reporting/sql/<name>.sql` (KeyError for anything not allow-listed)."""
    if name not in VIEW_NAMES and name != SCHEMA_STATEMENT:
        raise KeyError(f"no reporting statement named {name!r}")
    return importlib.resources.files(SQL_PACKAGE).joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def qualified(name: str) -> str:
    """`reporting.<name>` for an allow-listed view."""
    if name not in VIEW_NAMES:
        raise KeyError(f"no reporting view named {name!r}")
    return f"{SCHEMA}.{name}"


def create_views(session: WarehouseSession) -> None:
    """CREATE SCHEMA IF NOT EXISTS reporting, then CREATE OR REPLACE every view."""
    session.execute(view_sql(SCHEMA_STATEMENT))
    for name in VIEW_NAMES:
        session.execute(view_sql(name))


def view_row_counts(session: WarehouseSession) -> dict[str, int]:
    """Rows each view returns now (names come from VIEW_NAMES, never from input)."""
    return {name: int(session.execute(f"SELECT COUNT(*) FROM {qualified(name)}")[0][0]) for name in VIEW_NAMES}
