"""What a reader of the local warehouse sees, for tests that compare it across runs."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.warehouse import loader

# The only columns a re-run of an unchanged day may rewrite: every load stamps `loaded_at`,
# and the re-run re-lands raw under a new run id, which fact rows carry as `ingest_run_id`.
RERUN_COLUMNS = ("loaded_at", "ingest_run_id")


def table_rows(connection, ignoring: Sequence[str] = ()) -> dict[str, list[tuple]]:
    """Every warehouse table's rows, sorted, without the ``ignoring`` columns (a DuckDB connection)."""
    rows = {}
    for table in loader.WAREHOUSE_TABLES:
        columns = [column for column, _ in loader.table_schemas()[table] if column not in ignoring]
        rows[table] = connection.execute(f"SELECT {', '.join(columns)} FROM sales.{table} ORDER BY ALL").fetchall()
    return rows


def warehouse_state(path, days: Sequence[dt.date], ignoring: Sequence[str] = ()) -> tuple[dict, dict, dict]:
    """(figures per day, rows per table, every table's sorted rows), read through a read-only session."""
    with DuckDBWarehouseResource(path=str(path), read_only=True).session() as session:
        return (loader.fact_figures(session, days), loader.table_row_counts(session),
                table_rows(session.connection, ignoring))
