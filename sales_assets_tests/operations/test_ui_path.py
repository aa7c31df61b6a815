"""Guards "materialize from `dagster dev`": through the same GraphQL API the UI calls, against
the project's workspace.yaml loaded in a code-server subprocess, a partition range launched
as a backfill (launchPartitionBackfill, as the UI's Materialize dialog does) must become ONE
run (single-run policy: one Spark job for the range), succeed end to end on real Spark, and
its materializations and check results must be readable back through GraphQL.

Starts Spark once (a few small days)."""

import logging
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from sales_assets.resources.etl import JavaMissingError, require_java

WORKSPACE = str(Path(__file__).resolve().parents[2] / "workspace.yaml")
DAYS = ["2025-06-01", "2025-06-02", "2025-06-03"]
TIMEOUT_SECONDS = 600

ASSET_NODES = """
query { assetNodes { assetKey { path } isPartitioned } }
"""

LAUNCH_BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
  }
}
"""

ASSET_MATERIALIZATIONS = """
query($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition
        runId
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""

CHECK_EXECUTIONS = """
query($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 10) {
    runId
    status
    evaluation { success severity metadataEntries { label } }
  }
}
"""


@pytest.fixture
def ui_environment(tmp_path, monkeypatch):
    try:
        require_java()
    except JavaMissingError as exc:
        pytest.skip(str(exc))
    # The code server and the run worker are subprocesses: they read these at start-up.
    for name, value in {
        "SALES_LAKE_ROOT": str(tmp_path / "lake"),
        "SALES_CATALOG_PATH": str(tmp_path / "catalog.sqlite"),
        "SALES_WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
        "SALES_ALERTS_PATH": str(tmp_path / "alerts.jsonl"),
        "SALES_DEMO_ORDERS_PER_DAY": "12",
        "SALES_PIPELINE_ENV": "local",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("SALES_SOURCE_URL", "SALES_SOURCE_TOKEN", "SALES_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _wait_for_runs(instance, context, backfill_id):
    logger = logging.getLogger("test_ui_path.backfill_daemon")
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        # One iteration of what `dagster dev`'s daemon does for a requested backfill.
        list(execute_backfill_iteration(context.process_context, logger))
        runs = instance.get_runs(filters=RunsFilter.for_backfill(backfill_id))
        if runs and all(run.is_finished for run in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"backfill {backfill_id} did not finish within {TIMEOUT_SECONDS}s")


def test_a_partition_range_materializes_from_the_ui_api(ui_environment):
    # Launch runs as soon as they are submitted (the test plays the daemon for backfills only).
    overrides = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}}
    with (
        dg.instance_for_test(overrides=overrides) as instance,
        define_out_of_process_context(WORKSPACE, None, instance) as context,
    ):
        # "Materialize all" in the UI: every asset the code location shows.
        nodes = execute_dagster_graphql(context, ASSET_NODES).data["assetNodes"]
        all_keys = [node["assetKey"]["path"] for node in nodes]
        assert ["warehouse", "fact_sales"] in all_keys and all(node["isPartitioned"] for node in nodes)
        launched = execute_dagster_graphql(
            context,
            LAUNCH_BACKFILL,
            variables={
                "backfillParams": {
                    # The Materialize dialog's form: each asset with the chosen range.
                    "partitionsByAssets": [
                        {"assetKey": {"path": path}, "partitions": {"range": {"start": DAYS[0], "end": DAYS[-1]}}}
                        for path in all_keys
                    ],
                }
            },
        )
        assert launched.errors is None, launched.errors
        outcome = launched.data["launchPartitionBackfill"]
        assert outcome["__typename"] == "LaunchBackfillSuccess", outcome
        runs = _wait_for_runs(instance, context, outcome["backfillId"])

        # Single-run backfill policy: the whole range is one run.
        assert len(runs) == 1, [r.run_id for r in runs]
        [run] = runs
        assert run.status == DagsterRunStatus.SUCCESS, run.status
        assert run.tags["dagster/asset_partition_range_start"] == DAYS[0]
        assert run.tags["dagster/asset_partition_range_end"] == DAYS[-1]
        step_starts = [
            e.step_key for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        ]
        assert step_starts.count("curated_sales") == 1  # one Spark job for the three days

        read = execute_dagster_graphql(
            context, ASSET_MATERIALIZATIONS, variables={"assetKey": {"path": ["warehouse", "fact_sales"]}, "partitions": DAYS}
        )
        assert read.errors is None, read.errors
        materializations = read.data["assetOrError"]["assetMaterializations"]
        assert sorted(m["partition"] for m in materializations) == DAYS
        assert {m["runId"] for m in materializations} == {run.run_id}
        row_counts = [e["intValue"] for e in materializations[0]["metadataEntries"] if e["label"] == "dagster/row_count"]
        assert row_counts and row_counts[0] > 0

        for asset_path, check_name in (
            (["curated", "order_lines"], "reconciles_with_raw"),
            (["warehouse", "fact_sales"], "matches_curated"),
            (["warehouse", "fact_sales"], "no_negative_quantities"),
        ):
            checks = execute_dagster_graphql(
                context, CHECK_EXECUTIONS, variables={"assetKey": {"path": asset_path}, "checkName": check_name}
            )
            assert checks.errors is None, checks.errors
            executions = [e for e in checks.data["assetCheckExecutions"] if e["runId"] == run.run_id]
            # A range step evaluates each check once for the whole range (Dagster 1.13 records the
            # per-day planned executions it did not evaluate one by one as SKIPPED).
            evaluated = [e for e in executions if e["evaluation"] is not None]
            assert len(evaluated) == 1, (asset_path, check_name, executions)
            assert evaluated[0]["status"] == "SUCCEEDED" and evaluated[0]["evaluation"]["success"], evaluated
            assert {e["status"] for e in executions} <= {"SUCCEEDED", "SKIPPED"}, executions
            labels = {entry["label"] for entry in evaluated[0]["evaluation"]["metadataEntries"]}
            assert "by_day" in labels  # the numbers the check compared
