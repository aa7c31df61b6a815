"""Guards faults 15, 22, C and the job's own lease check (17) where they matter most: on S3.
On Glue the job commits each curated table-day through the Hadoop FileSystem API
(`HadoopFiles`), where a rename is a copy and a delete, a folder is only a key prefix and the
record is one PUT; the file:// tests cannot show that this still leaves readers the previous
day or the new one, whole. Here the unmodified Glue script runs with its lake at
`s3://lake/<prefix>` on moto's S3 server (127.0.0.1), reached by Spark's S3A connector with
`s3://` mapped to it as EMRFS maps it on Glue (jars: `sales_assets.transform.s3a_jars`). Proved: a day curated on S3 equals the same day curated in
a local lake, with records listing exactly the objects present and no staging left; a kill after
any step of a table-day's commit leaves the previous or the new day, whole, and the re-run
converges; a re-run gives identical rows; a day whose lease was taken over is refused before
anything moves. Spark runs in one spawned worker process (`s3a_worker`) for the whole module."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import boto3
import pytest
from dagster_aws.s3 import S3Resource
from moto.server import ThreadedMotoServer

from sales_assets.resources.lake import LocalLakeResource, S3LakeResource
from sales_assets.transform import curated_manifest, s3a_jars
from sales_assets.transform.assets import CURATED_LEASE_FOLDER, CuratedDayLease
from sales_assets_tests.glue_scripts.conftest import DAY_1, DAY_2, build_demo_lake, load_script
from sales_assets_tests.reliability import s3a_worker

pytestmark = pytest.mark.slow

REGION = "us-east-1"
BUCKET = "lake"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TABLES = ("order_lines", "quarantine", "dim_customer", "dim_product")
DAYS = (DAY_1, DAY_2)
# Longer than any run here, so the held lease only ends when a test takes it over.
LEASE_TTL_SECONDS = 900.0


@pytest.fixture(scope="session")
def s3a_spark_jars() -> str:
    """The hadoop-aws + AWS SDK jars, fetched from PyPI on a clean machine (cached after)."""
    return s3a_jars.spark_jars()


@pytest.fixture(scope="module")
def moto_endpoint():
    # S3A makes thousands of requests; one INFO line each would swamp a failure's report.
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", region_name=REGION, endpoint_url=endpoint, **KEYS).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()
    werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def s3(moto_endpoint):
    return boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint, **KEYS)


@pytest.fixture(scope="module")
def worker(s3a_spark_jars, moto_endpoint):
    """Runs a function of ``s3a_worker`` in the Spark-with-S3A process; returns its result."""
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=s3a_worker.start,
                               initargs=(s3a_spark_jars, moto_endpoint, KEYS["aws_access_key_id"],
                                         KEYS["aws_secret_access_key"]))

    def call(function, *args):
        return pool.submit(function, *args).result(timeout=600)

    try:
        yield call
    finally:
        try:
            call(s3a_worker.stop)
        finally:
            pool.shutdown()


def s3_lake(endpoint: str, prefix: str) -> S3LakeResource:
    """The package's own S3 lake (the loader's and the checks' reader) on ``prefix``."""
    return S3LakeResource(s3=S3Resource(region_name=REGION, endpoint_url=endpoint, **KEYS),
                          bucket=BUCKET, prefix=prefix)


def land(s3, local_root: Path, prefix: str) -> None:
    """Every file of a local lake put under ``prefix`` of the bucket, as the S3 lake holds it."""
    for path in sorted(local_root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(local_root).as_posix()}",
                          Body=path.read_bytes())


def objects(s3, prefix: str) -> dict[str, bytes]:
    """Key (below ``prefix``) -> bytes of every object under ``prefix``."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            found[item["Key"][len(prefix) + 1:]] = body
    return found


def rows(lake, table: str, day: str) -> list[dict]:
    """The committed rows of a table-day, read through its record, in a stable order."""
    table_rows = lake.read_curated(table, dt.date.fromisoformat(day)).to_pylist()
    return sorted(table_rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def content_hash(lake, day: str) -> str:
    """sha256 over the sorted committed rows of every table of ``day``."""
    digest = hashlib.sha256()
    for table in TABLES:
        digest.update(json.dumps(rows(lake, table, day), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def listed(lake, table: str, day: str) -> list[str]:
    """The file names the table-day's record lists (each checked to be present)."""
    return [key.rsplit("/", 1)[1] for key in lake.curated_files(table, dt.date.fromisoformat(day))]


def record_run(lake, table: str, day: str) -> str | None:
    """The job run whose files the table-day's record lists."""
    date = dt.date.fromisoformat(day)
    return curated_manifest.record_run_id(listed(lake, table, day),
                                          lake.uri(curated_manifest.record_key(table, date)))


def assert_days_hold_exactly_their_records(s3, prefix: str, days=DAYS, tables=TABLES) -> None:
    """Each table-day folder holds its `_manifest.json` and exactly the objects it lists (URL
    and size right); nothing else is left under curated/ but the leases."""
    stored = {key: len(body) for key, body in objects(s3, f"{prefix}/curated").items()}
    expected_keys = set()
    for table in tables:
        for day in days:
            folder = f"{table}/order_date={day}"
            record = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/curated/{folder}/_manifest.json")
                                ["Body"].read())
            listed = {}
            for entry in record["entries"]:
                assert entry["url"].startswith(f"s3://{BUCKET}/{prefix}/curated/{folder}/part-")
                listed[entry["url"].split(f"/{folder}/", 1)[1]] = entry["meta"]["content_length"]
            in_folder = {key.split("/", 2)[2]: size for key, size in stored.items() if key.startswith(f"{folder}/")}
            assert set(in_folder) == set(listed) | {"_manifest.json"}, folder
            assert all(in_folder[name] == size for name, size in listed.items()), folder
            expected_keys |= {f"{folder}/{name}" for name in in_folder}
    leftovers = {key for key in stored if key not in expected_keys and not key.startswith("_leases/")}
    assert leftovers == set()


@pytest.fixture(scope="module")
def local_demo(worker, tmp_path_factory) -> tuple[LocalLakeResource, dict]:
    """The demo lake's two days curated in a local lake by the same worker: the reference."""
    root = tmp_path_factory.mktemp("local") / "lake"
    build_demo_lake(root)
    result = worker(s3a_worker.curate, str(root), list(DAYS))
    return LocalLakeResource(root=str(root)), result["summary"]


@pytest.fixture(scope="module")
def s3_demo(worker, s3, moto_endpoint, tmp_path_factory) -> tuple[S3LakeResource, dict, dict]:
    """The demo lake's two days landed at s3://lake/demo and curated there by a job holding
    both days' leases (as the transform asset passes them): lake, summary, held leases."""
    root = tmp_path_factory.mktemp("raw") / "lake"
    build_demo_lake(root)
    land(s3, root, "demo")
    lake = s3_lake(moto_endpoint, "demo")
    leases = {day: CuratedDayLease(lake, dt.date.fromisoformat(day), "job", ttl_seconds=LEASE_TTL_SECONDS).acquire()
              for day in DAYS}
    result = worker(s3a_worker.curate, "s3://lake/demo", list(DAYS), (CURATED_LEASE_FOLDER, "job"))
    assert "summary" in result, result
    return lake, result["summary"], leases


def test_a_day_curated_on_s3_has_the_local_rows_and_records_listing_exactly_its_objects(s3, s3_demo, local_demo):
    lake, summary, _ = s3_demo
    local, local_summary = local_demo
    assert summary["figures_by_day"] == local_summary["figures_by_day"]
    assert summary["quarantine_by_reason"] == local_summary["quarantine_by_reason"]
    assert summary["tables"]["order_lines"]["paths"] == [f"s3://lake/demo/curated/order_lines/order_date={day}"
                                                         for day in DAYS]
    for table in TABLES:
        assert summary["tables"][table]["rows_by_day"] == local_summary["tables"][table]["rows_by_day"]
        for day in DAYS:
            assert rows(lake, table, day) == rows(local, table, day), (table, day)
            assert len(rows(lake, table, day)) == summary["tables"][table]["rows_by_day"][day]
    assert summary["tables"]["order_lines"]["rows_by_day"][DAY_1] > 0
    assert summary["tables"]["quarantine"]["rows_by_day"][DAY_2] == 0  # one schema-only file listed
    assert_days_hold_exactly_their_records(s3, "demo")
    (run,) = {record_run(lake, table, day) for table in TABLES for day in DAYS}
    assert run is not None  # one job run, named in every committed file


def test_a_kill_after_any_step_of_an_s3_commit_leaves_a_whole_day_and_the_rerun_converges(
        s3, worker, moto_endpoint, local_demo):
    local, _ = local_demo
    lake = s3_lake(moto_endpoint, "kill")
    day, table = DAY_1, "order_lines"
    source = [str(Path(local.root) / key) for key in local.curated_files(table, dt.date.fromisoformat(day))]
    reference = rows(local, table, day)
    # Two versions of the day that differ (a late correction dropped O-2): "new" is distinguishable.
    versions = {"A": (None, reference), "B": ("O-2", [row for row in reference if row["order_id"] != "O-2"])}
    assert len(versions["B"][1]) < len(versions["A"][1])
    folder = f"kill/curated/{table}/order_date={day}"

    assert not worker(s3a_worker.commit_table_day, "s3://lake/kill", table, day, source, "a0")["killed"]
    current, current_run = "A", "a0"
    kill_after = 1
    while True:
        new = "B" if current == "A" else "A"
        # A crashed earlier run's leftover, which the commit must remove too.
        s3.put_object(Bucket=BUCKET, Key=f"{folder}/part-00000-crashed.snappy.parquet", Body=b"PAR1")
        run = f"k{kill_after}"
        result = worker(s3a_worker.commit_table_day, "s3://lake/kill", table, day, source, run, kill_after,
                        versions[new][0])
        # Step 1 moves the one staged file in, step 2 writes the record: before it, the old day.
        whole, whole_run = (versions[current][1], current_run) if result["killed"] and kill_after < 2 else (
            versions[new][1], run)
        assert rows(lake, table, day) == whole, (kill_after, result)
        assert listed(lake, table, day) == [f"part-00000-{whole_run}.snappy.parquet"]

        rerun = f"r{kill_after}"
        assert not worker(s3a_worker.commit_table_day, "s3://lake/kill", table, day, source, rerun, None,
                          versions[new][0])["killed"]
        assert rows(lake, table, day) == versions[new][1]
        assert listed(lake, table, day) == [f"part-00000-{rerun}.snappy.parquet"]
        assert_days_hold_exactly_their_records(s3, "kill", days=[day], tables=[table])
        current, current_run = new, rerun
        if not result["killed"]:
            break
        kill_after += 1
    # The unkilled commit's steps, each of which was killed once before.
    assert result["steps"] == [f"moved:part-00000-{run}.snappy.parquet", "record", f"deleted:_staging_{run}",
                               "deleted:part-00000-crashed.snappy.parquet",
                               f"deleted:part-00000-r{kill_after - 1}.snappy.parquet"]
    assert kill_after == len(result["steps"]) + 1


def test_a_rerun_on_s3_gives_identical_rows_under_a_new_run_and_leaves_only_its_files(s3, worker, s3_demo):
    lake, _, _ = s3_demo
    before = {day: content_hash(lake, day) for day in DAYS}
    (run_before,) = {record_run(lake, table, day) for table in TABLES for day in DAYS}
    result = worker(s3a_worker.curate, "s3://lake/demo", list(DAYS))
    assert "summary" in result, result
    assert {day: content_hash(lake, day) for day in DAYS} == before
    (run_after,) = {record_run(lake, table, day) for table in TABLES for day in DAYS}
    assert run_after not in (None, run_before)
    assert_days_hold_exactly_their_records(s3, "demo")


def test_a_day_whose_lease_was_taken_over_is_refused_on_s3_before_anything_moves(s3, worker, s3_demo):
    lake, _, leases = s3_demo
    held = leases[DAY_1]
    later = held.clock() + held.ttl_seconds + 1  # the holder's lease has expired: another run takes it
    CuratedDayLease(lake, dt.date.fromisoformat(DAY_1), "other", clock=lambda: later).acquire()
    before = {key: body for key, body in objects(s3, "demo/curated").items() if not key.startswith("_leases/")}

    result = worker(s3a_worker.curate, "s3://lake/demo", list(DAYS), (CURATED_LEASE_FOLDER, "job"))

    name, message = result["error"]
    assert name == load_script().LeaseLostError.__name__
    assert f"order_date={DAY_1}: lease s3://lake/demo/curated/_leases/order_date={DAY_1}.json" in message
    assert "belongs to run 'other'" in message and "'job'" in message
    # Byte for byte as before: no file moved in, no record, nothing deleted, the staging removed.
    after = {key: body for key, body in objects(s3, "demo/curated").items() if not key.startswith("_leases/")}
    assert after == before
