"""Crawling a committed partition into the local catalog and into Glue (moto).

Risk guarded: the catalog describing the wrong data (a partition pointing at the day folder,
so Athena reads an old run too, or at an uncommitted run), a schema change lost or not
versioned, or a version written on every run, and the two catalog implementations disagreeing.
"""
from __future__ import annotations

import json

import pytest
from moto import mock_aws

from sales_assets.catalog.crawler import (
    INPUT_FORMAT,
    OUTPUT_FORMAT,
    SERDE,
    ManifestError,
    crawl_partition,
)
from sales_assets.resources.catalog import GlueCatalogResource, LocalCatalogResource

from .fake_lake import RUN_ID, FolderLake, order, write_partition

DAY = "2026-11-20"
DATABASE = "sales_raw"
TABLE = "sales_orders"


@pytest.fixture
def lake(lake_root):
    return FolderLake(lake_root)


@pytest.fixture
def local_catalog(tmp_path):
    return LocalCatalogResource(path=str(tmp_path / "catalog" / "catalog.sqlite"))


def land_day(lake, day=DAY, pages=None, run_id=RUN_ID):
    pages = pages or [[order("O-1"), order("O-2")], [order("O-3"), "not json {", "[1, 2]"]]
    return write_partition(lake.root, day, pages, run_id=run_id)


def check_first_crawl(catalog, lake, result):
    run_folder = str(lake.root.resolve() / f"raw/sales_orders/order_date={DAY}/run_id={RUN_ID}") + "/"
    assert result.table_created and not result.table_updated
    assert result.partition_location == run_folder
    assert (result.records_scanned, result.records_skipped, result.pages_scanned) == (3, 2, 2)

    table = catalog.get_table(DATABASE, TABLE)
    assert table["Name"] == TABLE
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "json"
    assert table["PartitionKeys"] == [{"Name": "order_date", "Type": "string"}]
    sd = table["StorageDescriptor"]
    assert sd["Location"] == str(lake.root.resolve() / "raw/sales_orders") + "/"
    assert sd["InputFormat"] == INPUT_FORMAT
    assert sd["OutputFormat"] == OUTPUT_FORMAT
    assert sd["SerdeInfo"]["SerializationLibrary"] == SERDE
    columns = {c["Name"]: c["Type"] for c in sd["Columns"]}
    assert columns["customer"] == "struct<customer_id:string,name:string,email:string,segment:string>"
    assert columns["lines"].startswith("array<struct<line_number:bigint,product_id:string,")
    assert [c["Name"] for c in sd["Columns"]][:2] == ["order_id", "order_timestamp"]
    assert result.table_version == table["VersionId"]

    partition = catalog.get_partition(DATABASE, TABLE, [DAY])
    assert partition["Values"] == [DAY]
    assert partition["StorageDescriptor"]["Location"] == run_folder
    assert partition["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == SERDE
    assert partition["StorageDescriptor"]["Columns"] == sd["Columns"]
    assert partition["Parameters"]["run_id"] == RUN_ID
    return table


def check_evolution(catalog, lake, first_version):
    # Same data again: nothing to change, no new version, partition re-pointed idempotently.
    again = crawl_partition(lake, catalog, DATABASE, TABLE, DAY)
    assert not again.schema_changed
    assert again.table_version == first_version
    assert len(catalog.get_table_versions(DATABASE, TABLE)) == 1

    # The next day brings a new field and drops store_id: one column added, none removed.
    write_partition(lake.root, "2026-11-21", [[order("O-9", loyalty_tier="gold", store_id=None)]],
                    run_id="20261122T000000Z-cd34ef")
    evolved = crawl_partition(lake, catalog, DATABASE, TABLE, "2026-11-21")
    assert evolved.table_updated
    assert evolved.diff["added"] == ["loyalty_tier"]
    assert evolved.diff["missing_in_partition"] == []
    assert evolved.table_version != first_version
    versions = catalog.get_table_versions(DATABASE, TABLE)
    assert len(versions) == 2
    assert versions[-1]["VersionId"] == evolved.table_version
    table = catalog.get_table(DATABASE, TABLE)
    names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert names[-1] == "loyalty_tier" and "store_id" in names
    # store_id was null-only that day: the table keeps its string type.
    assert {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}["store_id"] == "string"
    assert [p["Values"] for p in catalog.get_partitions(DATABASE, TABLE)] == [[DAY], ["2026-11-21"]]


def test_local_crawl_creates_table_and_partition_then_versions_only_on_change(lake, local_catalog):
    land_day(lake)
    result = crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY)
    table = check_first_crawl(local_catalog, lake, result)
    check_evolution(local_catalog, lake, table["VersionId"])


def test_glue_crawl_under_moto_matches_local(lake, local_catalog):
    land_day(lake)
    with mock_aws():
        glue = GlueCatalogResource(region_name="us-east-1")
        result = crawl_partition(lake, glue, DATABASE, TABLE, DAY)
        table = check_first_crawl(glue, lake, result)
        local = crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY)
        assert result.columns == local.columns
        assert table["StorageDescriptor"]["Columns"] == local_catalog.get_table(DATABASE, TABLE)[
            "StorageDescriptor"]["Columns"]
        check_evolution(glue, lake, table["VersionId"])


def test_rerun_repoints_partition_to_the_new_committed_run(lake, local_catalog):
    land_day(lake)
    crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY)
    land_day(lake, run_id="20261121T090000Z-ffffff")
    result = crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY)
    location = local_catalog.get_partition(DATABASE, TABLE, [DAY])["StorageDescriptor"]["Location"]
    assert location == result.partition_location
    assert location.endswith("/run_id=20261121T090000Z-ffffff/")
    assert len(local_catalog.get_partitions(DATABASE, TABLE)) == 1


def test_sample_limit_reads_only_the_first_records(lake, local_catalog):
    land_day(lake, pages=[[order("O-1")], [order("O-2", late_field=1)]])
    result = crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY, sample_limit=1)
    assert (result.records_scanned, result.pages_scanned) == (1, 1)
    assert "late_field" not in [c["Name"] for c in result.columns]


def test_column_named_like_the_partition_key_is_dropped(lake, local_catalog):
    land_day(lake, pages=[[order("O-1", order_date=DAY)]])
    result = crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY)
    assert result.dropped == ["order_date"]
    assert "order_date" not in [c["Name"] for c in result.columns]


def test_page_not_matching_manifest_hash_is_refused(lake, local_catalog):
    manifest = land_day(lake)
    (lake.root / manifest["pages"][0]["key"]).write_text(json.dumps(order("tampered")) + "\n")
    with pytest.raises(ManifestError, match="sha256"):
        crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY)
    assert local_catalog.get_table(DATABASE, TABLE) is None


def test_manifest_naming_another_day_is_refused(lake, local_catalog):
    manifest = land_day(lake)
    manifest["order_date"] = "2026-11-19"
    (lake.root / f"raw/sales_orders/order_date={DAY}/_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError):
        crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY)


def test_uncommitted_day_is_not_crawled(lake, local_catalog):
    with pytest.raises(FileNotFoundError):
        crawl_partition(lake, local_catalog, DATABASE, TABLE, DAY)


def _crawl_after_barrier(root, path, day, barrier):
    barrier.wait()
    crawl_partition(FolderLake(root), LocalCatalogResource(path=path), DATABASE, TABLE, day)


def test_parallel_days_lose_no_column(lake, local_catalog):
    """Dagster crawls days in parallel processes; every new field must survive the race."""
    import multiprocessing

    days = [f"2026-11-{d:02d}" for d in range(10, 16)]
    for n, day in enumerate(days):
        write_partition(lake.root, day, [[order(f"O-{n}", **{f"field_{n}": n})]])
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(days))
    procs = [ctx.Process(target=_crawl_after_barrier, args=(lake.root, local_catalog.path, day, barrier))
             for day in days]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * len(days)
    names = {c["Name"] for c in local_catalog.get_table(DATABASE, TABLE)["StorageDescriptor"]["Columns"]}
    assert {f"field_{n}" for n in range(len(days))} <= names
    assert len(local_catalog.get_partitions(DATABASE, TABLE)) == len(days)
