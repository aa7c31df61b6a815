"""Guards `sales-pipeline bi-grants --apply` in aws: the printed statements are the ones applied,
all in ONE transaction, on whichever warehouse the settings choose — a redshift_connector
connection (BEGIN ... COMMIT) or, with SALES_AWS_REDSHIFT_ACCESS=data_api, one Data API batch —
and the password used to connect is never printed."""
from __future__ import annotations

import pytest

from sales_assets import cli
from sales_assets.reporting import grants
from sales_assets.resources.warehouse import RedshiftDataApiResource
from sales_assets_tests.resources.test_warehouse_resources import FakeRedshiftConnection, use_fake

SECRET = "hunter2-bi-grants"


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {
        "SALES_PIPELINE_ENV": "aws", "SALES_LAKE_ROOT": "s3://bucket/lake", "SALES_SOURCE_URL": "https://source.example",
        "SALES_SOURCE_TOKEN": "t", "SALES_AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


class RecordingDataApi:
    def __init__(self):
        self.batches = []

    def batch_execute_statement(self, **request):
        self.batches.append(request)
        return {"Id": "b-1"}

    def describe_statement(self, Id):  # noqa: N803
        return {"Id": Id, "Status": "FINISHED"}


def test_apply_through_the_data_api_is_one_batch(aws_env, capsys):
    aws_env.setenv("SALES_AWS_REDSHIFT_ACCESS", "data_api")
    aws_env.setenv("SALES_AWS_REDSHIFT_WORKGROUP", "sales-wg")
    fake = RecordingDataApi()
    aws_env.setattr(RedshiftDataApiResource, "client", lambda self: fake)
    assert cli.main(["bi-grants", "--apply"]) == 0
    statements = grants.bi_grant_statements()
    [batch] = fake.batches
    assert batch["Sqls"] == statements and batch["WorkgroupName"] == "sales-wg"
    assert batch["StatementName"] == "sales-bi-grants"
    assert capsys.readouterr().out == grants.render(statements)


def test_apply_through_a_connection_is_one_transaction(aws_env, capsys):
    aws_env.setenv("SALES_AWS_REDSHIFT_HOST", "sales.abc.us-east-1.redshift.amazonaws.com")
    aws_env.setenv("SALES_AWS_REDSHIFT_USER", "admin")
    aws_env.setenv("SALES_AWS_REDSHIFT_PASSWORD", SECRET)
    # No SALES_AWS_REDSHIFT_IAM_ROLE_ARN: granting runs no COPY, so it needs no COPY role.
    fake = FakeRedshiftConnection()
    captured = use_fake(aws_env, fake)
    assert cli.main(["bi-grants", "--apply"]) == 0
    statements = grants.bi_grant_statements()
    assert fake.sql_texts() == ["BEGIN", *statements, "COMMIT"]
    assert captured["password"] == SECRET and fake.closed
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err


def test_a_failing_grant_rolls_back_everything(aws_env):
    aws_env.setenv("SALES_AWS_REDSHIFT_HOST", "sales.abc.us-east-1.redshift.amazonaws.com")
    aws_env.setenv("SALES_AWS_REDSHIFT_USER", "admin")
    aws_env.setenv("SALES_AWS_REDSHIFT_PASSWORD", SECRET)
    fake = FakeRedshiftConnection(fail_on="CREATE USER")
    use_fake(aws_env, fake)
    with pytest.raises(RuntimeError, match="simulated failure"):
        cli.main(["bi-grants", "--apply"])
    assert fake.sql_texts()[0] == "BEGIN" and fake.sql_texts()[-1] == "ROLLBACK"
    assert "COMMIT" not in fake.sql_texts() and fake.closed
