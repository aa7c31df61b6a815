"""Guards the load's shortcuts against changing what is loaded: the calendar of a held year is
kept (and a partly held year rewritten whole), DuckDB's set-insert `executemany` writes exactly
what the row-by-row one would (types, NULLs), the schema is created once per connection but
not remembered from inside a rolled-back transaction, and loading or reading the warehouse
through `sales_assets.warehouse.session` does not import Dagster."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from sales_assets.warehouse import loader
from sales_assets.warehouse.session import DuckDBLockedError, _bulk_insert_sql, duckdb_session
from sales_assets_tests.warehouse.curated_builders import make_line, write_curated_day

DAY = dt.date(2024, 2, 29)  # a leap year: 366 calendar rows


def calendar(session):
    return session.connection.execute("SELECT * FROM sales.dim_date ORDER BY date_key").fetchall()


def test_held_year_is_kept_and_a_partial_year_rewritten(tmp_path, lake_root):
    write_curated_day(lake_root, DAY, [make_line("O-1", 1, DAY)])
    with duckdb_session(str(tmp_path / "w.duckdb")) as session:
        first = loader.load_days(session, str(lake_root), [DAY])
        assert first.rows_inserted["dim_date"] == 366
        full = calendar(session)
        assert len(full) == 366

        again = loader.load_days(session, str(lake_root), [DAY])
        assert again.rows_inserted["dim_date"] == 0
        assert calendar(session) == full

        session.connection.execute("DELETE FROM sales.dim_date WHERE date_key >= DATE '2024-12-01'")
        repaired = loader.load_days(session, str(lake_root), [DAY])
        assert repaired.rows_inserted["dim_date"] == 366
        assert calendar(session) == full
        # Every fact row still has its date.
        assert loader.orphan_fact_rows(session, [DAY]) == 0


def test_set_insert_matches_row_by_row(tmp_path):
    sql = "INSERT INTO t (a, b, c, d) VALUES (:a, :b, :c, :d)"
    assert _bulk_insert_sql(sql) is not None
    # Not a bare VALUES of parameters: left to DuckDB's executemany.
    assert _bulk_insert_sql("INSERT INTO t (a, b, c, d) VALUES (:a, :b, :c, 1 + :d)") is None
    assert _bulk_insert_sql("DELETE FROM t WHERE a = :a") is None
    rows = [
        {"a": dt.date(2024, 1, 1), "b": None, "c": "x", "d": True},
        {"a": dt.date(2024, 1, 2), "b": 7, "c": None, "d": False},
    ]
    with duckdb_session(str(tmp_path / "w.duckdb")) as session:
        results = []
        for table in ("t", "u"):
            session.connection.execute(f"CREATE TABLE {table} (a DATE, b SMALLINT, c VARCHAR(9), d BOOLEAN)")
        session.executemany(sql, rows)
        session.connection.executemany(  # the row-by-row reference
            "INSERT INTO u (a, b, c, d) VALUES ($a, $b, $c, $d)", rows
        )
        for table in ("t", "u"):
            results.append(session.connection.execute(f"SELECT * FROM {table} ORDER BY a").fetchall())
        assert results[0] == results[1] == [tuple(r.values()) for r in rows]
        # The staging relation is gone afterwards.
        with pytest.raises(Exception):
            session.connection.execute("SELECT * FROM executemany_rows")


def test_schema_created_once_per_connection_not_from_a_rolled_back_transaction(tmp_path):
    with duckdb_session(str(tmp_path / "w.duckdb")) as session:
        with pytest.raises(RuntimeError):
            with session.transaction():
                loader.ensure_schema(session)
                raise RuntimeError("boom")
        assert not session.schema_ready  # the DDL was rolled back with the transaction
        loader.ensure_schema(session)
        assert session.schema_ready
        session.connection.execute("DROP TABLE sales.dim_date")
        loader.ensure_schema(session)  # remembered: no statement runs again
        assert not session.connection.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'dim_date'"
        ).fetchall()
    with duckdb_session(str(tmp_path / "w.duckdb")) as session:  # a new connection checks again
        loader.ensure_schema(session)
        assert session.connection.execute("SELECT count(*) FROM sales.dim_date").fetchall() == [(0,)]


def test_lock_held_elsewhere_is_a_plain_error_naming_the_file(tmp_path):
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(30)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DuckDBLockedError) as caught:
            with duckdb_session(str(path), lock_timeout_seconds=0):
                pass
        assert caught.value.path == str(path.resolve())
    finally:
        holder.kill()
        holder.wait()


def test_session_and_loader_import_no_dagster():
    code = ("import sys; import sales_assets.warehouse.loader, sales_assets.warehouse.session, "
            "sales_assets.bench.stages; print('dagster' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
