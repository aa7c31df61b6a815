"""Guards issue #10 row 17 where Dagster is not the caller: the exported Step Functions state
machine (and a run by hand) starts the Glue job without lease arguments, and its backfill Map
runs two executions at once, so two jobs of one day, or a job and a Dagster run, could overlap
and interleave their commits. Without lease arguments the job must take the same day leases as
the Dagster asset (`curated/_leases/order_date=D.json`, `sales_assets.ingest.lease`) before
reading or writing anything, all days or none, hold them for the whole job and release them at
the end, also on failure; a day another run holds must fail the job before anything is written,
naming the holder and its expiry; a day taken over while the job runs must get no further commit
from it, and the job's release must leave the new holder's lease in place. The same on S3 (boto3
conditional puts and deletes, against moto)."""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from sales_assets.deploy import asl
from sales_assets.ingest.lease import DEFAULT_LEASE_TTL_SECONDS, LeaseHeldError
from sales_assets.ingest.store import LocalObjectStore, S3ObjectStore, Versioned
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.transform.assets import CURATED_LEASE_FOLDER, CuratedDayLease, curated_lease_key
from sales_assets_tests.glue_scripts.conftest import DAY_1, DAY_2, SCRIPT_PATH, build_demo_lake, load_script
from sales_assets_tests.reliability.conftest import DAY, OLD
from sales_assets_tests.reliability.lease_probes import record_heartbeats, wait_for_beats
from sales_assets_tests.warehouse.curated_builders import write_curated_day

DAYS = (dt.date.fromisoformat(DAY_1), dt.date.fromisoformat(DAY_2))
GLUE_ARGV = ["/tmp/glue/curate_sales_orders.py", "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_abc123",
             "--JOB_NAME", "sales-curate", "--order_date", DAY_1, "--lake_root", "s3://lake"]


@pytest.fixture(scope="module")
def curate():
    return load_script()


def script_argv(lake_root: Path, *extra: str) -> list[str]:
    return ["curate_sales_orders.py", "--lake_root", str(lake_root), "--order_date", DAY_1,
            "--order_date_end", DAY_2, *extra]


def curated_tree(lake_root: Path) -> dict[str, bytes]:
    """Every curated file except the leases (relative name -> bytes)."""
    folder = lake_root / "curated"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "_leases" not in p.parts}


def lease_files(lake_root: Path) -> list[str]:
    folder = lake_root / CURATED_LEASE_FOLDER
    return sorted(p.name for p in folder.glob("*.json")) if folder.exists() else []


def test_the_jobs_lease_keys_and_refusal_marker_are_the_assets_and_the_state_machines(curate):
    assert curate.LEASE_KEY_PREFIX == CURATED_LEASE_FOLDER
    assert curate.DayLease(curate.LEASE_KEY_PREFIX, "r").key(DAY_1) == curated_lease_key(DAYS[0])
    assert fnmatch.fnmatchcase(f"{curate.LEASE_HELD_MARKER}: anything", asl.LEASE_HELD_PATTERN)
    assert curate.job_run_identity(GLUE_ARGV) == ("jr_abc123", "glue job run jr_abc123 of job sales-curate")
    run_id, owner = curate.job_run_identity(["x.py", "--lake_root", "l"])
    assert run_id.startswith("curate-") and "pid" in owner


@pytest.mark.slow
def test_a_job_without_lease_arguments_holds_every_day_while_it_runs_then_releases_them(
        tmp_path, spark, curate, monkeypatch):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)
    real_run, seen = curate.run, []

    def run_and_look(spark_, lake_root_, dates, log=None, lease=None):
        # What another run finds while this job works: both days leased to this job's run id,
        # unexpired at that moment.
        seen.append((lease.run_id, time.time(),
                     {day: json.loads((lake_root / curated_lease_key(day)).read_text()) for day in DAYS}))
        return real_run(spark_, lake_root_, dates, log=log, lease=lease)

    monkeypatch.setattr(curate, "run", run_and_look)
    summary = curate.main(script_argv(lake_root))
    ((run_id, looked_at, held),) = seen
    assert run_id.startswith("curate-")
    assert {day: (lease["run_id"], lease["expires_at"] > looked_at) for day, lease in held.items()} == {
        day: (run_id, True) for day in DAYS}
    assert all("curate_sales_orders.py pid" in lease["owner"] for lease in held.values())
    # Committed under its own lease (each commit checked it), then released.
    assert lease_files(lake_root) == []
    assert summary["order_dates"] == [DAY_1, DAY_2]
    lake = LocalLakeResource(root=str(lake_root))
    for day in DAYS:
        assert lake.curated_files("order_lines", day)


def day_files(lake_root: Path, day: str) -> dict[str, bytes]:
    """The curated files of one day, every table (relative name -> bytes)."""
    return {name: data for name, data in curated_tree(lake_root).items() if f"/order_date={day}/" in f"/{name}"}


@pytest.mark.slow
def test_a_job_holding_its_own_leases_stops_at_a_day_taken_over_and_leaves_the_new_holders_lease(
        tmp_path, spark, curate, monkeypatch):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)
    curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=lambda message: None)  # the days' current output
    before = {day: day_files(lake_root, day) for day in (DAY_1, DAY_2)}
    lake = LocalLakeResource(root=str(lake_root))
    rows_before = sorted(map(repr, lake.read_curated("order_lines", DAYS[0]).to_pylist()))
    commit_day, commits, taken = curate.commit_day, [], {}

    def commit_then_lose_day_2(*args, **kwargs):
        listed = commit_day(*args, **kwargs)
        commits.append(args[2:4])
        if len(commits) == 1:
            # The job's first commit (order_lines of DAY_1) is done and DAY_2's is next: another
            # run takes DAY_2 over as a real one would, once the job's lease has expired.
            later = time.time() + 10 * DEFAULT_LEASE_TTL_SECONDS
            CuratedDayLease(lake, DAYS[1], "other", owner="dagster run other", clock=lambda: later).acquire()
            taken["lease"] = (lake_root / curated_lease_key(DAYS[1])).read_bytes()
        return listed

    monkeypatch.setattr(curate, "commit_day", commit_then_lose_day_2)
    monkeypatch.setattr(curate, "get_spark", lambda: spark)
    with pytest.raises(curate.LeaseLostError, match=f"order_date={DAY_2}: lease .* belongs to run 'other'"):
        curate.main(script_argv(lake_root))  # no lease arguments: the job holds both days itself

    # DAY_2 committed nothing more (refused at its first table): byte for byte the earlier run's.
    assert commits == [("order_lines", DAY_1)]
    assert day_files(lake_root, DAY_2) == before[DAY_2]
    # DAY_1, as `run` commits table by table: order_lines is this job's (same rows, new files),
    # its other tables still the earlier run's until the day is run again.
    after_1 = day_files(lake_root, DAY_1)
    assert {n: d for n, d in after_1.items() if not n.startswith("order_lines/")} == {
        n: d for n, d in before[DAY_1].items() if not n.startswith("order_lines/")}
    assert {n for n in after_1 if n.startswith("order_lines/")} != {
        n for n in before[DAY_1] if n.startswith("order_lines/")}
    assert rows_before and sorted(map(repr, lake.read_curated("order_lines", DAYS[0]).to_pylist())) == rows_before
    # The job released its own lease of DAY_1 and left the new holder's lease of DAY_2 alone.
    assert lease_files(lake_root) == [f"order_date={DAY_2}.json"]
    assert (lake_root / curated_lease_key(DAYS[1])).read_bytes() == taken["lease"]
    assert not [p for p in (lake_root / "curated").rglob("_staging_*")]


def test_a_job_that_fails_releases_its_leases(tmp_path, curate, monkeypatch):
    lake_root = tmp_path / "lake"

    def failing_run(spark_, lake_root_, dates, log=None, lease=None):
        assert lease_files(lake_root) == [f"order_date={DAY_1}.json", f"order_date={DAY_2}.json"]
        raise curate.ManifestMissingError("raw day missing")

    monkeypatch.setattr(curate, "run", failing_run)
    monkeypatch.setattr(curate, "get_spark", lambda: None)
    with pytest.raises(curate.ManifestMissingError):
        curate.main(script_argv(lake_root))
    assert lease_files(lake_root) == []


@pytest.mark.parametrize("held_days", [(DAYS[0],), (DAYS[1],), DAYS], ids=["first", "second", "both"])
def test_a_day_held_by_another_run_refuses_the_job_before_it_writes_anything(tmp_path, curate, monkeypatch,
                                                                             held_days):
    lake_root = tmp_path / "lake"
    lake = LocalLakeResource(root=str(lake_root))
    assert DAY == DAYS[0]
    write_curated_day(lake_root, DAY, OLD)  # a day committed earlier, which must stay as it is
    before = curated_tree(lake_root)
    holders = {day: CuratedDayLease(lake, day, "dagster-run-1", owner="dagster run dagster-run-1").acquire()
               for day in held_days}
    held_bytes = {day: (lake_root / curated_lease_key(day)).read_bytes() for day in held_days}
    started = []
    monkeypatch.setattr(curate, "get_spark", lambda: started.append("spark"))
    monkeypatch.setattr(curate, "run", lambda *a, **k: started.append("run"))
    try:
        with pytest.raises(LeaseHeldError) as refused:
            curate.main(script_argv(lake_root))
    finally:
        remaining = {day: (lake_root / curated_lease_key(day)).read_bytes() for day in held_days}
        for holder in holders.values():
            holder.release()
    message = str(refused.value)
    first_held = min(held_days)
    assert message.startswith(f"{curate.LEASE_HELD_MARKER}: the curated job took no day lease and wrote nothing")
    assert f"order_date={first_held}" in message and "dagster run dagster-run-1" in message
    assert "expires at" in message and refused.value.expires_at > time.time()
    assert started == []  # no Spark, no read, no write
    assert remaining == held_bytes  # the holder's leases untouched
    # No lease of this job left behind (all or none), the curated days byte for byte as before,
    # no staging folder.
    assert lease_files(lake_root) == []
    assert curated_tree(lake_root) == before
    assert not [p for p in (lake_root / "curated").rglob("_staging_*")]


@pytest.mark.slow
def test_the_script_run_by_hand_is_refused_while_another_process_holds_the_day(tmp_path):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)
    lake = LocalLakeResource(root=str(lake_root))
    with CuratedDayLease(lake, DAYS[1], "dagster-run-2", owner="dagster run dagster-run-2"):
        completed = subprocess.run([sys.executable, str(SCRIPT_PATH), *script_argv(lake_root)[1:]],
                                   capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode != 0
    assert f"{load_script().LEASE_HELD_MARKER}: the curated job took no day lease" in completed.stderr
    assert f"curated order_date={DAY_2} is being transformed by another run (dagster run dagster-run-2" in (
        completed.stderr)
    # The state machine's refusal pattern finds it in a Glue-like error text.
    last_line = completed.stderr.strip().splitlines()[-1]
    assert fnmatch.fnmatchcase(json.dumps({"ErrorMessage": last_line}), asl.LEASE_HELD_PATTERN)
    assert lease_files(lake_root) == [] and not (lake_root / "curated" / "order_lines").exists()


def test_the_jobs_heartbeat_renews_its_leases(tmp_path, curate, monkeypatch):
    store, key = LocalObjectStore(tmp_path / "lake"), curated_lease_key(DAYS[0])
    heartbeats = record_heartbeats(monkeypatch)
    reads: list[Versioned | None] = []
    stop = threading.Event()

    def watch() -> None:
        # Another run looking at the key all the while: a renewal swaps it in one step, so the
        # key is never absent (an absent key would let a second writer create it).
        while not stop.is_set():
            reads.append(store.read_versioned(key))

    with curate.hold_day_leases(str(tmp_path / "lake"), [DAY_1], "jr_abc123", "glue job run jr_abc123",
                                heartbeat_seconds=0.01):
        first = store.read_versioned(key)
        (heartbeat,) = heartbeats
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            wait_for_beats(heartbeat, 5)
        finally:
            stop.set()
            watcher.join()
        current = store.read_versioned(key)
        assert heartbeat.errors == []
        assert current.version != first.version, "the heartbeat never renewed the lease"
        assert json.loads(current.data)["expires_at"] > json.loads(first.data)["expires_at"]
        assert json.loads(current.data)["run_id"] == "jr_abc123"
    assert reads and None not in reads
    assert store.read_versioned(key) is None


def test_a_dagster_run_is_refused_while_the_job_holds_the_day(tmp_path, curate):
    lake_root = tmp_path / "lake"
    lake, script_lake = LocalLakeResource(root=str(lake_root)), curate.Lake(str(lake_root))
    with curate.hold_day_leases(str(lake_root), [DAY_1], "jr_abc123", "glue job run jr_abc123") as day_lease:
        with pytest.raises(LeaseHeldError, match=f"order_date={DAY_1} is being transformed by another run "
                                                 f"\\(glue job run jr_abc123"):
            CuratedDayLease(lake, DAYS[0], "dagster-run-3").acquire()
        day_lease.ensure_held(curate.LocalFiles(script_lake), script_lake, DAY_1)  # the job's commits go on
    assert lease_files(lake_root) == []


# --------------------------------------------------------------------------------------
# S3: the leases through boto3's conditional puts (moto), at the lease-taking function
# --------------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        yield client


def s3_leases(client, prefix: str) -> dict[str, dict]:
    listed = client.list_objects_v2(Bucket="lake", Prefix=prefix).get("Contents", [])
    return {o["Key"]: json.loads(client.get_object(Bucket="lake", Key=o["Key"])["Body"].read()) for o in listed}


def test_on_s3_the_job_takes_both_days_with_conditional_puts_and_releases_them(s3, curate):
    prefix = f"prod/{CURATED_LEASE_FOLDER}/"
    with curate.hold_day_leases("s3a://lake/prod", [DAY_1, DAY_2], "jr_1", "glue job run jr_1", s3_client=s3):
        held = s3_leases(s3, prefix)
        assert {key: lease["run_id"] for key, lease in held.items()} == {
            f"prod/{curated_lease_key(day)}": "jr_1" for day in DAYS}
        # A Dagster run on the same bucket (the asset's own lease class) is refused, naming the job.
        with pytest.raises(LeaseHeldError, match=f"order_date={DAY_1}.*glue job run jr_1.*expires at"):
            CuratedDayLease(S3ObjectStore(s3, "lake", "prod"), DAYS[0], "dagster-run-4").acquire()
    assert s3_leases(s3, prefix) == {}


def test_on_s3_a_day_held_by_another_execution_leaves_no_lease_of_this_job(s3, curate):
    prefix = f"prod/{CURATED_LEASE_FOLDER}/"
    with curate.hold_day_leases("s3://lake/prod", [DAY_2], "jr_first", "glue job run jr_first", s3_client=s3):
        first = s3_leases(s3, prefix)
        with pytest.raises(LeaseHeldError) as refused:
            with curate.hold_day_leases("s3://lake/prod", [DAY_1, DAY_2], "jr_second", "glue job run jr_second",
                                        s3_client=s3):
                pytest.fail("the block must not run when a day is held")
        assert s3_leases(s3, prefix) == first  # DAY_1 released again, DAY_2 still the first job's
    message = str(refused.value)
    assert message.startswith(curate.LEASE_HELD_MARKER) and "glue job run jr_first" in message
    assert f"order_date={DAY_2}" in message and refused.value.expires_at is not None
    assert s3_leases(s3, prefix) == {}


def old_boto3_client(members: dict[str, set[str]]):
    """A client whose botocore knows only ``members`` (besides Bucket, Key, Body) per operation."""

    class OldClient:
        class meta:
            class service_model:
                @staticmethod
                def operation_model(name):
                    shape = type("Shape", (), {"members": {"Bucket", "Key", "Body", *members[name]}})
                    return type("Op", (), {"input_shape": shape})

    return OldClient()


def test_a_boto3_without_conditional_writes_fails_clearly_before_taking_anything(curate):
    client = old_boto3_client({"PutObject": set(), "DeleteObject": set()})
    with pytest.raises(RuntimeError, match="IfNoneMatch, IfMatch on PutObject; IfMatch on DeleteObject.*"
                                           "--additional-python-modules"):
        with curate.hold_day_leases("s3://lake/prod", [DAY_1], "jr_1", "glue job run jr_1", s3_client=client):
            pytest.fail("no lease without conditional writes")


def test_a_boto3_without_conditional_deletes_fails_clearly_before_taking_anything(curate):
    # Conditional puts alone are not enough: the release would then delete unconditionally and
    # could delete the lease of a run that took the day over.
    client = old_boto3_client({"PutObject": {"IfNoneMatch", "IfMatch"}, "DeleteObject": set()})
    with pytest.raises(RuntimeError, match=r"\(IfMatch on DeleteObject\).*--additional-python-modules"):
        with curate.hold_day_leases("s3://lake/prod", [DAY_1], "jr_1", "glue job run jr_1", s3_client=client):
            pytest.fail("no lease without conditional deletes")
