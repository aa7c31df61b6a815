"""Guards the plus row L of issue #10: the local warehouse file locked by another process during
a load. DuckDB lets one process at a time open the file, so another step (or a person's
`duckdb` shell) holding it must neither half-load a day nor fail the day for good: a lock
released within the wait is waited for and the day loads; a lock held longer fails the
warehouse step with a retryable error naming the file, before anything is written, and the
step's own retry policy loads the day once the holder has gone.

Each test holds the file from a real second process; the waits run on injected clocks (the
session's lock wait, Dagster's retry wait), so nothing here waits for real time to pass.
"""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.warehouse import loader
from sales_assets.warehouse.assets import CHECK_MATCHES_CURATED, warehouse_tables
from sales_assets.warehouse.session import LOCK_POLL_SECONDS, DuckDBLockedError, duckdb_session
from sales_assets_tests.reliability.dagster_clock import virtual_retry_clock
from sales_assets_tests.reliability.warehouse_state import warehouse_state
from sales_assets_tests.warehouse.curated_builders import expected_figures, make_line, write_curated_day

pytestmark = pytest.mark.slow  # each test starts a process holding the file

DAY = dt.date(2026, 11, 20)
OLD = [make_line("O-1", 1, DAY, quantity=2, unit_price="9.99"), make_line("O-2", 1, DAY)]
NEW = [make_line("O-1", 1, DAY, quantity=3, unit_price="9.99"), make_line("O-3", 1, DAY, unit_price="7.25")]

# Another process with the warehouse open for writing, as a loading step or a duckdb shell has
# it; it lets go when its stdin closes.
HOLDER = textwrap.dedent("""
    import sys, duckdb
    connection = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.read()
""")


class Holder:
    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked"

    def exit(self) -> None:
        """Let go of the file; returns once the process (and so its lock) is gone."""
        if self.process.poll() is None:
            self.process.communicate("", timeout=30)
        assert self.process.returncode == 0


@contextmanager
def holding(path: Path):
    holder = Holder(path)
    try:
        yield holder
    finally:
        holder.exit()


class FakeClock:
    """`time.monotonic` and `time.sleep` for the session's lock wait; `on_sleep` runs first."""

    def __init__(self, on_sleep=lambda seconds: None) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.on_sleep(seconds)
        self.now += seconds


def test_a_lock_released_within_the_timeout_is_waited_for_and_the_day_loads(tmp_path):
    lake_root, path = tmp_path / "lake", tmp_path / "warehouse.duckdb"
    write_curated_day(lake_root, DAY, NEW)
    with holding(path) as holder:
        # The holder exits during the session's first wait, well within the 5 s timeout.
        fake = FakeClock(on_sleep=lambda seconds: holder.exit())
        with duckdb_session(str(path), lock_timeout_seconds=5, sleep=fake.sleep, clock=fake.clock) as session:
            loader.ensure_schema(session)
            loader.load_days(session, str(lake_root), [DAY])
            assert loader.fact_figures(session, [DAY])[DAY] == expected_figures(NEW)
    assert fake.sleeps == [LOCK_POLL_SECONDS]  # it waited once, on the injected sleep


def test_a_lock_held_past_the_timeout_fails_naming_the_file_after_waiting_it_out(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with holding(path):
        fake = FakeClock()
        with pytest.raises(DuckDBLockedError) as caught:
            with duckdb_session(str(path), lock_timeout_seconds=2, sleep=fake.sleep, clock=fake.clock):
                pass
    # The whole timeout was waited on the injected clock, one poll at a time, then it gave up.
    assert fake.sleeps == [LOCK_POLL_SECONDS] * round(2 / LOCK_POLL_SECONDS)
    assert caught.value.path == str(path.resolve()) and "locked by another process" in str(caught.value)


def test_the_warehouse_step_retries_a_locked_file_and_loads_the_day_once_the_holder_exits(tmp_path, monkeypatch):
    lake_root, path = tmp_path / "lake", tmp_path / "warehouse.duckdb"
    lake = LocalLakeResource(root=str(lake_root))
    # No lock wait inside the step: the retry policy alone must carry the day over the lock.
    warehouse = DuckDBWarehouseResource(path=str(path), lock_timeout_seconds=0)
    write_curated_day(lake_root, DAY, OLD)
    with warehouse.session() as session:
        loader.ensure_schema(session)
        loader.load_days(session, str(lake_root), [DAY])
    write_curated_day(lake_root, DAY, NEW)  # the transform re-ran the day; now it is loaded again
    before = warehouse_state(path, [DAY])

    seen_while_waiting = []
    with holding(path) as holder:

        def holder_exits_while_dagster_waits(seconds):
            holder.exit()
            seen_while_waiting.append(warehouse_state(path, [DAY]))

        retry_clock = virtual_retry_clock(monkeypatch, on_sleep=holder_exits_while_dagster_waits)
        with dg.instance_for_test() as instance:
            result = dg.materialize([warehouse_tables], partition_key=DAY.isoformat(), instance=instance,
                                    resources={"warehouse": warehouse, "lake": lake}, raise_on_error=False)

    # The first attempt failed as retryable (STEP_UP_FOR_RETRY, on the asset's RetryPolicy
    # delay), with a message naming the file; it was never a step failure.
    [retry] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    policy = warehouse_tables.op.retry_policy
    assert policy.max_retries >= 1 and retry.event_specific_data.seconds_to_wait == policy.delay
    text = retry.event_specific_data.error.to_string()
    assert "WarehouseLockedError" in text and f"DuckDB warehouse file {path.resolve()} is locked by another process" in text
    assert "Nothing was loaded; retry" in text
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert retry_clock.sleeps and sum(retry_clock.sleeps) >= policy.delay - 1  # Dagster waited, virtually

    # Nothing was written by the refused attempt: every table as before, the day still OLD.
    assert seen_while_waiting == [before] and before[0][DAY] == expected_figures(OLD)

    # The retry, the holder gone, replaced the day: one copy, the new values, checks passing.
    assert result.success
    figures, counts, _ = warehouse_state(path, [DAY])
    assert figures[DAY] == expected_figures(NEW) and counts["fact_sales"] == len(NEW)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks[CHECK_MATCHES_CURATED] and all(checks.values())
