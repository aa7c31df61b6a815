"""Guards how the Redshift warehouse authenticates and that its password never leaks
(RELIABILITY row 19): a password from a Secrets Manager secret (moto) reaches
redshift_connector and nothing else (repr, Python logs, the Dagster event log, errors and their
chained causes); an unusable secret fails naming the secret, never a value from it; a driver
that echoes the password has it scrubbed; Serverless workgroup and provisioned cluster map to
redshift_connector's IAM arguments; and the Data API returns typed values (Decimal, date,
datetime) so reads agree with the connection path."""
from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal

import boto3
import dagster as dg
import pytest
from moto import mock_aws

from sales_assets.resources import warehouse as warehouse_module
from sales_assets.resources.warehouse import RedshiftSecretError, RedshiftWarehouseResource
from sales_assets_tests.resources.test_warehouse_resources import FakeRedshiftConnection, use_fake

ROLE_ARN = "arn:aws:iam::123456789012:role/sales-redshift-copy"
SECRET = "s3cr3t-Pa55word-from-secrets-manager"
SERVERLESS_HOST = "sales-wg.123456789012.us-east-1.redshift-serverless.amazonaws.com"


def _exception_texts(error: BaseException) -> str:
    """The message of an exception and of everything chained to it."""
    texts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts.append(f"{type(error).__name__}: {error} {error.args!r}")
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


@pytest.fixture
def secrets():
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def _secret(client, name: str, value: str) -> str:
    return client.create_secret(Name=name, SecretString=value)["ARN"]


def test_the_password_comes_from_a_secrets_manager_secret_and_nowhere_else(secrets, monkeypatch, caplog):
    arn = _secret(secrets, "redshift/loader", json.dumps(
        {"username": "loader", "password": SECRET, "host": SERVERLESS_HOST, "port": 5440, "engine": "redshift"}))
    fake = FakeRedshiftConnection()
    captured = use_fake(monkeypatch, fake)

    @dg.asset
    def probe(context, warehouse: RedshiftWarehouseResource):
        with warehouse.session() as session:
            session.execute("fact_day_figures", {"sale_date": dt.date(2026, 11, 20)})
        context.log.info(f"warehouse {warehouse!r}")
        return dg.MaterializeResult(metadata={"warehouse": repr(warehouse)})

    resource = RedshiftWarehouseResource(
        secret_arn=arn, workgroup="sales-wg", database="sales", iam_role_arn=ROLE_ARN, region="us-east-1"
    )
    caplog.set_level(logging.DEBUG)
    result = dg.materialize([probe], resources={"warehouse": resource})

    assert result.success
    # The secret's username, password and endpoint reach the driver: password auth, not IAM.
    assert (captured["user"], captured["password"], captured["host"], captured["port"]) == (
        "loader", SECRET, SERVERLESS_HOST, 5440)
    assert "iam" not in captured
    assert SECRET not in repr(resource)
    # botocore's own DEBUG wire log prints response bodies (secrets included) by design; every
    # other logger, the project's first, must not.
    ours = [r for r in caplog.records if not r.name.startswith(("botocore", "urllib3", "moto"))]
    assert ours and all(SECRET not in r.getMessage() for r in ours)
    events = result.get_step_success_events() + list(result.all_events)
    assert all(SECRET not in str(event) for event in events)
    assert any("connected to Redshift" in r.getMessage() and "(secret)" in r.getMessage() for r in ours)


@pytest.mark.parametrize(
    ("secret_string", "named"),
    [
        (f"loader:{SECRET}", "not a JSON object"),  # not JSON: json's error would quote it
        (json.dumps({"username": "loader", "pass": SECRET}), "has no password"),
        (json.dumps({"password": SECRET}), "has no username"),
        (json.dumps([SECRET]), "not a JSON object"),
    ],
)
def test_an_unusable_secret_names_the_secret_never_its_value(secrets, monkeypatch, secret_string, named):
    arn = _secret(secrets, "redshift/broken", secret_string)
    use_fake(monkeypatch, FakeRedshiftConnection())
    resource = RedshiftWarehouseResource(secret_arn=arn, host="h", iam_role_arn=ROLE_ARN, region="us-east-1")
    with pytest.raises(RedshiftSecretError, match=named) as direct:
        resource.connect_kwargs()
    with pytest.raises(ConnectionError) as through_session:
        with resource.session():
            pass
    for caught in (direct, through_session):
        assert arn in str(caught.value)
        assert SECRET not in _exception_texts(caught.value)
    assert through_session.value.__cause__ is None and through_session.value.__context__ is None


def test_a_missing_or_forbidden_secret_names_the_secret(secrets):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redshift/absent-AbCdEf"
    resource = RedshiftWarehouseResource(secret_arn=arn, host="h", iam_role_arn=ROLE_ARN, region="us-east-1")
    with pytest.raises(RedshiftSecretError, match="could not read Redshift secret .*absent.*ResourceNotFoundException"):
        resource.connect_kwargs()


def test_a_driver_error_echoing_the_password_is_scrubbed(secrets, monkeypatch):
    import redshift_connector

    arn = _secret(secrets, "redshift/echo", json.dumps({"username": "loader", "password": SECRET}))

    def echoing_connect(**kwargs):
        raise redshift_connector.InterfaceError(f"auth failed for {kwargs['user']} with {kwargs['password']}")

    monkeypatch.setattr(redshift_connector, "connect", echoing_connect)
    for resource in (
        RedshiftWarehouseResource(secret_arn=arn, host="h", iam_role_arn=ROLE_ARN, region="us-east-1"),
        RedshiftWarehouseResource(password=SECRET, user="loader", host="h", iam_role_arn=ROLE_ARN),
    ):
        with pytest.raises(ConnectionError, match=r"auth failed for loader with \*\*\*") as caught:
            with resource.session():
                pass
        assert SECRET not in _exception_texts(caught.value)


def test_endpoint_and_auth_combinations_map_to_redshift_connector():
    serverless_password = RedshiftWarehouseResource(
        host=SERVERLESS_HOST, workgroup="sales-wg", user="loader", password=SECRET, iam_role_arn=ROLE_ARN
    ).connect_kwargs()
    assert serverless_password["host"] == SERVERLESS_HOST and "iam" not in serverless_password
    serverless_iam = RedshiftWarehouseResource(workgroup="sales-wg", iam_role_arn=ROLE_ARN).connect_kwargs()
    assert serverless_iam["iam"] and serverless_iam["serverless_work_group"] == "sales-wg"
    assert "password" not in serverless_iam and "db_user" not in serverless_iam
    cluster_iam = RedshiftWarehouseResource(
        host="c.abc.us-east-1.redshift.amazonaws.com", cluster_identifier="sales", user="loader", iam_role_arn=ROLE_ARN
    ).connect_kwargs()
    assert cluster_iam["iam"] and cluster_iam["cluster_identifier"] == "sales" and cluster_iam["db_user"] == "loader"
    with pytest.raises(ValueError, match="needs a user and a host"):
        RedshiftWarehouseResource(workgroup="sales-wg", password=SECRET, iam_role_arn=ROLE_ARN).connect_kwargs()
    with pytest.raises(ValueError, match="not both"):
        RedshiftWarehouseResource(
            password=SECRET, secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:x", iam_role_arn=ROLE_ARN
        ).connect_kwargs()
    with pytest.raises(ValueError, match="not both"):
        RedshiftWarehouseResource(workgroup="w", cluster_identifier="c", iam_role_arn=ROLE_ARN).connect_kwargs()


class _OnePageClient:
    """A redshift-data client answering one query with the given page."""

    def __init__(self, page):
        self.page = page

    def execute_statement(self, **request):
        return {"Id": "q-1"}

    def describe_statement(self, Id):  # noqa: N803
        return {"Id": Id, "Status": "FINISHED", "HasResultSet": True}

    def get_statement_result(self, Id):  # noqa: N803
        return self.page


def test_data_api_rows_come_back_typed_like_the_connection_path():
    page = {
        "ColumnMetadata": [{"typeName": t} for t in ("date", "numeric", "int8", "timestamp", "varchar", "numeric")],
        "Records": [[
            {"stringValue": "2026-11-20"}, {"stringValue": "8642026.22"}, {"longValue": 3},
            {"stringValue": "2026-11-20 12:30:00"}, {"stringValue": "2026-11-20"}, {"isNull": True},
        ]],
    }
    resource = warehouse_module.RedshiftDataApiResource(workgroup="wg")
    resource._client = _OnePageClient(page)
    assert resource.query("SELECT 1") == [(
        dt.date(2026, 11, 20), Decimal("8642026.22"), 3, dt.datetime(2026, 11, 20, 12, 30), "2026-11-20", None)]
    # A value that does not parse as its declared type is returned as sent, not dropped.
    assert warehouse_module._typed("not-a-date", "date") == "not-a-date"
