"""Guards faults 14 and 17 where a lease refuses a step, in S3 (moto) and for the transform.

Risk: a crashed writer's lease blocking its day until a person re-runs it (the refusal was
not retryable, so Dagster's retries never saw it); a live writer's day taken over, or the
second run spinning without end instead of failing with the holder's name; two transform
jobs of one day running at once (each one's commit deletes the other's staged files); a
transform whose lease was taken over mid-job reported as a success.

Nothing here depends on how fast the machine is: Dagster's wait before each retry runs on a
virtual clock (`dagster_clock`), a live holder's lease outlasts any test (60 s), a crashed
holder's lease ages by exactly the time Dagster waited, and a heartbeat is waited for by its
beat counter. The lease numbers are the real ones (10 s margin, 3 retries).
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import time

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource
from moto import mock_aws

import sales_assets.ingest.assets as ingest_assets
import sales_assets.transform.assets as transform_assets
from sales_assets.ingest.assets import raw_manifest_matches_pages, raw_sales_orders
from sales_assets.ingest.landing import DayLease, lease_key, read_manifest
from sales_assets.ingest.lease import hold
from sales_assets.resources.etl import EtlResource
from sales_assets.resources.lake import LocalLakeResource, S3LakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.transform.assets import CuratedDayLease, curated_lease_key, curated_sales
from sales_assets_tests.reliability.dagster_clock import virtual_retry_clock
from sales_assets_tests.reliability.lease_probes import record_heartbeats, wait_for_beats

DAY = "2026-11-20"
DATE = dt.date.fromisoformat(DAY)


@pytest.fixture
def dagster_waits(monkeypatch):
    """Dagster's waits before retries, on a virtual clock (`.sleeps`: what it waited)."""
    return virtual_retry_clock(monkeypatch)


LIVE_TTL_SECONDS = 60.0  # a live holder's lease: far longer than any test takes
CRASHED_EXPIRES_IN = 42.0  # the crashed writer's lease, when the first attempt looks at it
PLANTED: list[str] = []


class PlantCrashedLease:
    """A lake whose first conditional put finds a lease of a writer that died a moment ago
    (nothing renews it; it expires in CRASHED_EXPIRES_IN s), so the first attempt is refused
    whatever the time Dagster took to start the step."""

    def create_exclusive(self, key: str, data: bytes) -> bool:
        if not PLANTED:
            PLANTED.append(key)
            super().write_bytes(key, json.dumps(
                {"run_id": "crashed", "owner": "dagster run crashed", "expires_at": time.time() + CRASHED_EXPIRES_IN,
                 "writer": {"host": "another-host", "boot_id": "x", "pid": 1, "started": "1"}}).encode())
        return super().create_exclusive(key, data)


class CrashedS3Lake(PlantCrashedLease, S3LakeResource):
    pass


class CrashedLocalLake(PlantCrashedLease, LocalLakeResource):
    pass


def crashed_lease_ages(monkeypatch, lake):
    """Dagster's waits on a virtual clock, during which the planted lease ages by as long as
    Dagster waited (nobody renews a crashed writer's lease), as it would in real time."""

    def age(seconds):
        for key in PLANTED:
            lease = json.loads(lake.read_bytes(key))
            if lease["run_id"] == "crashed":
                lease["expires_at"] -= seconds
                lake.write_bytes(key, json.dumps(lease).encode())

    return virtual_retry_clock(monkeypatch, on_sleep=age)


@pytest.fixture
def s3():
    PLANTED.clear()
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="sales-lake")
        yield {"s3": S3Resource(region_name="us-east-1"), "bucket": "sales-lake", "prefix": "prod"}


@pytest.fixture
def s3_lake(s3):
    return S3LakeResource(**s3)


def materialize_raw(lake, instance):
    return dg.materialize([raw_sales_orders, raw_manifest_matches_pages], partition_key=DAY, instance=instance,
                          resources={"source": SalesSourceResource(demo_orders_per_day=5), "lake": lake},
                          raise_on_error=False)


def events(result, kind):
    return [e for e in result.all_events if e.event_type == kind]


def failure_text(result) -> str:
    [failure] = events(result, dg.DagsterEventType.STEP_FAILURE)
    error = failure.step_failure_data.error
    return error.to_string()


def test_on_s3_a_crashed_writers_day_is_taken_over_by_dagsters_own_retry(s3, monkeypatch):
    s3_lake = CrashedS3Lake(**s3)
    waits = crashed_lease_ages(monkeypatch, s3_lake)
    with dg.instance_for_test() as instance:
        result = materialize_raw(s3_lake, instance)
    assert PLANTED == [lease_key(DAY)] and result.success
    [retry] = events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    # the wait is the holder's remaining lease plus the margin, not the retry policy's 30 s
    # (the lease was planted a moment after the attempt read its clock: up to a second more)
    asked = retry.event_specific_data.seconds_to_wait
    least = CRASHED_EXPIRES_IN + ingest_assets.LEASE_RETRY_MARGIN_SECONDS
    assert least <= asked <= least + 1 and sum(waits.sleeps) == pytest.approx(asked, abs=1)
    manifest = read_manifest(s3_lake, DATE)
    [mat] = result.asset_materializations_for_node("raw__sales_orders")
    assert manifest is not None and manifest["run_id"] == mat.metadata["by_day"].value[DAY]["run_id"]
    assert manifest["record_count"] == mat.metadata["orders"].value > 0
    assert not s3_lake.exists(lease_key(DAY))


def test_on_s3_a_live_writer_makes_the_second_run_wait_then_fail_naming_it(s3_lake, dagster_waits):
    # A live writer, its heartbeat running: its lease outlasts every wait of the second run.
    holder = DayLease(s3_lake, DATE, "first-run", owner="dagster run first", ttl_seconds=LIVE_TTL_SECONDS).acquire()
    holder.start_heartbeat()
    try:
        with dg.instance_for_test() as instance:
            result = materialize_raw(s3_lake, instance)
        assert not result.success
        retries = events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
        assert len(retries) == ingest_assets.LEASE_RETRIES == 3  # it waited each time, then gave up
        # each wait ran to just past the live lease's expiry, as the refusal said
        margin = ingest_assets.LEASE_RETRY_MARGIN_SECONDS
        assert all(margin < r.event_specific_data.seconds_to_wait <= LIVE_TTL_SECONDS + margin for r in retries)
        assert len(dagster_waits.sleeps) >= 3
        text = failure_text(result)
        assert "Exceeded max_retries of 3" in text
        assert "is being landed by another run" in text and "dagster run first" in text
        assert read_manifest(s3_lake, DATE) is None  # the second run wrote nothing
        holder.ensure_held()  # and did not take the live writer's lease
    finally:
        holder.release()


class RecordingEtl(EtlResource):
    """Stands in for the Glue job: records the lease each launch ran under, then stops the step."""

    def run_script(self, context, script, arguments, **options):
        lake = LocalLakeResource(root=arguments["lake_root"])
        holder = json.loads(lake.read_bytes(curated_lease_key(DATE)))
        LAUNCHES.append({"run_id": context.run_id, "lease_run_id": holder["run_id"]})
        if TAKE_OVER_DURING_JOB:
            # Another run takes the day over while the job runs (this run's lease had expired).
            lake.write_bytes(curated_lease_key(DATE), json.dumps(
                {"run_id": "other", "owner": "dagster run other", "expires_at": time.time() + 60}).encode())
            # Two beats: at least one renewal wholly after the takeover, which is refused.
            wait_for_beats(HEARTBEATS[-1], 2)
            return Finished()
        raise dg.Failure("stub job stops here", allow_retries=False)


class Finished:
    def get_results(self):
        return []


LAUNCHES: list[dict] = []
TAKE_OVER_DURING_JOB = False
HEARTBEATS: list = []  # the heartbeats the transform started, in order


@pytest.fixture
def etl(monkeypatch):
    LAUNCHES.clear()
    monkeypatch.setattr(sys.modules[__name__], "HEARTBEATS", record_heartbeats(monkeypatch))
    monkeypatch.setattr(transform_assets, "hold", functools.partial(hold, interval_seconds=0.05))
    return RecordingEtl()


def materialize_curated(lake, etl, instance):
    return dg.materialize([curated_sales], partition_key=DAY, instance=instance,
                          resources={"etl": etl, "lake": lake}, raise_on_error=False)


def test_a_second_transform_of_a_day_launches_no_job_while_the_first_holds_it(tmp_path, etl, dagster_waits):
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    holder = CuratedDayLease(lake, DATE, "first-run", owner="dagster run first",
                             ttl_seconds=LIVE_TTL_SECONDS).acquire()
    holder.start_heartbeat()
    try:
        with dg.instance_for_test() as instance:
            result = materialize_curated(lake, etl, instance)
        assert not result.success and LAUNCHES == []  # no job launched: nothing of the day deleted
        assert len(events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == ingest_assets.LEASE_RETRIES
        assert "Exceeded max_retries of 3" in failure_text(result)
        text = failure_text(result)
        assert "curated order_date=2026-11-20 is being transformed by another run" in text
        assert "dagster run first" in text
        holder.ensure_held()
    finally:
        holder.release()


def test_a_crashed_transforms_day_is_taken_over_and_the_lease_is_held_while_the_job_runs(tmp_path, etl, monkeypatch):
    PLANTED.clear()
    lake = CrashedLocalLake(root=str(tmp_path / "lake"))
    crashed_lease_ages(monkeypatch, lake)
    with dg.instance_for_test() as instance:
        result = materialize_curated(lake, etl, instance)
    assert PLANTED == [curated_lease_key(DATE)]
    assert len(events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 1
    assert LAUNCHES == [{"run_id": result.run_id, "lease_run_id": result.run_id}]  # launched once, holding it
    assert not lake.exists(curated_lease_key(DATE))  # released after the job, even a failed one


def test_a_transform_that_lost_its_lease_during_the_job_fails_instead_of_succeeding(tmp_path, etl, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "TAKE_OVER_DURING_JOB", True)
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    with dg.instance_for_test() as instance:
        result = materialize_curated(lake, etl, instance)
    assert not result.success and len(LAUNCHES) == 1
    assert "lost its lease" in failure_text(result) and "re-run the transform" in failure_text(result)
    [heartbeat] = HEARTBEATS
    assert heartbeat.leases[0].lost  # the heartbeat's refused renewal marked it lost
    assert json.loads(lake.read_bytes(curated_lease_key(DATE)))["run_id"] == "other"  # not deleted


def test_the_curated_lease_lives_outside_every_table_folder():
    key = curated_lease_key(DATE)
    assert key == "curated/_leases/order_date=2026-11-20.json"
    assert not any(key.startswith(f"curated/{table}/") for table in transform_assets.CURATED_TABLES)
