"""Guards the plus row D of issue #10 for the warehouse load: the disk filling up while a day is
loaded into the local DuckDB warehouse.

Risks: a full disk on the load's insert or on its COMMIT (DuckDB's WAL write) leaving a
half-replaced day, an unclear error that does not say which file or why, a connection DuckDB
has invalidated being used again (a ROLLBACK or a retry on it: "database has been
invalidated"), stage or WAL leftovers beside the file, and the re-run after space is freed
loading the day twice or not at all.

The commit is failed by a REAL full disk: the warehouse's WAL path is made a symlink to
`/dev/full`, on which every write fails with ENOSPC, so DuckDB's own write and commit code meets
the error (no mount, no root needed). A failure on the insert itself, and DuckDB invalidating
the database after it, are injected by a connection wrapper, since a small test day never makes
DuckDB write the file before its COMMIT.
"""
from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.warehouse import loader, transpile
from sales_assets.warehouse.assets import CHECK_MATCHES_CURATED, warehouse_tables
from sales_assets.warehouse.session import DuckDBSession, WarehouseWriteError, connect_duckdb
from sales_assets_tests.reliability.dagster_clock import virtual_retry_clock
from sales_assets_tests.reliability.warehouse_state import warehouse_state
from sales_assets_tests.warehouse.curated_builders import expected_figures, make_line, write_curated_day

KEPT_DAY, RELOADED_DAY = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
DAYS = [KEPT_DAY, RELOADED_DAY]
KEPT = [make_line("O-9", 1, KEPT_DAY, quantity=4, unit_price="12.34"), make_line("O-9", 2, KEPT_DAY)]
OLD = [make_line("O-1", 1, RELOADED_DAY, quantity=2, unit_price="9.99"), make_line("O-2", 1, RELOADED_DAY)]
NEW = [make_line("O-1", 1, RELOADED_DAY, quantity=3, unit_price="9.99"),
       make_line("O-3", 1, RELOADED_DAY, unit_price="7.25", customer_id="C7", product_id="P7")]
NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


def loaded_warehouse(tmp_path: Path) -> tuple[Path, Path]:
    """(lake root, warehouse file): both days loaded with their first lines, then the transform
    re-ran RELOADED_DAY with NEW lines, so the next load replaces it."""
    lake_root, path = tmp_path / "lake", tmp_path / "warehouse" / "sales.duckdb"
    write_curated_day(lake_root, KEPT_DAY, KEPT)
    write_curated_day(lake_root, RELOADED_DAY, OLD)
    with DuckDBWarehouseResource(path=str(path), lock_timeout_seconds=0).session() as session:
        loader.load_days(session, str(lake_root), DAYS)
    write_curated_day(lake_root, RELOADED_DAY, NEW)
    return lake_root, path


def assert_only_the_warehouse_file(path: Path) -> None:
    """No WAL, temp folder or stage file left beside the warehouse, no stage table inside it."""
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = connection.execute("SELECT table_name FROM duckdb_tables() UNION ALL "
                                    "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    assert not [name for (name,) in tables if name.startswith("stage_")], tables


def assert_reloaded_once(path: Path, before) -> None:
    figures, counts, rows = warehouse_state(path, DAYS)
    assert figures == {KEPT_DAY: expected_figures(KEPT), RELOADED_DAY: expected_figures(NEW)}
    assert counts["fact_sales"] == len(KEPT) + len(NEW)
    kept_rows = [row for row in rows["fact_sales"] if KEPT_DAY in row]
    assert kept_rows == [row for row in before[2]["fact_sales"] if KEPT_DAY in row]  # untouched, load columns too
    with DuckDBWarehouseResource(path=str(path), read_only=True).session() as session:
        assert loader.duplicate_fact_keys(session, DAYS) == 0 and loader.orphan_fact_rows(session, DAYS) == 0


class FullDiskConnection:
    """A DuckDB connection whose disk fills up on the statement `fails_on` (DuckDB SQL text):
    that statement raises DuckDB's IOException for the WAL, and, as DuckDB does after a fatal
    write error, every statement after it raises "database has been invalidated" (the real
    connection never runs it). `after_failure` records what was still tried on it."""

    def __init__(self, connection, wal_path: str, fails_on: str) -> None:
        self._connection, self._wal_path, self._fails_on = connection, wal_path, fails_on
        self.failed = False
        self.after_failure: list[str] = []

    def _check(self, sql: str) -> None:
        if self.failed:
            self.after_failure.append(sql)
            raise duckdb.FatalException(
                "FATAL Error: Failed: database has been invalidated because of a previous fatal error. "
                "The database must be restarted prior to being used again.")
        if sql.strip() == self._fails_on:
            self.failed = True
            raise duckdb.IOException(f'IO Error: Could not write file "{self._wal_path}": {NO_SPACE}')

    def execute(self, sql, *args, **kwargs):
        self._check(sql)
        return self._connection.execute(sql, *args, **kwargs)

    def executemany(self, sql, *args, **kwargs):
        self._check(sql)
        return self._connection.executemany(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._connection, name)


@pytest.mark.parametrize("fails_on", ["insert_fact_from_stage", "COMMIT"])
def test_a_full_disk_inside_the_load_fails_clearly_spends_the_session_and_keeps_every_day(tmp_path, fails_on):
    lake_root, path = loaded_warehouse(tmp_path)
    before = warehouse_state(path, DAYS)
    assert before[0][RELOADED_DAY] == expected_figures(OLD)
    sql = transpile.duckdb_sql(fails_on) if fails_on.islower() else fails_on
    real = connect_duckdb(str(path), lock_timeout_seconds=0)
    connection = FullDiskConnection(real, f"{path}.wal", sql)
    try:
        session = DuckDBSession(connection)
        with pytest.raises(WarehouseWriteError) as raised:
            loader.load_days(session, str(lake_root), [RELOADED_DAY])
        assert connection.failed, "the disk never filled up: the load did not reach the statement"
        # Clear: an OSError with ENOSPC, naming the warehouse file and DuckDB's cause.
        error = raised.value
        assert isinstance(error, OSError) and error.errno == errno.ENOSPC
        assert error.path == str(path.resolve())
        assert f"could not write the DuckDB warehouse file {path.resolve()}" in str(error)
        assert NO_SPACE in str(error) and "keeps its previous state" in str(error)
        assert isinstance(error.__cause__, duckdb.IOException)
        # Nothing ran on the failed connection afterwards (no ROLLBACK, no further statement),
        # and the spent session refuses to run one, without reaching DuckDB.
        assert connection.after_failure == []
        with pytest.raises(WarehouseWriteError, match="earlier .*not used again"):
            loader.fact_figures(session, DAYS)
        assert connection.after_failure == []
    finally:
        real.close()  # closing discards the open transaction, as a restart would

    # Reopened, the file holds every day as before, rows and sums, load columns included.
    assert warehouse_state(path, DAYS) == before
    assert_only_the_warehouse_file(path)

    # Space freed: a new session loads the day once.
    with DuckDBWarehouseResource(path=str(path), lock_timeout_seconds=0).session() as session:
        loader.load_days(session, str(lake_root), [RELOADED_DAY])
    assert_reloaded_once(path, before)
    assert_only_the_warehouse_file(path)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full to fill the disk")
def test_a_real_full_disk_at_commit_fails_the_step_clearly_and_its_retry_loads_the_day_once(tmp_path, monkeypatch):
    lake_root, path = loaded_warehouse(tmp_path)
    before = warehouse_state(path, DAYS)
    wal = Path(f"{path}.wal")
    assert not wal.exists()  # checkpointed on close: the next commit writes a new WAL
    wal.symlink_to("/dev/full")

    seen_while_waiting = []

    def space_freed_while_dagster_waits(seconds):
        wal.unlink()
        seen_while_waiting.append(warehouse_state(path, DAYS))

    retry_clock = virtual_retry_clock(monkeypatch, on_sleep=space_freed_while_dagster_waits)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [warehouse_tables], partition_key=RELOADED_DAY.isoformat(), instance=instance, raise_on_error=False,
            resources={"warehouse": DuckDBWarehouseResource(path=str(path), lock_timeout_seconds=0),
                       "lake": LocalLakeResource(root=str(lake_root))})

    # The first attempt met the full disk at COMMIT: up for retry on the policy's delay, with a
    # message naming the warehouse file and the cause; never a step failure.
    [retry] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    policy = warehouse_tables.op.retry_policy
    assert retry.event_specific_data.seconds_to_wait == policy.delay
    assert retry_clock.sleeps and all(seconds <= policy.delay for seconds in retry_clock.sleeps)
    text = retry.event_specific_data.error.to_string()
    assert "WarehouseWriteError" in text and f"could not write the DuckDB warehouse file {path.resolve()}" in text
    assert f"{wal}" in text and NO_SPACE in text  # DuckDB's own words: the WAL write hit ENOSPC
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]

    # The failed attempt committed nothing: both days' rows and sums, load columns included.
    assert seen_while_waiting == [before]

    # The retry, on a new connection with space freed, replaced the day once; checks pass.
    assert result.success
    assert_reloaded_once(path, before)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks[CHECK_MATCHES_CURATED] and all(checks.values())
    assert_only_the_warehouse_file(path)
