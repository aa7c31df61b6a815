"""Guards the lake interface: the folder and the S3 bucket behave the same for every
key operation the pipeline relies on (atomic writes, listing, prefix deletes), and curated days
are read through their commit record only (stale files ignored, a missing record or listed file
a clear error)."""

import datetime as dt
import json

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster_aws.s3 import S3Resource
from moto import mock_aws

from sales_assets.resources.lake import LocalLakeResource, S3LakeResource
from sales_assets.transform import curated_manifest


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    if request.param == "local":
        yield LocalLakeResource(root=str(tmp_path / "lake"))
        return
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="sales-lake")
        yield S3LakeResource.from_uri("s3://sales-lake/prod", S3Resource(region_name="us-east-1"))


def test_write_read_list_delete_round_trip(lake):
    lake.write_bytes("raw/t/order_date=2026-11-20/run_id=a/page-00001.jsonl", b'{"a":1}\n')
    lake.write_bytes("raw/t/order_date=2026-11-20/run_id=b/page-00001.jsonl", b'{"a":2}\n')
    lake.write_bytes("raw/t/order_date=2026-11-20/_manifest.json", b"{}")
    assert lake.read_bytes("raw/t/order_date=2026-11-20/run_id=a/page-00001.jsonl") == b'{"a":1}\n'
    assert lake.exists("raw/t/order_date=2026-11-20/_manifest.json")
    assert not lake.exists("raw/t/order_date=2026-11-20/_manifest")
    assert lake.list_keys("raw/t/order_date=2026-11-20/run_id=") == [
        "raw/t/order_date=2026-11-20/run_id=a/page-00001.jsonl",
        "raw/t/order_date=2026-11-20/run_id=b/page-00001.jsonl",
    ]
    assert lake.delete_prefix("raw/t/order_date=2026-11-20/run_id=a/") == 1
    assert lake.list_keys("raw/t/") == [
        "raw/t/order_date=2026-11-20/_manifest.json",
        "raw/t/order_date=2026-11-20/run_id=b/page-00001.jsonl",
    ]
    assert lake.list_keys("nothing/here/") == []


def test_overwrite_replaces_the_object(lake):
    lake.write_bytes("a/b.json", b"old")
    lake.write_bytes("a/b.json", b"new")
    assert lake.read_bytes("a/b.json") == b"new"
    assert lake.list_keys("a/") == ["a/b.json"]


def test_curated_readers_read_exactly_the_files_the_record_lists(lake):
    day = dt.date(2026, 11, 20)
    keys = curated_manifest.commit_day(lake, "order_lines", day, [pa.table({"x": [1, 1]}), pa.table({"x": [2, 2]})])
    # A crashed run's file beside the committed ones: never read.
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [9]}), sink)
    lake.write_bytes(curated_manifest.day_prefix("order_lines", day) + "part-00000-crashed.snappy.parquet",
                     sink.getvalue().to_pybytes())
    assert lake.curated_files("order_lines", day) == keys
    assert sorted(lake.read_curated("order_lines", day).column("x").to_pylist()) == [1, 1, 2, 2]
    assert lake.curated_row_count("order_lines", day) == 4
    # The record is a COPY manifest: each content_length is the listed file's size.
    record = json.loads(lake.read_bytes(curated_manifest.record_key("order_lines", day)))
    assert [e["meta"]["content_length"] for e in record["entries"]] == [len(lake.read_bytes(k)) for k in keys]
    assert [e["url"] for e in record["entries"]] == [lake.uri(k) for k in keys]

    with pytest.raises(curated_manifest.CuratedRecordMissingError, match=r"order_date=2026-11-21 .*Run the transform"):
        lake.curated_row_count("order_lines", dt.date(2026, 11, 21))
    lake.delete_key(keys[1])
    with pytest.raises(curated_manifest.CuratedFileMissingError, match=keys[1].rsplit("/", 1)[1]):
        lake.read_curated("order_lines", day)


def test_uris_address_the_same_keys():
    local = LocalLakeResource(root="/data/lake")
    assert local.uri("raw/x.json") == "/data/lake/raw/x.json"
    s3 = S3LakeResource.from_uri("s3://b/p/q", S3Resource())
    assert s3.uri("raw/x.json") == "s3://b/p/q/raw/x.json"


def test_local_keys_cannot_escape_the_lake(tmp_path):
    lake = LocalLakeResource(root=str(tmp_path))
    with pytest.raises(ValueError):
        lake.write_bytes("../outside", b"x")


def test_conditional_writes_for_the_day_lease(lake):
    # The lease relies on these: create only if absent, replace only if unchanged.
    assert lake.create_exclusive("raw/t/_lease.json", b"a")
    assert not lake.create_exclusive("raw/t/_lease.json", b"b")
    current = lake.read_versioned("raw/t/_lease.json")
    assert lake.replace_if_version("raw/t/_lease.json", b"c", current.version)
    assert not lake.replace_if_version("raw/t/_lease.json", b"d", current.version)
    assert lake.read_bytes("raw/t/_lease.json") == b"c"
    lake.delete_key("raw/t/_lease.json")
    assert lake.list_keys("raw/t/") == []
