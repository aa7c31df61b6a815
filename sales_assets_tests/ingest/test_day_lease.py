"""One writer per day, in a folder and in S3 (moto, real conditional puts).

Risk: two runs of one day interleaving pages and manifests, a crashed run blocking the
day forever, a run whose lease was taken over still committing, or a writer deleting
another run's lease.
"""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from moto import mock_aws

from sales_assets.ingest.landing import (
    DayLease, LeaseHeldError, LeaseLostError, land_pages, lease_key, read_manifest)
from sales_assets.ingest.store import LocalObjectStore, S3ObjectStore

DAY = dt.date(2026, 11, 20)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakePage:
    def __init__(self, number, records):
        self.number, self.records, self.as_of = number, records, None

    def jsonl_bytes(self):
        return b"".join(json.dumps(r).encode() + b"\n" for r in self.records)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "lake")
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="sales-lake")
        yield S3ObjectStore(client, "sales-lake", "prod")


def test_conditional_writes(store):
    assert store.create_exclusive("a/lock.json", b"one")
    assert not store.create_exclusive("a/lock.json", b"two")
    current = store.read_versioned("a/lock.json")
    assert current.data == b"one"
    assert store.replace_if_version("a/lock.json", b"three", current.version)
    assert not store.replace_if_version("a/lock.json", b"four", current.version)  # stale version
    assert store.read_bytes("a/lock.json") == b"three"
    assert store.read_versioned("missing.json") is None
    store.delete_key("a/lock.json")
    assert not store.exists("a/lock.json") and store.list_keys("a/") == []


def test_a_second_writer_fails_with_a_clear_message(store):
    clock = Clock()
    with DayLease(store, DAY, "run-a", owner="dagster run aaaa", clock=clock):
        with pytest.raises(LeaseHeldError) as raised:
            DayLease(store, DAY, "run-b", clock=clock).acquire()
        message = str(raised.value)
        assert "order_date=2026-11-20" in message and "dagster run aaaa" in message and "run-a" in message
        assert "expires at" in message
    # Released after the first writer: the second one gets it now.
    with DayLease(store, DAY, "run-b", clock=clock) as lease:
        assert lease.took_over is None
    assert not store.exists(lease_key(DAY))


def test_a_crashed_writers_lease_expires_and_is_taken_over(store):
    clock = Clock()
    DayLease(store, DAY, "crashed", ttl_seconds=60, clock=clock).acquire()  # never released
    with pytest.raises(LeaseHeldError):
        DayLease(store, DAY, "early", ttl_seconds=60, clock=clock).acquire()
    clock.now += 61
    lease = DayLease(store, DAY, "late", ttl_seconds=60, clock=clock).acquire()
    assert lease.took_over["run_id"] == "crashed"
    assert json.loads(store.read_bytes(lease_key(DAY)))["run_id"] == "late"
    lease.release()
    assert not store.exists(lease_key(DAY))


def test_a_writer_that_lost_its_lease_commits_nothing_and_keeps_the_new_owners_lease(store):
    clock = Clock()
    slow = DayLease(store, DAY, "slow", ttl_seconds=60, clock=clock).acquire()
    clock.now += 61
    fast = DayLease(store, DAY, "fast", ttl_seconds=60, clock=clock).acquire()

    with pytest.raises(LeaseLostError, match="lost its lease"):
        land_pages(store, [FakePage(1, [{"order_id": "x"}])], DAY, "slow", source_url="http://s", lease=slow)
    assert read_manifest(store, DAY) is None
    slow.release()  # must not delete the new owner's lease
    assert json.loads(store.read_bytes(lease_key(DAY)))["run_id"] == "fast"
    fast.release()


def test_the_lease_is_renewed_while_pages_land(store):
    clock = Clock()

    def pages():
        for number in (1, 2, 3):
            clock.now += 40  # each page takes 40 s of a 60 s lease
            yield FakePage(number, [{"order_id": str(number)}])

    with DayLease(store, DAY, "long", ttl_seconds=60, clock=clock) as lease:
        manifest = land_pages(store, pages(), DAY, "long", source_url="http://s", lease=lease)
        # 120 s after acquiring, the lease is still this run's and unexpired
        holder = json.loads(store.read_bytes(lease_key(DAY)))
        assert holder["run_id"] == "long" and holder["expires_at"] > clock.now
    assert manifest["record_count"] == 3


def test_a_dead_local_writers_lease_is_taken_over_at_once_and_a_live_ones_is_not(tmp_path):
    """Fault 14: the lease of a SIGKILLed writer on this host does not block the retry until its
    TTL; a lease naming a live process (or a process of another host) still refuses the day."""
    import subprocess
    import sys

    from sales_assets.ingest.landing import process_identity
    from sales_assets.ingest.store import LocalObjectStore

    lake = LocalObjectStore(tmp_path / "lake")
    day = dt.date(2026, 11, 20)
    now = 1_000_000.0
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        me = process_identity()
        assert me is not None
        for writer, refused in ((dict(me, pid=live.pid, started=_started(live.pid)), True),
                                (dict(me, pid=live.pid, started="1"), False),  # pid reused by a later process
                                (dict(me, host="elsewhere", pid=dead.pid), True),
                                (dict(me, pid=dead.pid), False)):
            lake.write_bytes(lease_key(day), json.dumps({"run_id": "killed", "owner": "x", "acquired_at": "",
                                                         "expires_at": now + 600, "writer": writer}).encode())
            lease = DayLease(lake, day, "rerun", clock=lambda: now + 30)
            if refused:
                with pytest.raises(LeaseHeldError, match="killed"):
                    lease.acquire()
            else:
                assert lease.acquire().took_over["run_id"] == "killed"
                lease.release()
    finally:
        live.kill()
        live.wait()


def _started(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()[19]


def _until(predicate, seconds: float = 2.0) -> bool:
    """Poll ``predicate`` for up to ``seconds`` of real time (the heartbeat runs on a thread)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def _expires_at(store, key) -> float:
    """The stored expiry of a lease, 0 while a local renewal has it moved aside for an instant."""
    current = store.read_versioned(key)
    return json.loads(current.data)["expires_at"] if current is not None else 0.0


def test_the_heartbeat_keeps_a_live_writers_short_lease_while_it_is_busy(store):
    """Fault 14/17: a writer busy past its TTL (one page on its retries) keeps its day; the
    heartbeat stops with the release."""
    clock = Clock()
    lease = DayLease(store, DAY, "busy", ttl_seconds=60, clock=clock).acquire()
    heartbeat = lease.start_heartbeat(interval_seconds=0.01)
    clock.now += 150  # far past the TTL, no page landed in between
    assert _until(lambda: _expires_at(store, lease_key(DAY)) > clock.now)
    heartbeat.stop()  # a local renewal moves the key aside for an instant: no race with "second"
    with pytest.raises(LeaseHeldError) as raised:
        DayLease(store, DAY, "second", ttl_seconds=60, clock=clock).acquire()
    assert 0 < raised.value.seconds_left() <= 60
    lease.ensure_held()
    lease.release()
    assert not heartbeat._thread.is_alive() and not store.exists(lease_key(DAY))


def test_a_refused_renewal_marks_the_lease_lost_and_the_commit_is_refused(store):
    clock = Clock()
    lease = DayLease(store, DAY, "slow", ttl_seconds=60, clock=clock).acquire()
    lease.start_heartbeat(interval_seconds=0.01)
    # Another run takes the key over (as after an expiry): the next beat's compare-and-swap fails.
    store.write_bytes(lease_key(DAY), json.dumps({"run_id": "fast", "owner": "x", "expires_at": clock.now + 60}).encode())
    assert _until(lambda: lease.lost is not None)
    with pytest.raises(LeaseLostError, match="lost its lease"):
        land_pages(store, [FakePage(1, [{"order_id": "x"}])], DAY, "slow", source_url="http://s", lease=lease)
    assert read_manifest(store, DAY) is None
    lease.release()
    assert json.loads(store.read_bytes(lease_key(DAY)))["run_id"] == "fast"


def test_an_erroring_renewal_is_retried_and_the_lease_expires_only_when_it_keeps_failing(store):
    clock = Clock()
    lease = DayLease(store, DAY, "flaky", ttl_seconds=60, clock=clock).acquire()
    real_replace, failing = store.replace_if_version, [True]

    def replace(key, data, version):
        if failing[0]:
            raise ConnectionError("store unreachable")
        return real_replace(key, data, version)

    store.replace_if_version = replace
    heartbeat = lease.start_heartbeat(interval_seconds=0.01)
    assert _until(lambda: len(heartbeat.errors) >= 2)
    assert lease.lost is None  # an error is not a takeover
    clock.now += 61
    with pytest.raises(LeaseLostError):  # still failing past its expiry: the commit is refused
        lease.ensure_held()
    failing[0] = False
    assert _until(lambda: _expires_at(store, lease_key(DAY)) > clock.now)
    heartbeat.stop()
    lease.ensure_held()  # renewed again before anyone took it over: held
    lease.release()


def test_hold_takes_every_key_or_none(store):
    from sales_assets.ingest.lease import hold

    clock = Clock()
    other = DayLease(store, DAY + dt.timedelta(days=1), "other", clock=clock).acquire()
    days = [DAY, DAY + dt.timedelta(days=1)]
    with pytest.raises(LeaseHeldError, match="other"):
        with hold(DayLease(store, day, "range", clock=clock) for day in days):
            raise AssertionError("must not run without every lease")
    assert not store.exists(lease_key(DAY))  # the first day's lease was given back
    other.release()
    with hold([DayLease(store, day, "range", clock=clock) for day in days], interval_seconds=0.01) as leases:
        assert all(json.loads(store.read_bytes(lease_key(day)))["run_id"] == "range" for day in days)
        clock.now += 1000
        assert _until(lambda: all(_expires_at(store, lease.key) > clock.now for lease in leases))
    assert not any(store.exists(lease_key(day)) for day in days)
