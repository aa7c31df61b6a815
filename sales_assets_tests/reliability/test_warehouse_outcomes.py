"""Guards the warehouse half of faults 4, 11 and 18, source to warehouse through the daily job:
the demo source over HTTP, a lake folder, the catalog file, the Glue script on real Spark and
a DuckDB warehouse that already holds the days.

Risks: a late correction at the source re-run by the trailing-window schedule leaving the old
values, a second copy of the day, or figures that differ from the source's (11); a source
failing every attempt half-replacing a day the warehouse already holds, or disturbing other
days (4); a day that turned out empty at the source keeping its earlier rows in the warehouse,
because "replaced by zero rows" was only ever tried on an empty warehouse (18).

The three tests share one source, lake and warehouse, loaded once (one range run of three
days): each test re-runs only its own day and compares against the state it found, so they
pass in any order and alone.
"""
from __future__ import annotations

import datetime as dt
import random
import sys
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from sales_assets.definitions import build_definitions
from sales_assets.ingest.landing import read_manifest
from sales_assets.operations.schedules import (
    DAILY_JOB_NAME,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    TRAILING_WINDOW_SCHEDULE_NAME,
)
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.settings import load_settings
from sales_assets.source import contract
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer, FaultPlan
from sales_assets.warehouse import loader
from sales_assets_tests.reliability.dagster_clock import virtual_retry_clock
from sales_assets_tests.reliability.warehouse_state import warehouse_state

pytestmark = pytest.mark.slow  # real Spark jobs through Pipes

# One day per test: corrected late (11), emptied at the source (18; a day with quarantined
# lines, so its quarantine counts must go too), failing at the source (4).
CORRECTED_DAY, EMPTIED_DAY, FAILING_DAY = dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20)
DAYS = [CORRECTED_DAY, EMPTIED_DAY, FAILING_DAY]
ORDERS_PER_DAY = 40
MAX_ATTEMPTS = 3
# The warehouse tables that hold rows of one day, and the column naming it.
DAY_COLUMNS = {"fact_sales": "sale_date", "quarantine_daily": "quarantine_date"}
BLOCKING_CHECKS = {"raw_manifest_matches_pages", "required_columns_readable", "reconciles_with_raw", "matches_curated"}


class ScriptedSource(DemoSourceServer):
    """The demo source; a day in ``emptied`` is listed without a single order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.emptied: set[dt.date] = set()

    def _listing(self, order_date, starts_listing):
        listing = super()._listing(order_date, starts_listing)
        if order_date in self.emptied:
            return type(listing)([], listing.as_of)
        return listing


class Pipeline:
    """The shared set-up: the source, the daily job and where it writes."""

    def __init__(self, source: ScriptedSource, tmp: Path):
        self.source = source
        self.settings = load_settings({
            "SALES_LAKE_ROOT": str(tmp / "lake"), "SALES_CATALOG_PATH": str(tmp / "catalog.sqlite"),
            "SALES_WAREHOUSE_PATH": str(tmp / "warehouse.duckdb"),
            "SALES_SOURCE_URL": source.url, "SALES_SOURCE_TOKEN": source.token,
            # One day per trailing-window run keeps the correction test to its own day.
            "SALES_TRAILING_WINDOW_DAYS": "1",
        })
        self.definitions = build_definitions(self.settings)
        self.job = self.definitions.resolve_job_def(DAILY_JOB_NAME)
        self.instance = dg.DagsterInstance.ephemeral()
        self.lake_root = Path(self.settings.lake_root)
        self.lake = LocalLakeResource(root=str(self.lake_root))

    def state(self):
        return warehouse_state(self.settings.warehouse_path, DAYS)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    # From the second listing of a day on, the source re-sends that day's first order as
    # "returned" a day later; the first listing (the load below) is the clean day.
    plan = FaultPlan(late_correction=True)
    with pytest.MonkeyPatch.context() as patch, ScriptedSource(
            port=0, token="outcomes-token", config=DemoDataConfig(orders_per_day=ORDERS_PER_DAY),
            fault_plan=plan) as source:
        patch.setenv("SALES_SOURCE_TOKEN", source.token)  # read through dg.EnvVar by the resource
        pipeline = Pipeline(source, tmp_path_factory.mktemp("outcomes"))
        loaded = pipeline.job.execute_in_process(instance=pipeline.instance, tags={
            PARTITION_RANGE_START_TAG: DAYS[0].isoformat(), PARTITION_RANGE_END_TAG: DAYS[-1].isoformat()})
        assert loaded.success
        yield pipeline


def other_days(rows: dict[str, list[tuple]], day: dt.date) -> dict[str, list[tuple]]:
    """The day-bearing tables' rows of every day but ``day``."""
    schemas = loader.table_schemas()
    kept = {}
    for table, column in DAY_COLUMNS.items():
        position = [name for name, _ in schemas[table]].index(column)
        kept[table] = [row for row in rows[table] if row[position] != day]
    return kept


def fact_rows_of_order(rows: dict[str, list[tuple]], order_id: str) -> list[dict]:
    names = [name for name, _ in loader.table_schemas()["fact_sales"]]
    return [dict(zip(names, row)) for row in rows["fact_sales"] if row[names.index("order_id")] == order_id]


def error_chain(error) -> str:
    """A serialized error's message and its causes' messages."""
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def test_a_late_correction_rerun_by_the_trailing_window_replaces_the_day_with_the_sources_values(pipeline):
    before_figures, _, before_rows = pipeline.state()
    first_raw_run = read_manifest(pipeline.lake, CORRECTED_DAY)["run_id"]

    # The trailing-window schedule's tick two days after the day asks for exactly that day.
    schedule = pipeline.definitions.resolve_schedule_def(TRAILING_WINDOW_SCHEDULE_NAME)
    tick = dt.datetime.combine(CORRECTED_DAY + dt.timedelta(days=2), dt.time(4), tzinfo=dt.timezone.utc)
    [request] = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert (request.tags[PARTITION_RANGE_START_TAG], request.tags[PARTITION_RANGE_END_TAG]) == (
        CORRECTED_DAY.isoformat(), CORRECTED_DAY.isoformat())
    rerun = pipeline.job.execute_in_process(instance=pipeline.instance, tags=request.tags)
    assert rerun.success

    served = pipeline.source.figures(CORRECTED_DAY)  # the corrected listing, the one just served
    correction = pipeline.source.served_records(CORRECTED_DAY)[-1]
    assert correction["status"] == "returned"
    assert read_manifest(pipeline.lake, CORRECTED_DAY)["run_id"] != first_raw_run
    after_figures, _, after_rows = pipeline.state()
    assert after_figures[CORRECTED_DAY] == (served["curated_lines"], served["net"])
    with DuckDBWarehouseResource(path=pipeline.settings.warehouse_path, read_only=True).session() as session:
        assert loader.duplicate_fact_keys(session, DAYS) == 0

    # The corrected order: one row per line, now with the correction's status and updated_at.
    old = fact_rows_of_order(before_rows, correction["order_id"])
    new = fact_rows_of_order(after_rows, correction["order_id"])
    assert old and sorted(r["line_number"] for r in new) == sorted(r["line_number"] for r in old)
    assert {r["status"] for r in old} != {"returned"} and {r["status"] for r in new} == {"returned"}
    corrected_at = contract.parse_rfc3339(correction["updated_at"]).astimezone(dt.timezone.utc).replace(tzinfo=None)
    assert {r["updated_at"] for r in new} == {corrected_at} != {r["updated_at"] for r in old}
    # Nothing of the other days moved.
    assert other_days(after_rows, CORRECTED_DAY) == other_days(before_rows, CORRECTED_DAY)
    assert {d: f for d, f in after_figures.items() if d != CORRECTED_DAY} == {
        d: f for d, f in before_figures.items() if d != CORRECTED_DAY}


def test_a_source_failing_every_attempt_fails_the_day_and_changes_nothing_in_lake_or_warehouse(pipeline, monkeypatch):
    before = pipeline.state()
    assert before[0][FAILING_DAY][0] > 0
    raw_manifest = read_manifest(pipeline.lake, FAILING_DAY)
    curated_records = {path: path.read_bytes()
                       for path in pipeline.lake_root.glob(f"curated/*/order_date={FAILING_DAY}/_manifest.json")}
    assert curated_records

    # Dagster retries the step on the raw asset's own policy, its 30 s and longer waits passed
    # on a virtual clock (which fails at once if Dagster stops waiting through it), and the
    # policy's jitter held at zero so each wait is exactly the policy's delay for its attempt.
    # The client's backoff is zeroed too (run config replaces the resource's whole config, so
    # the source is named again).
    raw_policy = pipeline.job.graph.node_named("raw__sales_orders").definition.retry_policy
    step_attempts = raw_policy.max_retries + 1
    policy_module = sys.modules[dg.RetryPolicy.__module__]
    assert policy_module.random is random.random, "dagster's retry jitter no longer draws from random.random"
    monkeypatch.setattr(policy_module, "random", lambda: 0.5)  # PLUS_MINUS jitter: delay * (2 * 0.5 - 1) = 0
    retry_clock = virtual_retry_clock(monkeypatch)
    source_config = {"base_url": pipeline.source.url, "token": {"env": "SALES_SOURCE_TOKEN"},
                     "max_attempts": MAX_ATTEMPTS, "backoff_base_seconds": 0.0}
    clean_plan = pipeline.source.fault_plan
    pipeline.source.fault_plan = FaultPlan(fail_first=[503] * (MAX_ATTEMPTS * step_attempts), late_correction=True)
    pipeline.source.requests.clear()
    try:
        rerun = pipeline.job.execute_in_process(
            partition_key=FAILING_DAY.isoformat(), instance=pipeline.instance, raise_on_error=False,
            run_config={"resources": {"source": {"config": source_config}}})
    finally:
        pipeline.source.fault_plan = clean_plan

    assert not rerun.success
    # Every attempt of every try met a 503, and the step failed for good after its retries.
    answered = [r.status for r in pipeline.source.requests if r.path == contract.ORDERS_PATH]
    assert answered == [503] * (MAX_ATTEMPTS * step_attempts)
    retries = [e for e in rerun.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert [e.step_key for e in retries] == ["raw__sales_orders"] * (step_attempts - 1)
    # Each retry asked for the raw asset's policy delay of its attempt (the first: `delay`), and
    # Dagster waited for it once, on the virtual clock, less only the real time since the ask.
    requested = [e.event_specific_data.seconds_to_wait for e in retries]
    assert requested == [raw_policy.calculate_delay(attempt) for attempt in range(1, step_attempts)]
    assert requested[0] == raw_policy.delay
    assert len(retry_clock.sleeps) == len(requested)
    assert all(wait - 5 < slept <= wait for slept, wait in zip(retry_clock.sleeps, requested)), retry_clock.sleeps
    [failure] = [e for e in rerun.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "raw__sales_orders"
    assert "HTTP 503" in error_chain(failure.step_failure_data.error)
    materialized = {event.asset_key.to_user_string() for event in rerun.get_asset_materialization_events()}
    assert materialized == set(), materialized  # nothing downstream of the source ran: no curated, no warehouse
    # No manifest written: the day's committed raw and curated records are the ones of before.
    assert read_manifest(pipeline.lake, FAILING_DAY) == raw_manifest
    assert {p: p.read_bytes() for p in curated_records} == curated_records
    # Every warehouse row of every day, load columns included, is the one of before.
    assert pipeline.state() == before


def test_a_loaded_day_found_empty_at_the_source_is_replaced_by_zero_rows(pipeline):
    before_figures, _, before_rows = pipeline.state()
    assert before_figures[EMPTIED_DAY][0] > 0
    assert any(row[0] == EMPTIED_DAY for row in before_rows["quarantine_daily"])

    pipeline.source.emptied.add(EMPTIED_DAY)
    try:
        rerun = pipeline.job.execute_in_process(partition_key=EMPTIED_DAY.isoformat(), instance=pipeline.instance)
        assert pipeline.source.figures(EMPTIED_DAY)["raw_records"] == 0
    finally:
        pipeline.source.emptied.discard(EMPTIED_DAY)

    assert rerun.success
    evaluations = rerun.get_asset_check_evaluations()
    assert BLOCKING_CHECKS <= {e.check_name for e in evaluations}
    assert all(e.passed for e in evaluations if e.check_name in BLOCKING_CHECKS)
    assert read_manifest(pipeline.lake, EMPTIED_DAY)["record_count"] == 0
    after_figures, _, after_rows = pipeline.state()
    assert after_figures[EMPTIED_DAY] == (0, Decimal("0.00"))
    assert not any(row[0] == EMPTIED_DAY for row in after_rows["quarantine_daily"])
    # The other days keep their rows and sums; the dimensions lose nothing.
    assert other_days(after_rows, EMPTIED_DAY) == other_days(before_rows, EMPTIED_DAY)
    assert {d: f for d, f in after_figures.items() if d != EMPTIED_DAY} == {
        d: f for d, f in before_figures.items() if d != EMPTIED_DAY}
    for table in ("dim_customer", "dim_product", "dim_date"):
        assert after_rows[table] == before_rows[table], table
