"""Guards how the Glue script talks to Dagster: launched as a real subprocess the way
PipesSubprocessClient launches it (env-var params), it must report all four curated assets with
metadata Dagster accepts and print the summary on stdout; launched the way PipesGlueClient
launches it (CLI args, context inline or on S3, messages on stdout or S3), it must open Pipes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from dagster._core.definitions.metadata.external_metadata import metadata_map_from_external
from dagster_pipes import PipesContext, encode_param
from moto import mock_aws

from .conftest import DAY_1, DAY_2, SCRIPT_PATH, build_demo_lake

ASSET_KEYS = ["curated/order_lines", "curated/quarantine", "curated/dim_customer", "curated/dim_product"]


def context_data(asset_keys=ASSET_KEYS) -> dict:
    return {
        "asset_keys": asset_keys, "code_version_by_asset_key": None,
        "provenance_by_asset_key": None, "partition_key": None, "partition_key_range": None,
        "partition_time_window": None, "run_id": "test-run", "job_name": None,
        "retry_number": 0, "extras": {},
    }


def read_messages(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_subprocess_run_reports_its_summary_through_pipes(tmp_path):
    # A dot folder like the default ./.sales_data/lake: Spark must still read it.
    lake_root = tmp_path / ".sales_data" / "lake"
    manifests = build_demo_lake(lake_root)
    messages_path = tmp_path / "messages.jsonl"
    env = dict(
        os.environ,
        DAGSTER_PIPES_CONTEXT=encode_param({"data": context_data()}),
        DAGSTER_PIPES_MESSAGES=encode_param({"path": str(messages_path)}),
        PYSPARK_PYTHON=sys.executable,
    )
    completed = subprocess.run(
        [sys.executable, str(SCRIPT_PATH), "--order_date", DAY_1, "--order_date_end", DAY_2,
         "--lake_root", str(lake_root), "--enable-metrics", "true"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # Under Pipes the summary travels as metadata; stdout stays free of it.
    assert '"figures_by_day"' not in completed.stdout
    messages = read_messages(messages_path)
    order_lines = next(
        metadata_map_from_external(m["params"]["metadata"])
        for m in messages
        if m["method"] == "report_asset_materialization" and m["params"]["asset_key"] == "curated/order_lines"
    )
    summary = {"figures_by_day": order_lines["figures_by_day"].value}
    for day in (DAY_1, DAY_2):
        figure = summary["figures_by_day"][day]
        assert figure["raw_lines"] == manifests[day]["line_count"]
        assert figure["raw_lines"] == (
            figure["curated_lines"] + figure["quarantine_lines"] + figure["superseded_lines"]
        )
    assert summary["figures_by_day"][DAY_1]["net"] == "147.06"

    assert messages[0]["method"] == "opened" and messages[-1]["method"] == "closed"
    assert "exception" not in (messages[-1]["params"] or {})
    assert any(m["method"] == "log" and "wrote order_lines" in m["params"]["message"] for m in messages)
    reported = {
        m["params"]["asset_key"]: metadata_map_from_external(m["params"]["metadata"])
        for m in messages if m["method"] == "report_asset_materialization"
    }
    assert sorted(reported) == sorted(ASSET_KEYS)
    lines = reported["curated/order_lines"]
    assert lines["dagster/row_count"].value == 12
    assert lines["dagster/column_schema"].schema.columns[13].name == "discount"
    assert lines["dagster/column_schema"].schema.columns[13].type == "decimal(12,10)"
    assert lines["figures_by_day"].data == summary["figures_by_day"]
    assert lines["paths"].data == [
        f"file://{lake_root}/curated/order_lines/order_date={DAY_1}",
        f"file://{lake_root}/curated/order_lines/order_date={DAY_2}",
    ]
    assert reported["curated/quarantine"]["quarantine_by_reason"].data[DAY_1]["bad_quantity"] == 3
    assert reported["curated/quarantine"]["dagster/row_count"].value == 33
    assert reported["curated/dim_customer"]["dagster/row_count"].value == 6
    assert reported["curated/dim_product"]["dagster/row_count"].value == 7


SUMMARY = {
    "tables": {
        table: {"row_count": 1, "rows_by_day": {DAY_1: 1}, "paths": ["s3://b/x"],
                "columns": [{"name": "order_date", "type": "date"}]}
        for table in ("order_lines", "quarantine", "dim_customer", "dim_product")
    },
    "figures_by_day": {DAY_1: {"raw_lines": 2, "curated_lines": 1, "quarantine_lines": 1,
                               "superseded_lines": 0, "net": "1.00"}},
    "quarantine_by_reason": {DAY_1: {"bad_status": 1}},
    "manifests": {DAY_1: {"run_id": "r", "record_count": 2, "line_count": 2}},
}


@pytest.fixture
def fresh_pipes():
    """PipesContext is a process-wide singleton; each test opens and closes its own."""
    PipesContext._instance = None
    yield
    PipesContext._instance = None


def test_glue_style_cli_args_with_messages_on_stdout(curate, monkeypatch, capsys, fresh_pipes):
    # PipesCloudWatchMessageReader asks for {"stdio": "stdout"}: Glue ships stdout to CloudWatch.
    monkeypatch.setattr(sys, "argv", [
        "script", "--lake_root", "s3://b", "--order_date", DAY_1,
        "--dagster-pipes-context", encode_param({"data": context_data(ASSET_KEYS[:2])}),
        "--dagster-pipes-messages", encode_param({"stdio": "stdout"}),
    ])
    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    pipes = curate.open_pipes()
    assert pipes is not None
    with pipes:
        curate.report_to_pipes(pipes, SUMMARY)
    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    methods = [m["method"] for m in messages]
    assert methods[0] == "opened" and methods[-1] == "closed"
    # Only the keys the step targets are reported; the others are logged as skipped.
    assert [m["params"]["asset_key"] for m in messages if m["method"] == "report_asset_materialization"] == (
        ASSET_KEYS[:2]
    )


def test_glue_style_cli_args_with_context_and_messages_on_s3(curate, monkeypatch, fresh_pipes):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="pipes")
        s3.put_object(Bucket="pipes", Key="ctx/context.json", Body=json.dumps(context_data()).encode())
        monkeypatch.setattr(sys, "argv", [
            "script", "--lake_root", "s3://b", "--order_date", DAY_1,
            "--dagster-pipes-context", encode_param({"bucket": "pipes", "key": "ctx/context.json"}),
            "--dagster-pipes-messages", encode_param({"bucket": "pipes", "key_prefix": "msgs"}),
        ])
        with curate.open_pipes() as pipes:
            curate.report_to_pipes(pipes, SUMMARY)
        bodies = [
            s3.get_object(Bucket="pipes", Key=item["Key"])["Body"].read().decode()
            for item in s3.list_objects_v2(Bucket="pipes", Prefix="msgs/")["Contents"]
        ]
    messages = [json.loads(line) for body in bodies for line in body.splitlines() if line]
    assert sorted(m["params"]["asset_key"] for m in messages if m["method"] == "report_asset_materialization") == (
        sorted(ASSET_KEYS)
    )


def test_no_pipes_context_means_standalone(curate, monkeypatch, fresh_pipes):
    monkeypatch.setattr(sys, "argv", ["script", "--lake_root", "x", "--order_date", DAY_1])
    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    assert curate.open_pipes() is None
