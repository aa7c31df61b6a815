"""Guards the Glue job's commit records against the package's reader: after a real Spark run
every curated table-day has a `_manifest.json` that `LakeResource.curated_files` accepts, each
entry's `content_length` is the file's size, names carry the run's id, an empty day still
lists one schema-only parquet file (Spark 3.5 writes one for an empty frame; Redshift fails a
COPY of an empty manifest), and the Hadoop FileSystem commit (the S3 path on Glue) produces the
same record shape as the local one (exercised here on file://)."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow.parquet as pq
import pytest

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.transform import curated_manifest

from .conftest import DAY_1, DAY_2, build_demo_lake

pytestmark = pytest.mark.slow


def test_every_table_day_of_a_run_is_committed_by_a_record_the_package_reads(tmp_path, spark, curate):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)
    summary = curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=lambda message: None)
    lake = LocalLakeResource(root=str(lake_root))
    run_ids = set()
    for table in curate.TABLES:
        for day in (DAY_1, DAY_2):
            date = dt.date.fromisoformat(day)
            keys = lake.curated_files(table, date)
            record = json.loads(lake.read_bytes(curated_manifest.record_key(table, date)))
            assert len(keys) == len(record["entries"]) == 1
            for key, entry in zip(keys, record["entries"]):
                path = lake_root / key
                assert entry["url"] == str(path) and entry["meta"]["content_length"] == path.stat().st_size
                run_ids.add(path.name.split("-")[2].split(".")[0])
            assert lake.curated_row_count(table, date) == summary["tables"][table]["rows_by_day"][day]
    assert len(run_ids) == 1  # one run, one id in every name
    # DAY_2 quarantines nothing: its record lists one schema-only file, with the table's columns.
    (empty,) = lake.curated_files("quarantine", dt.date.fromisoformat(DAY_2))
    assert pq.read_metadata(lake_root / empty).num_rows == 0
    assert pq.read_schema(lake_root / empty).names == [name for name, _ in curate.TABLE_COLUMNS["quarantine"]]


def test_the_hadoop_filesystem_commit_writes_the_same_record(tmp_path, spark, curate):
    lake_root = tmp_path / "lake"
    lake = curate.Lake(f"file://{lake_root}")
    staging = f"curated/dim_product/order_date={DAY_1}/_staging_h1"
    spark.createDataFrame([("P-1", "S")], "product_id string, sku string").coalesce(1).write.parquet(lake.uri(staging))
    old = lake_root / "curated" / "dim_product" / f"order_date={DAY_1}" / "part-00000-old.snappy.parquet"
    old.write_bytes(b"PAR1old")
    listed = curate.commit_day(curate.HadoopFiles(spark, lake), lake, "dim_product", DAY_1, staging, "h1")
    folder = old.parent
    assert not old.exists() and not (folder / "_staging_h1").exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".crc")) == sorted(listed + ["_manifest.json"])
    keys = LocalLakeResource(root=str(lake_root)).curated_files("dim_product", dt.date.fromisoformat(DAY_1))
    assert [k.rsplit("/", 1)[1] for k in keys] == listed == ["part-00000-h1.snappy.parquet"]
    entry = json.loads((folder / "_manifest.json").read_bytes())["entries"][0]
    assert entry["meta"]["content_length"] == (folder / listed[0]).stat().st_size


def test_curated_files_are_cut_into_row_groups_of_the_configured_size(tmp_path, spark, curate, monkeypatch):
    # The warehouse load scans a file's row groups in parallel: one huge row group is one core.
    lake_root = tmp_path / "lake"
    lake = curate.Lake(str(lake_root))
    frame = spark.range(20000).selectExpr(
        "format_string('P-%06d', id) AS product_id", "sha2(cast(id AS string), 256) AS sku",
        "sha2(cast(id * 7 AS string), 512) AS product_name", "'c' AS category", "'b' AS brand",
        "timestamp'2026-11-20 10:00:00' AS updated_at", f"date'{DAY_1}' AS order_date")
    monkeypatch.setattr(curate, "PARQUET_ROW_GROUP_BYTES", 256 * 1024)
    curate.write_day(spark, lake, "dim_product", frame, DAY_1, run_id="rg")
    (key,) = LocalLakeResource(root=str(lake_root)).curated_files("dim_product", dt.date.fromisoformat(DAY_1))
    metadata = pq.read_metadata(lake_root / key)
    assert metadata.num_rows == 20000 and metadata.num_row_groups > 4
    assert max(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)) < 2 * 256 * 1024
