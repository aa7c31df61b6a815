"""Guards atomic landing: pages first, manifest last; a failed run never changes the
committed day; a re-run replaces the day and removes the superseded run folders; a
page that no longer matches its manifest is detected."""

import datetime as dt
import hashlib
import json

import pytest

from sales_assets.ingest.landing import (
    land_pages,
    manifest_key,
    read_manifest,
    remove_stale_runs,
    run_prefix,
    verify_manifest,
)
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.source.contract import line_units

DAY = dt.date(2026, 11, 20)


class FakePage:
    def __init__(self, number, records):
        self.number = number
        self.records = records
        self.as_of = "2026-11-21T00:00:00Z"

    def jsonl_bytes(self):
        return b"".join(json.dumps(r).encode() + b"\n" for r in self.records)


def _pages():
    return [
        FakePage(1, [{"order_id": "a", "lines": [{}, {}]}, {"order_id": "b", "lines": []}]),
        FakePage(2, [{"order_id": "c", "lines": [{}, {}, {}]}, "not an object"]),
    ]


@pytest.fixture
def lake(tmp_path):
    return LocalLakeResource(root=str(tmp_path / "lake"))


def test_manifest_commits_pages_with_counts_and_hashes(lake):
    manifest = land_pages(lake, _pages(), DAY, "run1", source_url="http://source")
    assert read_manifest(lake, DAY) == manifest
    assert manifest["record_count"] == 4
    assert manifest["line_count"] == sum(line_units(r) for p in _pages() for r in p.records) == 7
    assert [p["page"] for p in manifest["pages"]] == [1, 2]
    for page in manifest["pages"]:
        body = lake.read_bytes(page["key"])
        assert page["key"].startswith(run_prefix(DAY, "run1"))
        assert hashlib.sha256(body).hexdigest() == page["sha256"] and len(body) == page["bytes"]
    assert verify_manifest(lake, manifest) == []


def test_a_run_failing_mid_way_leaves_the_committed_day_untouched(lake):
    committed = land_pages(lake, _pages(), DAY, "run1", source_url="http://source")

    def failing_pages():
        yield _pages()[0]
        raise ConnectionError("source went away")

    with pytest.raises(ConnectionError):
        land_pages(lake, failing_pages(), DAY, "run2", source_url="http://source")
    assert read_manifest(lake, DAY) == committed
    assert verify_manifest(lake, committed) == []


def test_rerun_replaces_the_day_and_removes_older_runs(lake):
    land_pages(lake, _pages(), DAY, "run1", source_url="http://source")
    # An abandoned run folder (a crash before its commit) is cleaned up too.
    lake.write_bytes(run_prefix(DAY, "run0") + "page-00001.jsonl", b"{}\n")
    manifest = land_pages(lake, _pages()[:1], DAY, "run2", source_url="http://source")
    assert read_manifest(lake, DAY)["run_id"] == "run2"
    assert manifest["record_count"] == 2
    keys = lake.list_keys(f"raw/sales_orders/order_date={DAY}/")
    assert keys == [manifest_key(DAY), run_prefix(DAY, "run2") + "page-00001.jsonl"]
    assert remove_stale_runs(lake, DAY, keep_run_id="run2") == 0


def test_a_tampered_or_missing_page_is_reported(lake):
    manifest = land_pages(lake, _pages(), DAY, "run1", source_url="http://source")
    lake.write_bytes(manifest["pages"][0]["key"], b'{"order_id": "x"}\n')
    lake.delete_prefix(manifest["pages"][1]["key"])
    problems = verify_manifest(lake, manifest)
    assert len(problems) == 2
    assert "sha256" in problems[0] and "missing" in problems[1]


def test_an_empty_day_still_commits(lake):
    manifest = land_pages(lake, [FakePage(1, [])], DAY, "run1", source_url="http://source")
    assert manifest["record_count"] == 0 and manifest["line_count"] == 0
    assert read_manifest(lake, DAY)["pages"][0]["records"] == 0
