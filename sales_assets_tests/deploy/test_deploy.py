"""``deploy-stepfunctions`` against moto: create, then update in place.

Risk guarded: a second deploy creating a duplicate state machine instead of updating the
first, a definition deployed with ``${...}`` placeholders left in it, or a CLI that reports
success without an AWS call.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from sales_assets import cli
from sales_assets.definitions import defs
from sales_assets.deploy import asl
from sales_assets.deploy.deploy import deploy_state_machine, substitute

ROLE = "arn:aws:iam::123456789012:role/sales-sfn"
SUBS = {
    "IngestFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:sales-ingest",
    "CrawlerName": "sales-raw", "GlueJobName": "curate", "RedshiftWorkgroup": "wg", "RedshiftDatabase": "dev",
    "RedshiftCopyRoleArn": "arn:aws:iam::123456789012:role/copy", "AlertTopicArn": "arn:aws:sns:us-east-1:123456789012:a",
    "LakeRoot": "s3://lake", "LakeBucket": "lake",
}


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("stepfunctions", region_name="us-east-1")


def test_missing_substitution_is_refused_before_any_call():
    definition = asl.build_state_machine(asl.pipeline_steps(defs))
    with pytest.raises(ValueError, match="LakeBucket"):
        substitute(definition, {k: v for k, v in SUBS.items() if k != "LakeBucket"})


def test_cli_creates_then_updates(aws, tmp_path, capsys):
    args = ["deploy-stepfunctions", "--role-arn", ROLE, "--name", "sales-pipeline"] + [
        a for k, v in SUBS.items() for a in ("--sub", f"{k}={v}")]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.startswith("created ")
    machines = aws.list_state_machines()["stateMachines"]
    assert [m["name"] for m in machines] == ["sales-pipeline"]
    deployed = aws.describe_state_machine(stateMachineArn=machines[0]["stateMachineArn"])["definition"]
    assert "${" not in deployed and SUBS["IngestFunctionArn"] in deployed

    # Second deploy from a changed file: same machine, new definition.
    changed = json.loads(deployed)
    changed["Comment"] = "changed"
    asl_file = tmp_path / "state_machine.asl.json"
    asl_file.write_text(json.dumps(changed))
    assert cli.main(args + ["--asl", str(asl_file)]) == 0
    assert capsys.readouterr().out.startswith("updated ")
    machines = aws.list_state_machines()["stateMachines"]
    assert len(machines) == 1
    assert json.loads(aws.describe_state_machine(stateMachineArn=machines[0]["stateMachineArn"])["definition"])[
        "Comment"] == "changed"


def test_deploy_function_reports_created_flag(aws):
    definition = asl.build_state_machine(asl.pipeline_steps(defs))
    arn, created = deploy_state_machine(aws, "m", definition, ROLE, SUBS)
    again, created_again = deploy_state_machine(aws, "m", definition, ROLE, SUBS)
    assert (created, created_again) == (True, False) and arn == again


def test_cli_rejects_malformed_sub(aws, capsys):
    assert cli.main(["deploy-stepfunctions", "--role-arn", ROLE, "--sub", "novalue"]) == 2
    assert aws.list_state_machines()["stateMachines"] == []
