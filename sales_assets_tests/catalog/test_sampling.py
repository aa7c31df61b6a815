"""The crawler infers from a sample of each day, as a Glue crawler does, reading only its bytes.

Risk guarded: the crawler reading whole pages again (a 1M-order day back to a 97 s crawl), a
prefix read returning more or fewer bytes than asked (local folder and S3 ranged GET), a sample
that misses the day's last pages or stops at a page whose first bytes hold no record, row counts
taken from the sample instead of the manifest, a changed page read whole passing unnoticed, and
a required column gone from a whole day passing the blocking check because only a sample was read.
"""
from __future__ import annotations

import boto3
import dagster as dg
import pytest
from moto import mock_aws

from sales_assets.catalog.assets import CATALOG_SALES_ORDERS, REQUIRED_COLUMNS_CHECK, catalog_sales_orders
from sales_assets.catalog.crawler import ManifestError, Sample, crawl_partition, sampled_pages, scan_partition
from sales_assets.ingest.store import LocalObjectStore, S3ObjectStore
from sales_assets.resources.catalog import LocalCatalogResource
from sales_assets.resources.lake import LocalLakeResource

from .fake_lake import FolderLake, order, write_partition

DAY = "2026-11-20"
DATABASE, TABLE = "sales_raw", "sales_orders"


class CountingLake(FolderLake):
    """FolderLake with the prefix read, recording every read's key and byte count."""

    def __init__(self, root):
        super().__init__(root)
        self.reads: list[tuple[str, str, int]] = []

    def read_bytes(self, key):
        data = super().read_bytes(key)
        self.reads.append(("whole", key, len(data)))
        return data

    def read_prefix(self, key, length):
        data = LocalObjectStore(self.root).read_prefix(key, length)
        self.reads.append(("prefix", key, len(data)))
        return data

    def page_reads(self):
        return [r for r in self.reads if r[1].endswith(".jsonl")]


@pytest.fixture
def catalog(tmp_path):
    return LocalCatalogResource(path=str(tmp_path / "catalog.sqlite"))


def day_of(pages: int, per_page: int, **extra_on_last_line):
    """Pages of orders; the last line of every page carries ``extra_on_last_line``."""
    return [[order(f"O-{p}-{n}", **(extra_on_last_line if n == per_page - 1 else {})) for n in range(per_page)]
            for p in range(pages)]


# ---------------------------------------------------------------- the prefix read


def test_local_read_prefix_returns_exactly_the_first_bytes(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.write_bytes("raw/a.jsonl", b"0123456789")
    assert store.read_prefix("raw/a.jsonl", 4) == b"0123"
    assert store.read_prefix("raw/a.jsonl", 100) == b"0123456789"
    assert LocalLakeResource(root=str(tmp_path)).read_prefix("raw/a.jsonl", 3) == b"012"
    with pytest.raises(FileNotFoundError):
        store.read_prefix("raw/missing.jsonl", 4)


def test_s3_read_prefix_is_a_ranged_get():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        store = S3ObjectStore(client, "lake", "prefix")
        store.write_bytes("raw/a.jsonl", b"0123456789")
        assert store.read_prefix("raw/a.jsonl", 4) == b"0123"
        assert store.read_prefix("raw/a.jsonl", 100) == b"0123456789"
        assert store.read_prefix("raw/a.jsonl", 0) == b""
        with pytest.raises(client.exceptions.NoSuchKey):
            store.read_prefix("raw/missing.jsonl", 4)


# ---------------------------------------------------------------- which pages, which bytes


def test_sampled_pages_spread_over_the_day_first_and_last_included():
    manifest = {"pages": [{"page": n, "key": f"p{n}"} for n in range(10, 0, -1)]}
    assert [p["page"] for p in sampled_pages(manifest, 4)] == [1, 4, 7, 10]
    assert [p["page"] for p in sampled_pages(manifest, 1)] == [1]
    assert [p["page"] for p in sampled_pages(manifest, None)] == list(range(1, 11))
    assert [p["page"] for p in sampled_pages(manifest, 50)] == list(range(1, 11))
    with pytest.raises(ValueError):
        Sample(pages=0)


def test_crawl_reads_only_a_bounded_prefix_of_the_sampled_pages(lake_root, catalog):
    lake = CountingLake(lake_root)
    manifest = write_partition(lake_root, DAY, day_of(pages=8, per_page=20, late_field="x"))
    page_bytes = manifest["pages"][0]["bytes"]
    sample = Sample(pages=3, bytes_per_page=page_bytes // 4)
    result = crawl_partition(lake, catalog, DATABASE, TABLE, DAY, sample=sample)

    reads = lake.page_reads()
    assert [kind for kind, _, _ in reads] == ["prefix"] * 3
    assert [key for _, key, _ in reads] == [manifest["pages"][i]["key"] for i in (0, 4, 7)]
    assert all(size <= page_bytes // 4 for _, _, size in reads)
    assert result.pages_scanned == 3 and 0 < result.bytes_scanned <= 3 * (page_bytes // 4)
    assert 0 < result.records_scanned < 3 * 20
    # Row counts are the manifest's (every page), never the sample's.
    assert result.record_count == 160
    assert catalog.get_partition(DATABASE, TABLE, [DAY])["Parameters"]["recordCount"] == "160"
    # The Glue trade-off: a field only past the sampled prefix is not cataloged by this crawl ...
    assert "late_field" not in [c["Name"] for c in result.columns]
    # ... and the full pass, for whoever needs it, catalogs it as a new table version.
    full = crawl_partition(lake, catalog, DATABASE, TABLE, DAY, sample=Sample.everything())
    assert full.diff["added"] == ["late_field"] and full.table_updated
    assert full.records_scanned == 160 and full.pages_scanned == 8


def test_default_sample_reads_small_pages_whole_and_checks_their_hash(lake_root, catalog):
    lake = CountingLake(lake_root)
    manifest = write_partition(lake_root, DAY, day_of(pages=3, per_page=5, late_field="x"))
    result = crawl_partition(lake, catalog, DATABASE, TABLE, DAY)
    assert result.records_scanned == 15 and "late_field" in [c["Name"] for c in result.columns]
    # A page that grew after landing is refused, not half-read.
    (lake_root / manifest["pages"][1]["key"]).open("ab").write(b'{"order_id": "extra"}\n')
    with pytest.raises(ManifestError, match="longer than the manifest"):
        scan_partition(lake, DAY)


def test_a_prefix_without_a_record_grows_like_glue_up_to_the_bound(lake_root):
    lake = CountingLake(lake_root)
    junk = ["not json " + "x" * 60] * 10  # about 700 bytes before the first record
    size = write_partition(lake_root, DAY, [junk + [order("O-1")]])["pages"][0]["bytes"]
    assert 1024 < size < 1280
    grown = scan_partition(lake, DAY, sample=Sample(bytes_per_page=256, max_bytes_per_page=4096))
    assert grown.inferred.records == 1 and grown.inferred.skipped == 10
    # 256-byte steps until the first complete record, which here is the whole page.
    assert [n for _, _, n in lake.page_reads()] == [256, 512, 768, 1024, size]
    capped = scan_partition(lake, DAY, sample=Sample(bytes_per_page=256, max_bytes_per_page=512))
    assert capped.inferred.records == 0 and capped.record_count == 11


# ---------------------------------------------------------------- the asset and its blocking check


def materialize(lake_root, catalog, **config):
    return dg.materialize(
        [catalog_sales_orders], partition_key=DAY, raise_on_error=False,
        resources={"lake": LocalLakeResource(root=str(lake_root)), "catalog": catalog},
        run_config={"ops": {"catalog__sales_orders": {"config": config}}},
    )


def test_asset_counts_rows_from_the_manifest_and_the_check_still_sees_a_gone_column(lake_root, catalog):
    pages = day_of(pages=6, per_page=10)
    for page in pages:
        for record in page:
            record["order_timestamp"] = f"{DAY}T10:00:00Z"
            for line in record["lines"]:
                del line["product_id"]
    write_partition(lake_root, DAY, pages)
    result = materialize(lake_root, catalog, sample_pages=2, sample_bytes_per_page=2000)
    [event] = result.asset_materializations_for_node("catalog__sales_orders")
    assert event.metadata["dagster/row_count"].value == 60
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == REQUIRED_COLUMNS_CHECK]
    assert check.asset_key == CATALOG_SALES_ORDERS and not check.passed
    found = check.metadata["found_by_day"].value[DAY]
    assert found["records"] == 60 and 0 < found["records_sampled"] < 60
    assert "lines[].product_id: missing" in check.metadata["problems"].value[DAY][0]


def test_invalid_sample_config_fails_before_anything_is_written(lake_root, catalog):
    write_partition(lake_root, DAY, day_of(pages=1, per_page=2))
    result = materialize(lake_root, catalog, sample_pages=0)
    assert not result.success
    assert catalog.get_table(DATABASE, TABLE) is None
