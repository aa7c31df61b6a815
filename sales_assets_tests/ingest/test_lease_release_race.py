"""A run releasing its lease must never delete another run's (issue #10 rows 14 and 17).

Risk: a run whose lease expired releases it at the very moment another run takes the key
over. A release that reads the lease, finds its own version and then deletes the key deletes
the new holder's lease in between, and a third run could then write the day beside the new
holder. The release is one conditional delete (``delete_if_version``: S3 ``DeleteObject`` with
``IfMatch``, a compare and unlink under the folder's lock locally), so the takeover wins
whenever it lands. The takeover is injected deterministically between the releasing run's last
look at the key and its delete, in a folder and in S3 (moto, which honours ``IfMatch`` on
``DeleteObject``), through the stores and the Dagster lake resources.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import pathlib

import boto3
import pytest
from dagster_aws.s3 import S3Resource
from moto import mock_aws

from sales_assets.ingest.landing import DayLease, lease_key
from sales_assets.ingest.store import LocalObjectStore, S3ObjectStore
from sales_assets.resources.lake import LocalLakeResource, S3LakeResource

DAY = dt.date(2026, 11, 20)
KEY = lease_key(DAY)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local store", "s3 store", "local resource", "s3 resource"])
def store(request, tmp_path):
    if request.param.startswith("local"):
        root = tmp_path / "lake"
        yield LocalObjectStore(root) if request.param == "local store" else LocalLakeResource(root=str(root))
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="sales-lake")
        if request.param == "s3 store":
            yield S3ObjectStore(client, "sales-lake", "prod")
        else:
            yield S3LakeResource.from_uri("s3://sales-lake/prod", S3Resource(region_name="us-east-1"))


class TakeoverBeforeDelete:
    """The store as the releasing run sees it: once ``armed``, another run takes the key over
    right after this run's last read of it, or right before its delete, whichever comes first."""

    def __init__(self, store, take_over) -> None:
        self._store = store
        self._take_over = take_over
        self.armed = False
        self.raced = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _race(self) -> None:
        if self.armed and not self.raced:
            self.raced = True
            self._take_over()

    def read_versioned(self, key):
        current = self._store.read_versioned(key)
        self._race()
        return current

    def delete_key(self, key):
        self._race()
        return self._store.delete_key(key)

    def delete_if_version(self, key, version):
        self._race()
        return self._store.delete_if_version(key, version)


def test_delete_if_version_deletes_only_the_version_read(store):
    assert store.create_exclusive("a/lease.json", b"one")
    first = store.read_versioned("a/lease.json")
    assert store.replace_if_version("a/lease.json", b"two", first.version)
    assert not store.delete_if_version("a/lease.json", first.version)  # stale: the object stays
    assert store.read_bytes("a/lease.json") == b"two"
    second = store.read_versioned("a/lease.json")
    assert store.delete_if_version("a/lease.json", second.version)
    assert store.read_versioned("a/lease.json") is None and store.list_keys("a/") == []
    assert not store.delete_if_version("a/lease.json", second.version)  # already gone
    assert not store.delete_if_version("never/written.json", second.version)


def test_a_release_racing_a_takeover_never_deletes_the_new_holders_lease(store):
    clock = Clock()
    late = Clock(clock.now + 61)  # the other run's clock: past the releasing run's expiry
    taken: list[DayLease] = []
    racing = TakeoverBeforeDelete(store, lambda: taken.append(
        DayLease(store, DAY, "next", ttl_seconds=60, clock=late).acquire()))
    expired = DayLease(racing, DAY, "expired", ttl_seconds=60, clock=clock).acquire()

    racing.armed = True
    expired.release()

    assert racing.raced  # the takeover really landed inside the release
    (holder,) = taken
    assert holder.took_over["run_id"] == "expired"
    assert json.loads(store.read_bytes(KEY))["run_id"] == "next"
    holder.ensure_held()  # the new holder still holds the day and may commit
    holder.release()
    assert store.read_versioned(KEY) is None


def test_a_release_with_no_race_still_deletes_its_own_lease(store):
    racing = TakeoverBeforeDelete(store, lambda: pytest.fail("not armed"))
    DayLease(racing, DAY, "only", clock=Clock()).acquire().release()
    assert store.read_versioned(KEY) is None


def test_a_local_delete_compares_and_unlinks_under_the_folders_swap_lock(tmp_path, monkeypatch):
    # The lock create_exclusive and replace_if_version take: a takeover in another process
    # cannot land between the compare and the unlink.
    events: list[str] = []

    class RecordingStore(LocalObjectStore):
        @contextlib.contextmanager
        def _swap_lock(self, target):
            with super()._swap_lock(target):
                events.append("locked")
                yield
                events.append("unlocked")

    store = RecordingStore(tmp_path / "lake")
    assert store.create_exclusive(KEY, b"mine")
    version = store.read_versioned(KEY).version
    real_unlink = pathlib.Path.unlink

    def recording_unlink(path, *args, **kwargs):
        if path == store.root / KEY:
            events.append("unlink")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "unlink", recording_unlink)
    events.clear()
    assert store.delete_if_version(KEY, version)
    assert events == ["locked", "unlink", "unlocked"]
