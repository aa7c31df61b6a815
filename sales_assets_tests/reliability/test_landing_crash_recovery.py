"""Guards the numbers and the reader side of fault 14 (a crash during landing): how long a
crashed writer can block its day (the lease's 90 s TTL, renewed every TTL/3 by a live writer's
heartbeat), when Dagster's retry comes back for the day (10 s past the holder's expiry, at most
3 times), and that the pages a crashed run left in its own run folder never reach the catalog:
the crawler reads the committed run only. RELIABILITY.md states these numbers; a change to one
of them must change the table too.
"""
from __future__ import annotations

import json

import pytest

from sales_assets.catalog.crawler import Sample, crawl_partition
from sales_assets.ingest.assets import retry_after_lease
from sales_assets.ingest.landing import LeaseHeldError, land_day, lease_key, manifest_key, run_prefix
from sales_assets.resources.catalog import LocalCatalogResource
from sales_assets.resources.lake import LocalLakeResource
from sales_assets_tests.catalog.fake_lake import order
from sales_assets_tests.reliability.lease_probes import record_heartbeats
from sales_assets_tests.reliability.test_landing_crashes import DAY, FakeClient, Page

DATABASE, TABLE = "sales_raw", "sales_orders"


def test_a_refused_step_is_retried_ten_seconds_past_the_holders_expiry_at_most_three_times():
    retry = retry_after_lease(LeaseHeldError("held", expires_at=1042.0, seen_at=1000.0))
    assert (retry.seconds_to_wait, retry.max_retries) == (52.0, 3)
    # A holder whose lease has just expired: the margin alone; an unknown expiry: a whole TTL.
    assert retry_after_lease(LeaseHeldError("held", expires_at=990.0, seen_at=1000.0)).seconds_to_wait == 10.0
    assert retry_after_lease(LeaseHeldError("held")).seconds_to_wait == 100.0


def test_a_landing_lease_lasts_90_s_and_its_heartbeat_renews_it_every_30_s(tmp_path, monkeypatch):
    heartbeats = record_heartbeats(monkeypatch)
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    held = []
    client = FakeClient(pages=2, on_page=lambda number: held.append(json.loads(lake.read_bytes(lease_key(DAY)))))
    land_day(lake, client, DAY, clock=lambda: 1000.0)  # as the raw asset and the Lambda call it
    assert [lease["expires_at"] for lease in held] == [1090.0, 1090.0]
    assert [heartbeat.interval_seconds for heartbeat in heartbeats] == [30.0]


class OrdersClient(FakeClient):
    """The source serving `pages` (lists of orders); `on_page(n)` runs after page n is yielded."""

    def __init__(self, pages: list[list[dict]], on_page=None) -> None:
        super().__init__(len(pages), on_page)
        self.bodies = pages

    def iter_pages(self, order_date):
        for number, records in enumerate(self.bodies, start=1):
            page = Page(number)
            page.records = records
            yield page
            self.on_page(number)


def test_the_crawler_reads_the_committed_run_only_beside_a_crashed_runs_pages(tmp_path):
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    catalog = LocalCatalogResource(path=str(tmp_path / "catalog.sqlite"))
    committed = land_day(lake, OrdersClient([[order("O-1"), order("O-2")], [order("O-3")]]), DAY)

    def crash(number):
        if number == 2:
            raise RuntimeError("writer died")

    # A re-run of the day dies after two pages of a source that now sends an extra field and
    # more orders: its run folder stays, with no manifest of its own.
    crashed_pages = [[order(f"X-{page}-{i}", coupon_code="SAVE10") for i in range(4)] for page in (1, 2, 3)]
    with pytest.raises(RuntimeError, match="writer died"):
        land_day(lake, OrdersClient(crashed_pages, on_page=crash), DAY, run_id="crashed")
    orphan = run_prefix(DAY.isoformat(), "crashed")
    assert len(lake.store().list_keys(orphan)) == 2
    assert json.loads(lake.read_bytes(manifest_key(DAY)))["run_id"] == committed.run_id

    result = crawl_partition(lake, catalog, DATABASE, TABLE, DAY.isoformat(), sample=Sample.everything())
    # Counts, schema and location all come from the committed run.
    assert result.run_id == committed.run_id
    assert (result.record_count, result.records_scanned, result.pages_scanned) == (3, 3, 2)
    assert result.partition_location == lake.uri(run_prefix(DAY.isoformat(), committed.run_id).rstrip("/")) + "/"
    columns = {column["Name"] for column in result.columns}
    assert "order_id" in columns and "coupon_code" not in columns
    partition = catalog.get_partition(DATABASE, TABLE, [DAY.isoformat()])
    assert partition["StorageDescriptor"]["Location"] == result.partition_location
    assert partition["Parameters"]["recordCount"] == "3" and partition["Parameters"]["run_id"] == committed.run_id
    table = catalog.get_table(DATABASE, TABLE)
    assert "coupon_code" not in {column["Name"] for column in table["StorageDescriptor"]["Columns"]}
