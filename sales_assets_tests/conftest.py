"""Session-wide fixtures: one SparkSession for the whole test session, temp lakes."""
from __future__ import annotations

import os
import sys

import pytest

# Spark's Python workers must run this interpreter (it has pyarrow); set before any
# SparkSession starts, which is why it is not in a fixture.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    """A local SparkSession configured like the Glue job's (UTC, few shuffle partitions).

    Starting a JVM costs seconds, so every test that needs Spark shares this one.
    """
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sales_assets_tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture
def lake_root(tmp_path):
    """An empty local lake folder laid out like the S3 bucket."""
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    """Tests never reach a real AWS account, even if the developer has credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def _isolated_defs_state_storage():
    """Each test starts without a current DefsStateStorage.

    Dagster 1.13 keeps the storage of the last DagsterInstance created in a context
    variable; once a test's instance is closed, the next test's ephemeral
    ``dg.materialize`` would resolve that dead instance's weakref and fail.
    """
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield

