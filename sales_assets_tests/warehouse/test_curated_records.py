"""Guards the curated commit records (`curated/<table>/order_date=D/_manifest.json`) on the
reading side: a day that was never committed must fail every load with an error naming the day
and saying to run the transform (never load as an empty day, never touch the warehouse); a
listed file that is gone is a clear error too; files beside the committed ones (a crashed run's)
are read by no reader (DuckDB loader, lake helpers, curated checks' figures, Redshift and Data
API COPY manifests) and are removed by the next commit; the record is a COPY manifest Redshift
accepts (only `entries`, each `url`/`mandatory`/`meta.content_length`, the length being the
file's size), which the script writes and the package reads alike; the exported state machine
COPYs from it with MANIFEST."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from moto import mock_aws

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.warehouse import DuckDBWarehouseResource, write_copy_manifest
from sales_assets.transform import curated_manifest
from sales_assets.transform.assets import committed_row_count, curated_day_figures, summary_row_count
from sales_assets.warehouse import data_api_load, loader
from sales_assets_tests.glue_scripts.conftest import load_script
from sales_assets_tests.warehouse.curated_builders import (
    ORDER_LINES_SCHEMA,
    expected_figures,
    make_line,
    put_s3_day,
    write_curated_day,
)

DAY_1 = dt.date(2026, 11, 20)
DAY_2 = dt.date(2026, 11, 21)
LINES = [make_line("O-1", 1, DAY_1, quantity=2, unit_price="9.99"), make_line("O-2", 1, DAY_1)]
STALE = [make_line("O-1", 1, DAY_1, quantity=99), make_line("O-9", 1, DAY_1)]


@pytest.fixture
def warehouse(tmp_path):
    return DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb"), lock_timeout_seconds=0)


def stale_file(lake_root, table="order_lines", day=DAY_1, rows=STALE, schema=ORDER_LINES_SCHEMA):
    """A whole, valid parquet file a crashed run left in the day folder (never listed)."""
    path = lake_root / "curated" / table / f"order_date={day}" / "part-00000-crashedrun.snappy.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def test_a_day_without_a_record_is_a_clear_error_and_loads_nothing(tmp_path, warehouse):
    lake_root = tmp_path / "lake"
    write_curated_day(lake_root, DAY_1, LINES)
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1])
    # DAY_2's transform died before its first commit: parquet present, no record.
    folder = lake_root / "curated" / "order_lines" / f"order_date={DAY_2}"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([make_line("O-5", 1, DAY_2)], schema=ORDER_LINES_SCHEMA), folder / "part-0.parquet")
    with warehouse.session() as session:
        with pytest.raises(curated_manifest.CuratedRecordMissingError,
                           match=r"curated/order_lines order_date=2026-11-21 has no committed record .*Run the transform"):
            loader.load_days(session, str(lake_root), [DAY_1, DAY_2])
        figures = loader.fact_figures(session, [DAY_1, DAY_2])
    assert figures == {DAY_1: expected_figures(LINES), DAY_2: (0, Decimal("0.00"))}  # nothing changed
    lake = LocalLakeResource(root=str(lake_root))
    with pytest.raises(curated_manifest.CuratedRecordMissingError):
        curated_day_figures(lake, DAY_2)
    problems: list[str] = []
    assert committed_row_count(lake, "order_lines", DAY_2, problems) is None and "2026-11-21" in problems[0]
    assert summary_row_count(lake, "order_lines", DAY_2) == 0  # the demo's printout after a failed run


def test_a_listed_file_that_is_gone_is_a_clear_error(tmp_path, warehouse):
    lake_root = tmp_path / "lake"
    write_curated_day(lake_root, DAY_1, LINES)
    (listed,) = (lake_root / "curated" / "dim_product" / f"order_date={DAY_1}").glob("part-*.parquet")
    listed.unlink()
    with warehouse.session() as session:
        with pytest.raises(curated_manifest.CuratedFileMissingError, match=rf"curated/dim_product order_date=2026-11-20: {listed.name}"):
            loader.load_days(session, str(lake_root), [DAY_1])
        assert loader.fact_figures(session, [DAY_1])[DAY_1] == (0, Decimal("0.00"))


def test_stale_files_are_ignored_by_every_local_reader_and_removed_by_the_next_commit(tmp_path, warehouse):
    lake_root = tmp_path / "lake"
    write_curated_day(lake_root, DAY_1, LINES)
    stale = stale_file(lake_root)
    lake = LocalLakeResource(root=str(lake_root))
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1])
        assert loader.fact_figures(session, [DAY_1])[DAY_1] == expected_figures(LINES)
    assert curated_day_figures(lake, DAY_1) == expected_figures(LINES)
    assert lake.curated_row_count("order_lines", DAY_1) == len(LINES)
    assert stale.name not in [k.rsplit("/", 1)[1] for k in lake.curated_files("order_lines", DAY_1)]

    write_curated_day(lake_root, DAY_1, LINES[:1])  # the next commit of the day
    assert not stale.exists()
    folder = stale.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [k.rsplit("/", 1)[1] for k in lake.curated_files("order_lines", DAY_1)] + ["_manifest.json"])


def test_stale_files_never_reach_a_redshift_copy_manifest():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake-bucket")
        for table in loader.STAGES:
            put_s3_day(s3, "lake-bucket", "lake", table, DAY_1, {"part-00000-run1.snappy.parquet": b"PAR1new"},
                       stale={"part-00000-crashed.snappy.parquet": b"PAR1old", "_SUCCESS": b""})
        uri, count = write_copy_manifest(s3, "stage_order_lines", [loader.curated_day_location("s3://lake-bucket/lake", "order_lines", DAY_1)])
        key = uri.split("s3://lake-bucket/", 1)[1]
        entries = json.loads(s3.get_object(Bucket="lake-bucket", Key=key)["Body"].read())["entries"]
        assert count == 1 and [e["url"] for e in entries] == [
            f"s3://lake-bucket/lake/curated/order_lines/order_date={DAY_1}/part-00000-run1.snappy.parquet"]
        assert data_api_load.write_day_manifests(s3, "s3://lake-bucket/lake", [DAY_1]) == dict.fromkeys(loader.STAGES, 1)
        # A record whose length disagrees with the object (Redshift would fail the COPY) and a
        # day without a record are refused before any COPY.
        s3.put_object(Bucket="lake-bucket", Key=f"lake/curated/order_lines/order_date={DAY_1}/part-00000-run1.snappy.parquet", Body=b"PAR1changed")
        with pytest.raises(curated_manifest.CuratedRecordError, match="11 bytes, the record says 7"):
            write_copy_manifest(s3, "stage_order_lines", [loader.curated_day_location("s3://lake-bucket/lake", "order_lines", DAY_1)])
        with pytest.raises(curated_manifest.CuratedRecordMissingError, match="order_date=2026-11-21"):
            data_api_load.write_day_manifests(s3, "s3://lake-bucket/lake", [DAY_2])


def test_the_record_is_a_copy_manifest_the_script_writes_and_the_package_reads(tmp_path):
    curate = load_script()
    lake_root = tmp_path / "lake"
    staging = lake_root / "curated" / "order_lines" / f"order_date={DAY_1}" / "_staging_r1"
    staging.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(LINES, schema=ORDER_LINES_SCHEMA), staging / "part-00000-x-c000.snappy.parquet")
    (staging / ".part-00000-x-c000.snappy.parquet.crc").write_bytes(b"crc")
    script_lake = curate.Lake(str(lake_root))
    listed = curate.commit_day(curate.LocalFiles(script_lake), script_lake, "order_lines", DAY_1.isoformat(),
                               f"curated/order_lines/order_date={DAY_1}/_staging_r1", "r1")
    assert listed == ["part-00000-r1.snappy.parquet"]

    record = json.loads((lake_root / curated_manifest.record_key("order_lines", DAY_1)).read_bytes())
    assert list(record) == ["entries"]  # nothing Redshift's manifest parser does not know
    (entry,) = record["entries"]
    assert sorted(entry) == ["mandatory", "meta", "url"] and entry["mandatory"] is True and list(entry["meta"]) == ["content_length"]
    path = lake_root / "curated" / "order_lines" / f"order_date={DAY_1}" / listed[0]
    assert entry["url"] == str(path) and entry["meta"]["content_length"] == path.stat().st_size
    # Byte for byte the package's writer's shape, and the package reads it back.
    assert curated_manifest.record_body(curated_manifest.parse_record(json.dumps(record).encode(), "x")) == curate.record_body(record["entries"])
    lake = LocalLakeResource(root=str(lake_root))
    assert lake.curated_files("order_lines", DAY_1) == [f"curated/order_lines/order_date={DAY_1}/{listed[0]}"]
    assert lake.curated_row_count("order_lines", DAY_1) == len(LINES)
    # S3 spelling: Redshift reads s3:// URLs, whatever scheme the job was given.
    assert curate.Lake("s3a://b/p").file_url("curated/x/order_date=2026-11-20/a.parquet") == "s3://b/p/curated/x/order_date=2026-11-20/a.parquet"


@pytest.mark.parametrize("body, problem", [
    (b'{"entries": []}', "non-empty 'entries'"),
    (b'{"entries": [{"url": "/l/curated/order_lines/order_date=2026-11-20/a.parquet", "mandatory": true}]}', "malformed entry"),
    (b"not json", "not JSON"),
])
def test_a_malformed_record_is_refused(body, problem):
    with pytest.raises(curated_manifest.CuratedRecordError, match=problem):
        curated_manifest.parse_record(body, "rec")


def test_a_record_listing_a_file_outside_its_day_folder_is_refused():
    entries = [curated_manifest.RecordEntry("s3://b/lake/curated/order_lines/order_date=2026-11-21/part-0.parquet", 4)]
    with pytest.raises(curated_manifest.CuratedRecordError, match="not a parquet file of curated/order_lines/order_date=2026-11-20"):
        curated_manifest.listed_names(entries, "order_lines", DAY_1, "s3://b/lake")
    other_bucket = [curated_manifest.RecordEntry("s3://x/lake/curated/order_lines/order_date=2026-11-20/part-0.parquet", 4)]
    with pytest.raises(curated_manifest.CuratedRecordError):
        curated_manifest.listed_names(other_bucket, "order_lines", DAY_1, "s3://b/lake")


def test_the_exported_state_machine_copies_through_the_record():
    from sales_assets.deploy.asl import redshift_day_load_sqls

    copies = [s for s in redshift_day_load_sqls() if s.startswith("COPY")]
    assert len(copies) == len(loader.STAGES)
    for table, stage in loader.STAGES.items():
        (copy,) = [c for c in copies if c.startswith(f"COPY {stage} ")]
        tree = sqlglot.parse_one(copy.replace("${LakeBucket}", "bucket").replace("${RedshiftCopyRoleArn}", "arn")
                                 .replace("{}", "2026-11-20"), read="redshift")
        assert [f.name for f in tree.args["files"]] == [
            f"s3://bucket/curated/{table}/order_date=2026-11-20/_manifest.json"]
        assert [p.this.name.upper() for p in tree.args["params"]][-2:] == ["FORMAT", "MANIFEST"]
