"""The Step Functions export: golden files, the validators, graph-driven mapping, the CLI.

Risk guarded: an export that drifts unnoticed (goldens), that AWS would reject (statelint on
the ASL, cfn-lint on the template, placeholders without a DefinitionSubstitution), that maps
assets by name instead of their declared metadata (adding an asset must change the machine;
a level with two steps must run them in a Parallel), or that misses the retry/timeout/catch
contract on any Task.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from sales_assets import cli
from sales_assets.definitions import defs
from sales_assets.deploy import asl, export, template

GOLDEN = Path(__file__).parent / "golden"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' installs it)")
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export.export(defs, tmp_path_factory.mktemp("sfn"))


def _all_states(machine: dict):
    for name, state in machine["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _all_states(branch)
        if "ItemProcessor" in state:
            yield from _all_states(state["ItemProcessor"])


def test_export_matches_golden_files(exported):
    # Regenerate after an intended change: SALES_UPDATE_GOLDEN=1 pytest sales_assets_tests/deploy
    for produced in (exported.asl_path, exported.template_path):
        golden = GOLDEN / produced.name
        if os.environ.get("SALES_UPDATE_GOLDEN") == "1":
            golden.write_text(produced.read_text())
        assert produced.read_text() == golden.read_text(), f"{produced.name} differs from {golden}"


def test_export_is_deterministic(exported, tmp_path):
    again = export.export(defs, tmp_path)
    assert again.asl_path.read_text() == exported.asl_path.read_text()
    assert again.template_path.read_text() == exported.template_path.read_text()


def test_statelint_accepts_the_state_machine(exported):
    result = subprocess.run([_tool("statelint"), str(exported.asl_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_statelint_rejects_a_broken_machine(tmp_path):
    # Proves the validator runs and fails here: a dangling Next must not pass.
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}))
    result = subprocess.run([_tool("statelint"), str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


def test_cfn_lint_accepts_the_template(exported):
    result = subprocess.run([_tool("cfn-lint"), str(exported.template_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_task_has_timeout_retry_and_catch(exported):
    machine = json.loads(exported.asl_path.read_text())
    tasks = [(n, s) for n, s in _all_states(machine) if s["Type"] == "Task"]
    # lambda, crawler start+get, glue job, redshift batch+describe, row count+putMetricData, sns
    assert len(tasks) == 9
    for name, state in tasks:
        assert state["TimeoutSeconds"] > 0, name
        assert state["Retry"], name
        for retrier in state["Retry"]:
            assert isinstance(retrier["BackoffRate"], float) and retrier["MaxAttempts"] >= 1, name
        assert state["Catch"], name
    lambda_task = machine["States"]["Days"]["ItemProcessor"]["States"]["RawSalesOrders"]
    assert set(asl.LAMBDA_SERVICE_ERRORS) <= set(lambda_task["Retry"][0]["ErrorEquals"])
    crawler = machine["States"]["Days"]["ItemProcessor"]["States"]["CatalogSalesOrdersStart"]
    assert crawler["Retry"][0]["ErrorEquals"] == ["Glue.CrawlerRunningException"]


def test_map_backfills_with_bounded_concurrency_and_validates_dates(exported):
    machine = json.loads(exported.asl_path.read_text())
    days = machine["States"]["Days"]
    assert days["Type"] == "Map" and days["ItemsPath"] == "$.order_dates"
    assert 1 <= days["MaxConcurrency"] <= 4
    assert "86400000" in machine["States"]["ResolveDates"]["Output"]  # yesterday by default


def test_template_wires_every_placeholder_and_guards_the_bucket(exported):
    stack = yaml.safe_load(exported.template_path.read_text())
    resources = stack["Resources"]
    machine = resources["StateMachine"]["Properties"]
    assert set(machine["DefinitionSubstitutions"]) == asl.placeholders(machine["Definition"])
    bucket = resources["LakeBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"] and bucket["LifecycleConfiguration"]["Rules"]
    types = {r["Type"] for r in resources.values()}
    assert {"AWS::Lambda::Function", "AWS::Glue::Job", "AWS::Glue::Crawler", "AWS::Glue::Classifier",
            "AWS::Glue::Database", "AWS::Events::Rule", "AWS::SNS::Topic", "AWS::CloudWatch::Alarm"} <= types
    assert resources["CurateJob"]["Properties"]["Command"]["ScriptLocation"]["Fn::Sub"].startswith("s3://")
    alarms = {r["Properties"]["MetricName"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"ExecutionsFailed", "ExecutionsTimedOut", "QuarantinedLines", "Rows"} <= alarms
    no_rows = resources["NoRowsAlarm"]["Properties"]
    # "No rows loaded in 26 h": hourly periods, every one without a Rows >= 1 datapoint breaching.
    assert (no_rows["Period"] * no_rows["EvaluationPeriods"], no_rows["DatapointsToAlarm"]) == (26 * 3600, 26)
    assert no_rows["TreatMissingData"] == "breaching" and no_rows["Namespace"] == {"Ref": "MetricsNamespace"}
    assert machine["DefinitionSubstitutions"]["MetricsNamespace"] == {"Ref": "MetricsNamespace"}
    # Step Functions may call exactly what its states call, nothing more.
    policy = resources["StateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    actions = {a for s in policy for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "s3:*" not in actions and "*" not in actions
    assert {"lambda:InvokeFunction", "glue:StartCrawler", "glue:GetCrawler", "glue:StartJobRun",
            "redshift-data:BatchExecuteStatement", "redshift-data:DescribeStatement", "sns:Publish"} <= actions


def test_unsubstituted_placeholder_is_refused():
    with pytest.raises(asl.GraphError, match="Nope"):
        template.build_template({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "${Nope}", "End": True}}})


def _with_extra(*extra) -> dg.Definitions:
    return dg.Definitions(assets=[*defs.assets, *extra])


def test_adding_an_asset_with_integration_metadata_changes_the_machine():
    base = asl.build_state_machine(asl.pipeline_steps(defs))
    returns = dg.AssetSpec("raw/sales_returns", metadata={"aws/integration": "lambda", "aws/resource": "ReturnsFunctionArn"})
    changed = asl.pipeline_steps(_with_extra(returns))
    assert [s.name for s in changed.levels[0]] == ["RawSalesOrders", "RawSalesReturns"]
    machine = asl.build_state_machine(changed)
    assert machine != base
    processor = machine["States"]["Days"]["ItemProcessor"]
    level0 = processor["States"][processor["StartAt"]]
    assert level0["Type"] == "Parallel" and len(level0["Branches"]) == 2
    assert "ReturnsFunctionArn" in asl.placeholders(machine)


def test_a_downstream_asset_appends_a_step_after_its_parent():
    extra = dg.AssetSpec("curated/returns", deps=[dg.AssetKey(["catalog", "sales_orders"])],
                         metadata={"aws/integration": "glue_job"})
    steps = asl.pipeline_steps(_with_extra(extra))
    names = [[s.name for s in level] for level in steps.levels]
    assert names[2] == ["CuratedReturns", "CuratedSales"] and names[3] == ["WarehouseTables"]


def test_assets_without_metadata_are_skipped_and_bridged():
    steps = asl.pipeline_steps(defs)
    assert steps.skipped == ("reporting/sales_dashboard", "reporting/views")
    # Mapping follows metadata, not names: an unknown integration is refused, naming the asset.
    bad = dg.AssetSpec("raw/other", metadata={"aws/integration": "ftp"})
    with pytest.raises(asl.GraphError, match="raw/other"):
        asl.pipeline_steps(_with_extra(bad))
    bridged = dg.AssetSpec("warehouse/after_reporting", deps=[dg.AssetKey(["reporting", "views"])],
                           metadata={"aws/integration": "redshift_data"})
    step = next(s for s in asl.pipeline_steps(_with_extra(bridged)).steps if s.name == "WarehouseAfterReporting")
    assert step.upstream == ("WarehouseTables",)


def test_cli_export_writes_both_files(tmp_path, capsys):
    assert cli.main(["export-stepfunctions", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "state_machine.asl.json").exists() and (tmp_path / "template.yaml").exists()
    assert "not exported" in capsys.readouterr().out
