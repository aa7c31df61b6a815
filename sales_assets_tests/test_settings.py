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
