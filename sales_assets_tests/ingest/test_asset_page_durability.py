"""Guards the page durability of the Dagster raw asset, which lands through ``LakeResource``
rather than a bare store: the risk is that the asset path loses the deferred page fsync (a new
store per call drops the block's pending fsyncs, or pages fall back to one inline fsync each), that
the manifest is written before a page it names is durable, or that an fsync error is swallowed;
and on S3 (puts durable on return) that the block changes anything."""
from __future__ import annotations

import contextlib
import datetime as dt
import errno

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource
from moto import mock_aws

from sales_assets.ingest.assets import raw_sales_orders
from sales_assets.ingest.landing import land_day, read_manifest
from sales_assets.resources.lake import LocalLakeResource, S3LakeResource
from sales_assets_tests.ingest.fsync_log import (
    assert_pages_fsynced_before_the_manifest,
    fail_background_fsync_of,
    record_writes_and_fsyncs,
)
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
    return record_writes_and_fsyncs(monkeypatch, tmp_path / "lake")


def test_the_asset_fsyncs_every_page_in_the_background_before_the_manifest(tmp_path, events, monkeypatch):
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    assert materialize(lake).success
    pages = [page["key"] for page in read_manifest(lake, DAY)["pages"]]
    assert len(pages) == 12
    assert_pages_fsynced_before_the_manifest(events, pages, DAY)  # deferred (not inline), done before the commit
    assert lake._held_store is None  # later calls are back to durable-on-return writes


def test_a_failed_page_fsync_fails_the_landing_and_commits_nothing(tmp_path, events, monkeypatch):
    fail_background_fsync_of(monkeypatch, "page-00003.jsonl")
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
