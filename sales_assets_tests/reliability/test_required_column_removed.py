"""Guards fault 12's last clause directly: a day already in the warehouse is re-landed without
a required column, and the daily job runs again.

Risk: the blocking catalog check not stopping the chain, so the transform and the load run on
a day without ``customer`` (every line quarantined, or a crash half way through the load) and
the warehouse loses or changes the day it held; or other days disturbed by the failed run.
"""
from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from sales_assets.catalog.assets import REQUIRED_COLUMNS_CHECK
from sales_assets.definitions import build_definitions
from sales_assets.ingest.landing import read_manifest
from sales_assets.operations.schedules import DAILY_JOB_NAME
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.settings import load_settings
from sales_assets.source import contract
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer
from sales_assets_tests.reliability.warehouse_state import warehouse_state

pytestmark = pytest.mark.slow  # one real Spark job through Pipes

DAY_1, DAY_2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)


class DriftingSource(DemoSourceServer):
    """The demo source; from ``drop_from`` on, the days in it are served without that column."""

    drop_from: dict[dt.date, str] = {}

    def _day(self, order_date):
        day = super()._day(order_date)
        column = self.drop_from.get(order_date)
        if column is None:
            return day
        records = []
        for body in day.records:
            record = contract.loads_exact(body)
            record.pop(column, None)
            records.append(contract.dumps_exact(record).encode("ascii"))
        return type(day)(records, day.as_of)


def test_a_required_column_removed_fails_the_blocking_check_and_the_warehouse_keeps_its_day(tmp_path, monkeypatch):
    with DriftingSource(port=0, token="drift-token", config=DemoDataConfig(orders_per_day=40)) as source:
        source.drop_from = {}
        monkeypatch.setenv("SALES_SOURCE_TOKEN", source.token)
        settings = load_settings({
            "SALES_LAKE_ROOT": str(tmp_path / "lake"), "SALES_CATALOG_PATH": str(tmp_path / "catalog.sqlite"),
            "SALES_WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
            "SALES_SOURCE_URL": source.url, "SALES_SOURCE_TOKEN": source.token,
        })
        job = build_definitions(settings).resolve_job_def(DAILY_JOB_NAME)
        instance = dg.DagsterInstance.ephemeral()
        loaded = job.execute_in_process(instance=instance, tags={
            "dagster/asset_partition_range_start": DAY_1.isoformat(),
            "dagster/asset_partition_range_end": DAY_2.isoformat()})
        assert loaded.success
        before = warehouse_state(settings.warehouse_path, [DAY_1, DAY_2])
        assert all(lines > 0 for lines, _ in before[0].values())
        lake = LocalLakeResource(root=str(settings.lake_root))
        first_raw_run = read_manifest(lake, DAY_2)["run_id"]

        # The source drops `customer` (a column the transform requires) from every order of day 2.
        source.drop_from = {DAY_2: "customer"}
        rerun = job.execute_in_process(partition_key=DAY_2.isoformat(), instance=instance, raise_on_error=False)

    assert not rerun.success
    relanded = read_manifest(lake, DAY_2)
    assert relanded["run_id"] != first_raw_run and relanded["record_count"] > 0  # the day was re-landed
    [check] = [e for e in rerun.get_asset_check_evaluations() if e.check_name == REQUIRED_COLUMNS_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert any("customer: missing" in problem for problem in check.metadata["problems"].value[DAY_2.isoformat()])
    # Nothing downstream of the catalog ran: no curated or warehouse materialization in the run.
    materialized = {event.event_specific_data.materialization.asset_key.path[0]
                    for event in rerun.get_asset_materialization_events()}
    assert materialized <= {"raw", "catalog"}, materialized
    # The warehouse holds exactly what it held: day 2's rows and sums, day 1, every table.
    assert warehouse_state(settings.warehouse_path, [DAY_1, DAY_2]) == before
