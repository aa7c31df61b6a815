"""The ingest Lambda: same client and landing code, S3 under moto, the real demo source.

Risk: a handler that reports failure as a return value (so Step Functions never
retries), commits a partial day, leaks the token, cannot read it from Secrets Manager,
or whose deployment zip does not import without Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from sales_assets.cli import main as cli_main
from sales_assets.ingest.landing import manifest_key, read_manifest, verify_manifest
from sales_assets.ingest.lambda_handler import LambdaConfigurationError, handler
from sales_assets.ingest.packaging import LAMBDA_MODULES, ZIP_NAME
from sales_assets.ingest.store import S3ObjectStore
from sales_assets.source.client import SourceTransientError
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer, FaultPlan

DAY = "2026-11-20"
BUCKET = "sales-lake"
CONFIG = DemoDataConfig(orders_per_day=60)


@pytest.fixture
def server():
    with DemoSourceServer(port=0, config=CONFIG) as started:
        yield started


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def lambda_env(server, **extra):
    return {"SALES_SOURCE_URL": server.url, "SALES_LAKE_ROOT": f"s3://{BUCKET}/lake", **extra}


def test_lands_the_day_to_s3_with_the_token_from_the_environment(server, s3):
    summary = handler({"date": DAY}, None, environ=lambda_env(server, SALES_SOURCE_TOKEN=server.token), s3_client=s3)
    store = S3ObjectStore(s3, BUCKET, "lake")
    manifest = read_manifest(store, dt.date.fromisoformat(DAY))
    assert manifest["run_id"] == summary["run_id"] and verify_manifest(store, manifest) == []
    assert summary["orders"] == manifest["record_count"] == server.figures(DAY)["raw_records"]
    assert summary["manifest_key"] == manifest_key(DAY) and summary["source_url"] == server.url
    assert summary["bytes"] == sum(p["bytes"] for p in manifest["pages"])
    assert server.token not in json.dumps(summary) and server.token not in json.dumps(manifest)
    assert all(key.startswith(f"lake/raw/sales_orders/order_date={DAY}/")
               for key in (o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]))


@pytest.mark.parametrize("stored", ["plain", "json"])
def test_reads_the_token_from_secrets_manager(server, s3, stored):
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    value = server.token if stored == "plain" else json.dumps({"token": server.token})
    secrets.create_secret(Name="sales/source-token", SecretString=value)
    summary = handler({"date": DAY}, None, s3_client=s3, secrets_client=secrets,
                      environ=lambda_env(server, SALES_SOURCE_TOKEN_SECRET_ID="sales/source-token"))
    assert summary["orders"] > 0


def test_a_missing_secret_names_the_secret_not_a_value(server, s3):
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    with pytest.raises(LambdaConfigurationError, match="'sales/nope'.*SALES_SOURCE_TOKEN_SECRET_ID"):
        handler({"date": DAY}, None, s3_client=s3, secrets_client=secrets,
                environ=lambda_env(server, SALES_SOURCE_TOKEN_SECRET_ID="sales/nope"))


def test_failure_raises_and_leaves_the_committed_day_untouched(server, s3):
    env = lambda_env(server, SALES_SOURCE_TOKEN=server.token)
    handler({"date": DAY}, None, environ=env, s3_client=s3)
    store = S3ObjectStore(s3, BUCKET, "lake")
    committed = read_manifest(store, dt.date.fromisoformat(DAY))
    server.fault_plan = FaultPlan(fail_first=[503] * 10)
    sleeps: list[float] = []
    with pytest.raises(SourceTransientError, match="5 attempts") as raised:
        handler({"date": DAY}, None, environ=env, s3_client=s3, sleep=sleeps.append)
    assert len(sleeps) == 4 and server.token not in str(raised.value)
    assert read_manifest(store, dt.date.fromisoformat(DAY)) == committed
    assert verify_manifest(store, committed) == []
    assert not store.exists(f"raw/sales_orders/order_date={DAY}/_lease.json")


@pytest.mark.parametrize("event", [{}, {"date": "20261120"}, {"date": 20261120}, None])
def test_a_bad_event_is_rejected(event, server, s3):
    with pytest.raises(LambdaConfigurationError, match="YYYY-MM-DD"):
        handler(event, None, environ=lambda_env(server, SALES_SOURCE_TOKEN="t"), s3_client=s3)


# Run inside the unzipped package: Dagster, pydantic and pyarrow are blocked, so the
# import succeeding proves the zip is self-sufficient besides boto3 (and moto, the test's).
ZIP_SMOKE = textwrap.dedent('''
    import json, sys
    BLOCKED = {"dagster", "dagster_aws", "dagster_pipes", "pydantic", "pyarrow", "pyspark", "duckdb", "sqlglot"}
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked in the Lambda smoke test: " + name)
    sys.meta_path.insert(0, Blocker())
    sys.path.insert(0, sys.argv[1])
    import boto3
    from moto import mock_aws
    from sales_assets.ingest import lambda_handler
    import requests
    assert lambda_handler.__file__.startswith(sys.argv[1]) and requests.__file__.startswith(sys.argv[1])
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="sales-lake")
        summary = lambda_handler.handler({"date": sys.argv[2]}, None)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sales-lake")["Contents"]]
    print(json.dumps({"summary": summary, "keys": keys, "dagster_loaded": "dagster" in sys.modules}))
''')


def test_package_lambda_builds_a_zip_that_runs_without_dagster(server, tmp_path, capsys):
    assert cli_main(["package-lambda", "--out", str(tmp_path / "dist")]) == 0
    archive = tmp_path / "dist" / ZIP_NAME
    assert str(archive) in capsys.readouterr().out
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        zipped.extractall(tmp_path / "unzipped")
    assert {f"sales_assets/{m}" for m in LAMBDA_MODULES} <= names and "requests/__init__.py" in names
    assert not any(n.startswith(("dagster", "boto3", "sales_assets/resources", "sales_assets/definitions")) for n in names)
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "SALES_PIPELINE_ENV": "aws", "SALES_SOURCE_URL": server.url,
           "SALES_SOURCE_TOKEN": server.token, "SALES_LAKE_ROOT": "s3://sales-lake/lake"}
    completed = subprocess.run([sys.executable, "-c", ZIP_SMOKE, str(tmp_path / "unzipped"), DAY],
                               env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    assert out["dagster_loaded"] is False
    assert out["summary"]["orders"] == server.figures(DAY)["raw_records"]
    assert f"lake/{manifest_key(DAY)}" in out["keys"]
    assert server.token not in completed.stdout + completed.stderr


def test_the_zip_is_reproducible(tmp_path):
    from sales_assets.ingest.packaging import build_lambda_zip

    first = build_lambda_zip(tmp_path / "a").path.read_bytes()
    second = build_lambda_zip(tmp_path / "b").path.read_bytes()
    assert first == second
