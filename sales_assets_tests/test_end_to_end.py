"""Guards the whole local pipeline, end to end and for real: the demo source over HTTP,
a lake folder, the catalog file, the Glue script on real Spark through Pipes, and a
DuckDB warehouse. The warehouse must hold exactly what the source says it served,
and re-materializing a day must leave every warehouse row as it was, except the load
columns a re-run rewrites (`loaded_at`, `ingest_run_id`)."""

import datetime as dt
import subprocess
import sys
from decimal import Decimal

import dagster as dg
import pytest

from sales_assets.definitions import build_definitions
from sales_assets.ingest.landing import read_manifest
from sales_assets.operations.demo import run_demo
from sales_assets.operations.schedules import DAILY_JOB_NAME
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.settings import load_settings
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer
from sales_assets.warehouse import loader
from sales_assets_tests.reliability.warehouse_state import RERUN_COLUMNS, warehouse_state

DAY = dt.date(2026, 11, 20)
ORDERS_PER_DAY = 300


def _settings(tmp_path, **extra):
    environ = {
        "SALES_LAKE_ROOT": str(tmp_path / "lake"),
        "SALES_CATALOG_PATH": str(tmp_path / "catalog.sqlite"),
        "SALES_WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
        "SALES_DEMO_ORDERS_PER_DAY": str(ORDERS_PER_DAY),
        **extra,
    }
    return load_settings(environ)


def _fact_load_stamps(path):
    """(ingest run ids, earliest and latest loaded_at) of the fact rows."""
    _, _, rows = warehouse_state(path, [DAY])
    names = [name for name, _ in loader.table_schemas()["fact_sales"]]
    run_ids = {row[names.index("ingest_run_id")] for row in rows["fact_sales"]}
    loaded = [row[names.index("loaded_at")] for row in rows["fact_sales"]]
    return run_ids, min(loaded), max(loaded)


@pytest.fixture
def source():
    with DemoSourceServer(port=0, token="e2e-token", config=DemoDataConfig(orders_per_day=ORDERS_PER_DAY)) as server:
        yield server


def test_a_day_lands_in_the_warehouse_exactly_as_served_and_reruns_change_nothing(tmp_path, source, monkeypatch):
    monkeypatch.setenv("SALES_SOURCE_TOKEN", source.token)  # read through dg.EnvVar by the resource
    settings = _settings(tmp_path, SALES_SOURCE_URL=source.url, SALES_SOURCE_TOKEN=source.token)
    job = build_definitions(settings).resolve_job_def(DAILY_JOB_NAME)
    instance = dg.DagsterInstance.ephemeral()

    first = job.execute_in_process(partition_key=DAY.isoformat(), instance=instance)
    assert first.success
    evaluations = first.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} >= {
        "raw_manifest_matches_pages",
        "reconciles_with_raw",
        "matches_curated",
        "unique_order_line_keys",
        "every_row_has_dimensions",
    }
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]

    served = source.figures(DAY)
    assert served["curated_lines"] > 0 and served["quarantine_lines"] > 0 and served["superseded_lines"] > 0
    figures, _, _ = warehouse_state(settings.warehouse_path, [DAY])
    assert figures[DAY] == (served["curated_lines"], served["net"])
    assert isinstance(figures[DAY][1], Decimal)

    curated = first.asset_materializations_for_node("curated_sales")
    by_key = {m.asset_key.to_user_string(): m.metadata for m in curated}
    assert by_key["curated/order_lines"]["dagster/row_count"].value == served["curated_lines"]
    assert by_key["curated/quarantine"]["dagster/row_count"].value == served["quarantine_lines"]
    assert "dagster/column_schema" in by_key["curated/order_lines"]

    first_state = warehouse_state(settings.warehouse_path, [DAY], ignoring=RERUN_COLUMNS)
    first_run_ids, _, first_loaded_until = _fact_load_stamps(settings.warehouse_path)
    second = job.execute_in_process(partition_key=DAY.isoformat(), instance=instance)
    assert second.success
    # Every table's sorted rows, counts and the day's sums are those of the first run, but for
    # the columns a re-run rewrites. Both did change, so each exclusion is needed: the
    # day was replaced by the re-run's rows, not left alone.
    assert warehouse_state(settings.warehouse_path, [DAY], ignoring=RERUN_COLUMNS) == first_state
    run_ids, loaded_from, _ = _fact_load_stamps(settings.warehouse_path)
    assert run_ids == {read_manifest(LocalLakeResource(root=settings.lake_root), DAY)["run_id"]} != first_run_ids
    assert loaded_from > first_loaded_until


def test_demo_runs_a_range_in_one_run_with_the_bundled_source(tmp_path):
    settings = _settings(tmp_path)  # SALES_SOURCE_URL unset: the resource starts the demo source
    days = [DAY, DAY + dt.timedelta(days=1)]
    summary = run_demo(days, settings=settings, instance=dg.DagsterInstance.ephemeral())
    assert summary.success, summary.failed_checks
    config = DemoDataConfig(orders_per_day=ORDERS_PER_DAY)
    with DemoSourceServer(port=0, config=config) as reference:
        for day_summary in summary.days:
            served = reference.figures(day_summary.day)
            assert day_summary.raw_lines == served["raw_lines"]
            assert day_summary.curated_lines == day_summary.warehouse_lines == served["curated_lines"]
            assert day_summary.quarantined_lines == served["quarantine_lines"]
            assert day_summary.net_revenue == served["net"]
    rendered = summary.render()
    assert "succeeded" in rendered and settings.warehouse_path in rendered and "make dev" in rendered


def test_dagster_accepts_the_code_location():
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "sales_assets.definitions"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_an_empty_day_runs_end_to_end_and_replaces_the_day_with_zero_rows(tmp_path):
    settings = _settings(tmp_path, SALES_DEMO_ORDERS_PER_DAY="0")
    job = build_definitions(settings).resolve_job_def(DAILY_JOB_NAME)
    result = job.execute_in_process(partition_key=DAY.isoformat(), instance=dg.DagsterInstance.ephemeral())
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    blocking = {"raw_manifest_matches_pages", "required_columns_readable", "reconciles_with_raw", "matches_curated"}
    assert blocking <= {e.check_name for e in evaluations}
    assert all(e.passed for e in evaluations if e.check_name in blocking)
    figures, _, _ = warehouse_state(settings.warehouse_path, [DAY])
    assert figures[DAY] == (0, Decimal("0.00"))
