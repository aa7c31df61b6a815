"""Guards the load's speed-ups against changing what is loaded or leaking into the warehouse:
DuckDB stages curated files as temporary views (nothing is left in the warehouse file, a
session can load again and again, a file vanishing before the insert rolls the day back), the
UTC timestamps loaded through the fast conversion equal DuckDB's own cast, and the on-disk
transpile cache returns what sqlglot would (a changed statement or a damaged cache file is
recomputed, a translation error is raised again) and spares a warm process the sqlglot import."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import duckdb
import pytest

from sales_assets.warehouse import loader, transpile
from sales_assets.warehouse.session import _staged_column, duckdb_session
from sales_assets_tests.warehouse.curated_builders import day_folder, expected_figures, make_line, write_curated_day

DAY = dt.date(2026, 11, 20)


def lines(count: int = 3) -> list[dict]:
    return [make_line(f"O-{n}", 1, DAY, hour=n % 24) for n in range(count)]


def test_staging_leaves_nothing_in_the_warehouse_file_and_reloads(tmp_path, lake_root):
    path = str(tmp_path / "w.duckdb")
    write_curated_day(lake_root, DAY, lines())
    with duckdb_session(path) as session:
        for _ in range(3):  # the staging views of one load are replaced by the next
            loader.load_days(session, str(lake_root), [DAY])
        assert loader.fact_figures(session, [DAY]) == {DAY: expected_figures(lines())}
    with duckdb.connect(path, read_only=True) as connection:
        views = connection.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        tables = {row[0] for row in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert views == []
    assert tables == set(loader.WAREHOUSE_TABLES)


def test_a_listed_file_gone_before_the_insert_rolls_the_day_back(tmp_path, lake_root, monkeypatch):
    write_curated_day(lake_root, DAY, lines(2))
    with duckdb_session(str(tmp_path / "w.duckdb")) as session:
        loader.load_days(session, str(lake_root), [DAY])
        write_curated_day(lake_root, DAY, lines(5))
        real = session.execute_count

        def delete_files_then_run(name, params=None):
            if name == "insert_fact_from_stage":  # inside the transaction, after the day's delete
                for part in day_folder(lake_root, "order_lines", DAY).glob("*.parquet"):
                    part.unlink()
            return real(name, params)

        monkeypatch.setattr(session, "execute_count", delete_files_then_run)
        with pytest.raises(duckdb.Error):
            loader.load_days(session, str(lake_root), [DAY])
        assert loader.fact_figures(session, [DAY]) == {DAY: expected_figures(lines(2))}


def test_fast_timestamp_conversion_equals_the_time_zone_cast():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'Europe/Paris'")  # the fast form ignores the session zone
    connection.execute("CREATE TABLE t (ts TIMESTAMPTZ)")
    connection.execute("INSERT INTO t VALUES ('2026-03-29 00:59:59.999999+00'), ('2026-10-25 01:00:00+00'), "
                       "('1969-12-31 23:59:59.5+00'), (NULL)")
    fast = connection.execute(f"SELECT {_staged_column('ts', 'TIMESTAMP', 'TIMESTAMP WITH TIME ZONE')} FROM t").fetchall()
    connection.execute("SET TimeZone = 'UTC'")
    cast = connection.execute("SELECT CAST(ts AS TIMESTAMP) FROM t").fetchall()
    assert fast == cast and fast[3] == (None,)
    assert _staged_column("net", "DECIMAL(18,2)", "DECIMAL(38,18)") == 'CAST("net" AS DECIMAL(18,2)) AS "net"'


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    def clear():
        for cached in (transpile._cache, transpile.duckdb_sql, transpile.placeholders, transpile.redshift_sql, transpile.sql_names):
            cached.cache_clear()

    monkeypatch.setattr(transpile, "CACHE_FOLDER", tmp_path / "cache")
    clear()
    yield tmp_path / "cache"
    monkeypatch.undo()
    clear()


def test_disk_cache_returns_what_sqlglot_gives_and_keeps_errors(fresh_cache):
    computed = {name: transpile.to_duckdb(transpile.redshift_sql(name)) for name in ("insert_fact_from_stage", "merge_dim_customer")}
    for name, sql in computed.items():
        assert transpile.duckdb_sql(name) == sql
    with pytest.raises(transpile.TranspileError, match="COPY is Redshift-only"):
        transpile.duckdb_sql("copy_stage_parquet")
    [cache_file] = list(fresh_cache.iterdir())
    entries = json.loads(cache_file.read_text())
    assert entries["duckdb:insert_fact_from_stage"] == {"value": computed["insert_fact_from_stage"]}
    assert "COPY is Redshift-only" in entries["duckdb:copy_stage_parquet"]["error"]
    # Read back by a new process state: the same answers, the error raised again.
    transpile._cache.cache_clear(), transpile.duckdb_sql.cache_clear()
    assert transpile.duckdb_sql("merge_dim_customer") == computed["merge_dim_customer"]
    with pytest.raises(transpile.TranspileError, match="COPY is Redshift-only"):
        transpile.duckdb_sql("copy_stage_parquet")
    assert transpile.placeholders("delete_fact_days") == frozenset({"sale_date"})


def test_a_changed_statement_or_a_damaged_cache_is_recomputed(fresh_cache, monkeypatch):
    first = transpile.duckdb_sql("delete_fact_days")
    [cache_file] = list(fresh_cache.iterdir())
    cache_file.write_text("{not json")
    transpile._cache.cache_clear(), transpile.duckdb_sql.cache_clear()
    assert transpile.duckdb_sql("delete_fact_days") == first
    # Another statement text is another cache file: the old translation is never served for it.
    real = transpile.redshift_sql.__wrapped__
    monkeypatch.setattr(transpile, "redshift_sql", lambda name: real(name).replace(":sale_date", ":sale_day"))
    transpile._cache.cache_clear(), transpile.duckdb_sql.cache_clear()
    changed = transpile.duckdb_sql("delete_fact_days")
    assert changed != first and "sale_day" in changed
    assert len(list(fresh_cache.iterdir())) == 2


def test_a_warm_process_loads_without_importing_sqlglot(tmp_path, lake_root):
    write_curated_day(lake_root, DAY, lines())
    script = (
        "import sys, datetime as dt\n"
        "from sales_assets.warehouse.loader import load_days\n"
        "from sales_assets.warehouse.session import duckdb_session\n"
        f"with duckdb_session({str(tmp_path / 'w.duckdb')!r}) as s:\n"
        f"    load_days(s, {str(lake_root)!r}, [dt.date(2026, 11, 20)])\n"
        "print('sqlglot' in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)  # warms the cache
    warm = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert warm.stdout.strip() == "False"
