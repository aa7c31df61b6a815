"""Guards the page durability of the Dagster raw asset, which lands through ``LakeResource``
rather than a bare store: the risk is that the asset path loses the deferred page fsync (a new
store per call drops the block's pending fsyncs, or pages fall back to one inline fsync each), that
the manifest is written before a page it names is durable, or that an fsync error is swallowed;
and on S3 (puts durable on return) that the block changes anything."""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource
from moto import mock_aws

from sales_assets.ingest import store as store_module
from sales_assets.ingest.assets import raw_sales_orders
from sales_assets.ingest.landing import land_day, manifest_key, read_manifest
from sales_assets.resources.lake import LocalLakeResource, S3LakeResource
from sales_assets_tests.reliability.test_landing_crashes import FakeClient

DAY = dt.date(2026, 11, 20)


class FakeSource(dg.ConfigurableResource):
    """A source resource whose client serves ``pages`` pages of fake orders."""

    pages: int = 12

    def get_client(self):
        return contextlib.nullcontext(FakeClient(pages=self.pages))


def materialize(lake, pages: int = 12):
    return dg.materialize([raw_sales_orders], partition_key=DAY.isoformat(),
                          resources={"source": FakeSource(pages=pages), "lake": lake}, raise_on_error=False)


@pytest.fixture
def events(monkeypatch, tmp_path):
    """("write", key) for every store write and ("fsync", key) for every background fsync, in order."""
    log: list = []
    lake_root = tmp_path / "lake"
    real_write, real_fsync_path = store_module.LocalObjectStore.write_bytes, store_module._fsync_path

    def write_bytes(self, key, data):
        log.append(("write", key))
        real_write(self, key, data)

    def fsync_path(path):
        real_fsync_path(path)
        log.append(("fsync", os.path.relpath(path, lake_root)))

    monkeypatch.setattr(store_module.LocalObjectStore, "write_bytes", write_bytes)
    monkeypatch.setattr(store_module, "_fsync_path", fsync_path)
    return log


def test_the_asset_fsyncs_every_page_in_the_background_before_the_manifest(tmp_path, events, monkeypatch):
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    assert materialize(lake).success
    pages = [page["key"] for page in read_manifest(lake, DAY)["pages"]]
    assert len(pages) == 12
    commit = events.index(("write", manifest_key(DAY)))
    synced_before_commit = {key for kind, key in events[:commit] if kind == "fsync"}
    assert set(pages) <= synced_before_commit  # deferred (not inline) and done before the commit
    assert os.path.dirname(pages[0]) in synced_before_commit  # the renames into the run folder too
    assert lake._held_store is None  # later calls are back to durable-on-return writes


def test_a_failed_page_fsync_fails_the_landing_and_commits_nothing(tmp_path, events, monkeypatch):
    real_fsync_path = store_module._fsync_path

    def failing(path):
        if str(path).endswith("page-00003.jsonl"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        real_fsync_path(path)

    monkeypatch.setattr(store_module, "_fsync_path", failing)
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    # land_day on the resource, as the asset calls it (the asset would retry an OSError in 30 s).
    with pytest.raises(OSError) as raised:
        land_day(lake, FakeClient(pages=5), DAY)
    assert raised.value.errno == errno.EIO
    assert read_manifest(lake, DAY) is None
    assert lake._held_store is None


def test_local_blocks_share_one_store_and_do_not_nest(tmp_path):
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    with lake.deferred_fsync("run/"):
        held = lake._store()
        assert held is lake._store() and held._deferred is not None  # the block's pending fsyncs stay on it
        lake.write_bytes("run/page-1", b"a")
        with pytest.raises(RuntimeError, match="nest"):
            with lake.deferred_fsync("run/"):
                pass
    assert held._deferred is None and lake._held_store is None
    assert lake.read_bytes("run/page-1") == b"a"


def test_on_s3_the_block_is_a_no_op():
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="sales-lake")
        lake = S3LakeResource.from_uri("s3://sales-lake/prod", S3Resource(region_name="us-east-1"))
        with lake.deferred_fsync("run/"):
            assert lake._held_store is None
            lake.write_bytes("run/page-1", b"a")
            assert lake.read_bytes("run/page-1") == b"a"  # visible and durable on return
        with lake.deferred_fsync("run/"):  # nothing held, so a later block is fine
            pass
