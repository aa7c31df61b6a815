"""Guards `sales-pipeline powerbi` without --host: the files point at the configured Redshift
(SALES_AWS_REDSHIFT_HOST/PORT/DATABASE, else the endpoint AWS reports for the configured
Serverless workgroup or provisioned cluster), and with nothing configured it exits 2 with one
line saying what to set instead of writing files for a made-up host."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from sales_assets import cli
from sales_assets.reporting import powerbi
from sales_assets.settings import load_settings

REDSHIFT_VARS = ("SALES_AWS_REDSHIFT_HOST", "SALES_AWS_REDSHIFT_PORT", "SALES_AWS_REDSHIFT_DATABASE",
                 "SALES_AWS_REDSHIFT_WORKGROUP", "SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER", "SALES_AWS_REDSHIFT_ACCESS",
                 "SALES_AWS_REDSHIFT_PASSWORD", "SALES_AWS_REDSHIFT_SECRET_ARN", "SALES_PIPELINE_ENV", "SALES_LAKE_ROOT",
                 "SALES_SOURCE_URL", "SALES_AWS_REGION")


@pytest.fixture
def env(monkeypatch):
    for name in REDSHIFT_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def server_of(folder):
    details = json.loads((folder / "sales_redshift.pbids").read_text())["connections"][0]["details"]
    return details["address"]["server"], details["address"]["database"]


def test_the_configured_host_port_and_database_are_the_defaults(env, tmp_path, capsys):
    env.setenv("SALES_AWS_REDSHIFT_HOST", "wg.123456789012.eu-west-1.redshift-serverless.amazonaws.com")
    env.setenv("SALES_AWS_REDSHIFT_PORT", "5440")
    env.setenv("SALES_AWS_REDSHIFT_DATABASE", "sales")
    assert cli.main(["powerbi", "--out", str(tmp_path)]) == 0
    assert server_of(tmp_path) == ("wg.123456789012.eu-west-1.redshift-serverless.amazonaws.com:5440", "sales")
    assert '"wg.123456789012.eu-west-1.redshift-serverless.amazonaws.com:5440", "sales"' in (
        tmp_path / "queries_import.pq").read_text()
    # Flags still win over the settings.
    assert cli.main(["powerbi", "--host", "other.example.com", "--port", "5439", "--database", "dev",
                     "--out", str(tmp_path)]) == 0
    assert server_of(tmp_path) == ("other.example.com:5439", "dev")


def test_the_cluster_endpoint_is_looked_up(env, tmp_path, capsys):
    env.setenv("SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER", "sales-cluster")
    env.setenv("SALES_AWS_REGION", "us-east-1")
    with mock_aws():
        created = boto3.client("redshift", region_name="us-east-1").create_cluster(
            ClusterIdentifier="sales-cluster", NodeType="ra3.xlplus", MasterUsername="admin",
            MasterUserPassword="Passw0rd-not-used", ClusterType="single-node", Port=5439,
        )
        assert cli.main(["powerbi", "--out", str(tmp_path)]) == 0
    address = created["Cluster"]["Endpoint"]["Address"]
    assert address.startswith("sales-cluster.") and server_of(tmp_path) == (f"{address}:5439", "dev")


class Serverless:
    def __init__(self, answer):
        self.answer, self.asked = answer, []

    def get_workgroup(self, workgroupName):  # noqa: N803
        self.asked.append(workgroupName)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_workgroup_endpoint_is_looked_up():
    settings = load_settings({"SALES_AWS_REDSHIFT_WORKGROUP": "sales-wg"})
    client = Serverless({"workgroup": {"endpoint": {"address": "sales-wg.1.us-east-1.redshift-serverless.amazonaws.com",
                                                    "port": 5439}}})
    assert powerbi.configured_endpoint(settings, serverless_client=client) == (
        "sales-wg.1.us-east-1.redshift-serverless.amazonaws.com", 5439)
    assert client.asked == ["sales-wg"]
    # A workgroup still being created has no endpoint yet: a clear error, not a KeyError.
    with pytest.raises(powerbi.EndpointError, match="workgroup 'sales-wg'.*pass --host"):
        powerbi.configured_endpoint(settings, serverless_client=Serverless({"workgroup": {}}))


def test_nothing_configured_is_a_one_line_error(env, tmp_path, capsys):
    assert cli.main(["powerbi", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "pass --host" in err and "SALES_AWS_REDSHIFT_HOST" in err and "SALES_AWS_REDSHIFT_WORKGROUP" in err
    assert not any(tmp_path.iterdir())


def test_an_unknown_cluster_is_a_one_line_error(env, tmp_path, capsys):
    env.setenv("SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER", "missing")
    with mock_aws():
        assert cli.main(["powerbi", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not read the endpoint of Redshift cluster 'missing'") and err.count("\n") == 1


def test_with_every_flag_no_setting_is_read(env, tmp_path):
    env.setenv("SALES_PIPELINE_ENV", "aws")  # invalid on its own: no lake root, no source URL
    assert cli.main(["powerbi", "--host", "h.example.com", "--port", "5439", "--database", "dev",
                     "--out", str(tmp_path)]) == 0
    assert server_of(tmp_path) == ("h.example.com:5439", "dev")
    assert cli.main(["powerbi", "--host", "h.example.com", "--out", str(tmp_path)]) == 2
