"""Guards the configuration surface: local defaults work with an empty environment,
bad values fail at load time naming the variable, and secrets never print."""

import datetime as dt
from pathlib import Path

import pytest

from sales_assets.settings import SettingsError, load_settings


def test_empty_environment_gives_the_local_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.env == "local"
    assert settings.source_url is None
    assert settings.lake_root == str(tmp_path / ".sales_data" / "lake")
    assert settings.warehouse_path == str(tmp_path / ".sales_data" / "warehouse.duckdb")
    assert settings.partition_start == dt.date(2020, 1, 1)


def test_relative_paths_are_resolved_so_subprocesses_agree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"SALES_LAKE_ROOT": "somewhere/lake"})
    assert Path(settings.lake_root).is_absolute()
    assert settings.lake_root == str(tmp_path / "somewhere" / "lake")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SALES_PIPELINE_ENV": "prod"}, "SALES_PIPELINE_ENV"),
        ({"SALES_PARTITION_START": "2020-13-01"}, "SALES_PARTITION_START"),
        ({"SALES_SOURCE_URL": "ftp://x"}, "SALES_SOURCE_URL"),
        ({"SALES_SOURCE_URL": "http://x"}, "SALES_SOURCE_TOKEN"),
        ({"SALES_SCHEDULE_HOUR_UTC": "25"}, "SALES_SCHEDULE_HOUR_UTC"),
        ({"SALES_PIPELINE_ENV": "aws", "SALES_SOURCE_URL": "https://x", "SALES_SOURCE_TOKEN": "t"}, "SALES_LAKE_ROOT"),
        ({"SALES_LAKE_ROOT": "s3://bucket/x"}, "SALES_PIPELINE_ENV"),
    ],
)
def test_bad_values_fail_naming_the_variable(environ, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_secrets_never_appear_in_repr_or_public_dict():
    settings = load_settings(
        {
            "SALES_PIPELINE_ENV": "aws",
            "SALES_LAKE_ROOT": "s3://bucket/lake",
            "SALES_SOURCE_URL": "https://source.example",
            "SALES_SOURCE_TOKEN": "s3cr3t-token",
            "SALES_AWS_REDSHIFT_PASSWORD": "hunter2-pw",
        }
    )
    assert settings.source_token == "s3cr3t-token"
    for text in (repr(settings), str(settings.public_dict())):
        assert "s3cr3t-token" not in text
        assert "hunter2-pw" not in text
    assert settings.public_dict()["source_token"] == "<set>"


AWS_BASE = {
    "SALES_PIPELINE_ENV": "aws",
    "SALES_LAKE_ROOT": "s3://bucket/lake",
    "SALES_SOURCE_URL": "https://source.example",
    "SALES_SOURCE_TOKEN": "t",
}
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redshift/loader-AbCdEf"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"SALES_AWS_REDSHIFT_ACCESS": "odbc"}, "SALES_AWS_REDSHIFT_ACCESS"),
        ({"SALES_AWS_REDSHIFT_WORKGROUP": "wg", "SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER": "c"}, "SALES_AWS_REDSHIFT_WORKGROUP"),
        ({"SALES_AWS_REDSHIFT_PASSWORD": "pw", "SALES_AWS_REDSHIFT_SECRET_ARN": SECRET_ARN}, "SALES_AWS_REDSHIFT_SECRET_ARN"),
        ({"SALES_AWS_REDSHIFT_SECRET_ARN": "redshift/loader"}, "SALES_AWS_REDSHIFT_SECRET_ARN"),
        ({"SALES_AWS_REDSHIFT_ACCESS": "data_api"}, "SALES_AWS_REDSHIFT_WORKGROUP"),
        ({"SALES_AWS_REDSHIFT_ACCESS": "data_api", "SALES_AWS_REDSHIFT_WORKGROUP": "wg",
          "SALES_AWS_REDSHIFT_PASSWORD": "hunter2-pw"}, "SALES_AWS_REDSHIFT_PASSWORD"),
    ],
)
def test_contradicting_redshift_settings_fail_naming_the_variables(extra, named):
    with pytest.raises(SettingsError, match=named) as caught:
        load_settings({**AWS_BASE, **extra})
    assert "hunter2-pw" not in str(caught.value)


def test_redshift_settings_choose_the_warehouse_resource(monkeypatch):
    import dagster as dg

    from sales_assets.resources import build_resources
    from sales_assets.resources.warehouse import RedshiftDataApiWarehouseResource, RedshiftWarehouseResource

    monkeypatch.setenv("SALES_AWS_REDSHIFT_PASSWORD", "hunter2-pw")
    connection = build_resources(load_settings({
        **AWS_BASE, "SALES_AWS_REDSHIFT_HOST": "wg.1.us-east-1.redshift-serverless.amazonaws.com",
        "SALES_AWS_REDSHIFT_WORKGROUP": "wg", "SALES_AWS_REDSHIFT_USER": "loader",
        "SALES_AWS_REDSHIFT_PASSWORD": "hunter2-pw",
    }))["warehouse"]
    assert isinstance(connection, RedshiftWarehouseResource) and connection.workgroup == "wg"
    # The password goes in as an EnvVar: the resource's config names the variable, not the value.
    assert isinstance(connection.password, dg.EnvVar) and connection.password.env_var_name == "SALES_AWS_REDSHIFT_PASSWORD"
    assert "hunter2-pw" not in repr(connection)

    by_secret = build_resources(load_settings({
        **AWS_BASE, "SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER": "sales", "SALES_AWS_REDSHIFT_SECRET_ARN": SECRET_ARN,
    }))["warehouse"]
    assert isinstance(by_secret, RedshiftWarehouseResource)
    assert (by_secret.secret_arn, by_secret.cluster_identifier, by_secret.password) == (SECRET_ARN, "sales", None)

    settings = load_settings({
        **AWS_BASE, "SALES_AWS_REDSHIFT_ACCESS": "DATA_API", "SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER": "sales",
        "SALES_AWS_REDSHIFT_USER": "loader", "SALES_AWS_REGION": "eu-west-1",
        "SALES_AWS_REDSHIFT_IAM_ROLE_ARN": "arn:aws:iam::123456789012:role/copy",
    })
    assert settings.aws_redshift_access == "data_api"
    data_api = build_resources(settings)["warehouse"]
    assert isinstance(data_api, RedshiftDataApiWarehouseResource)
    assert data_api.data_api.target() == {"Database": "dev", "ClusterIdentifier": "sales", "DbUser": "loader"}
    assert data_api.data_api.region == "eu-west-1" and data_api.iam_role_arn.endswith("role/copy")
    assert load_settings({}).aws_redshift_access == "connection"
