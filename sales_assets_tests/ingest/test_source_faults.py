"""Every fault of the demo source's FaultPlan, through the real client and landing code.

Risk: a source that throttles, stalls, cuts bodies short, loops its cursors, drifts its
schema, re-sends or corrects orders must either be survived with exactly the bytes a
clean run lands, or fail without committing anything and without touching the day
committed before; every retry must be logged (in the Dagster run's log too, when the raw
asset runs the client); and the token must never reach an exception's text or a log line.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from email.utils import format_datetime

import dagster as dg
import pytest

from sales_assets.ingest.assets import raw_sales_orders
from sales_assets.ingest.landing import (
    DayLease, land_day, land_pages, lease_key, manifest_key, read_manifest, run_prefix, verify_manifest)
from sales_assets.ingest.store import LocalObjectStore
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.source import contract
from sales_assets.source.client import LOGGER as CLIENT_LOGGER
from sales_assets.source.client import SalesSourceClient, SourcePaginationError, SourceTransientError
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import (
    EXTRA_FIELD, FAULT_DISCONNECT, FAULT_INVALID_JSON, FAULT_SLOW, FAULT_TRUNCATED, DemoSourceServer, FaultPlan)

DAY = dt.date(2026, 11, 20)
CONFIG = DemoDataConfig(orders_per_day=90)
PAGE_SIZE = 25
NOW = dt.datetime(2026, 11, 21, 1, 0, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def server():
    with DemoSourceServer(port=0, config=CONFIG) as started:
        yield started


def make_client(server, sleeps, **kwargs):
    kwargs.setdefault("timeout", (2.0, 5.0))
    return SalesSourceClient(server.url, server.token, page_size=PAGE_SIZE, sleep=sleeps.append,
                             rng=random.Random(0), clock=NOW.timestamp, **kwargs)


def landed_bytes(store, order_date=DAY) -> list[bytes]:
    manifest = read_manifest(store, order_date)
    return [store.read_bytes(page["key"]) for page in manifest["pages"]]


def comparable_manifest(manifest: dict) -> dict:
    """The manifest without what differs between any two runs: its run id (also in each page's
    key), its commit time and its source block (the server's address, each test's server on its
    own port, and the server's `as_of`, stamped when that server first listed the day)."""
    run_id = manifest["run_id"]
    rest = {k: v for k, v in manifest.items() if k not in ("run_id", "committed_at", "source")}
    rest["pages"] = [dict(page, key=page["key"].replace(f"run_id={run_id}/", "run_id=<run>/"))
                     for page in manifest["pages"]]
    return rest


@pytest.fixture(scope="module")
def clean_landing(tmp_path_factory) -> tuple[list[bytes], dict]:
    """The page files and manifest a fault-free run lands for DAY: the reference for every
    survived fault."""
    store = LocalObjectStore(tmp_path_factory.mktemp("clean"))
    with DemoSourceServer(port=0, config=CONFIG) as clean, make_client(clean, []) as client:
        land_day(store, client, DAY)
    pages = landed_bytes(store)
    assert len(pages) >= 3  # ~90 orders in pages of 25: paging is exercised
    return pages, read_manifest(store, DAY)


@pytest.fixture(scope="module")
def clean_pages(clean_landing) -> list[bytes]:
    return clean_landing[0]


def retry_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CLIENT_LOGGER.name and r.levelno == logging.WARNING]


def orders_requests(server) -> list[int]:
    return [r.status for r in server.requests if r.path == contract.ORDERS_PATH]


@pytest.mark.parametrize("retry_after,expected_wait", [
    ("3", 3.0),
    (format_datetime(NOW + dt.timedelta(seconds=9), usegmt=True), 9.0),
])
def test_429_with_retry_after_is_waited_and_lands_the_clean_bytes(server, tmp_path, clean_pages, retry_after,
                                                                  expected_wait, caplog):
    caplog.set_level(logging.DEBUG)
    server.fault_plan = FaultPlan(fail_first=[429, 429], retry_after=retry_after)
    store = LocalObjectStore(tmp_path)
    sleeps: list[float] = []
    with make_client(server, sleeps) as client:
        result = land_day(store, client, DAY)
    assert landed_bytes(store) == clean_pages
    assert sleeps == [pytest.approx(expected_wait)] * 2
    assert orders_requests(server) == [429, 429] + [200] * len(clean_pages)
    assert (result.requests, result.retries) == (len(clean_pages) + 2, 2)
    # One line per retry: what was asked, attempt n of N, why, and the wait actually taken.
    assert retry_lines(caplog) == [
        f"sales source GET {contract.ORDERS_PATH} date={DAY} page 1: attempt {n} of 5 failed "
        f"(HTTP 429, Retry-After {expected_wait:g} s); retrying in {expected_wait:.2f} s"
        for n in (1, 2)]
    assert server.token not in caplog.text


@pytest.mark.parametrize("managed_loggers", [[], ["sales_assets"]], ids=["plain-instance", "instance-captures-it"])
def test_the_raw_asset_puts_each_retry_line_in_the_run_log(server, tmp_path, caplog, managed_loggers):
    """The client's per-retry lines reach the Dagster run's event log, once each, whether or not
    the instance already captures the client's logger (python_logs.managed_python_loggers)."""
    caplog.set_level(logging.DEBUG)
    server.fault_plan = FaultPlan(fail_first=[503, 429], retry_after="0")
    source = SalesSourceResource(base_url=server.url, token=server.token, page_size=PAGE_SIZE,
                                 backoff_base_seconds=0.0)
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    overrides = {"python_logs": {"managed_python_loggers": managed_loggers}} if managed_loggers else None
    with dg.instance_for_test(overrides=overrides) as instance:
        result = dg.materialize([raw_sales_orders], partition_key=DAY.isoformat(),
                                resources={"source": source, "lake": lake}, instance=instance)
        entries = instance.all_logs(result.run_id)
    in_run = [(e.level, e.user_message) for e in entries if "attempt " in e.user_message]
    assert [(level, message.split(": attempt ")[1].split(";")[0]) for level, message in in_run] == [
        (logging.WARNING, "1 of 5 failed (HTTP 503, Retry-After 0 s)"),
        (logging.WARNING, "2 of 5 failed (HTTP 429, Retry-After 0 s)"),
    ]
    assert all(f"date={DAY} page 1" in message for _level, message in in_run)
    assert len(retry_lines(caplog)) == 2  # still plain logging for anything else listening
    assert not any(server.token in e.user_message or server.token in repr(e) for e in entries)


def test_retry_after_zero_backs_off_instead_of_burning_the_attempts(server, tmp_path, clean_pages):
    server.fault_plan = FaultPlan(fail_first=[429] * 4, retry_after="0")
    store = LocalObjectStore(tmp_path)
    sleeps: list[float] = []
    with make_client(server, sleeps, max_attempts=5) as client:
        land_day(store, client, DAY)
    assert landed_bytes(store) == clean_pages
    assert len(sleeps) == 4 and all(s >= 0.25 * 2 ** i for i, s in enumerate(sleeps))


def test_a_huge_retry_after_fails_at_once_and_keeps_the_committed_day(server, tmp_path, clean_pages):
    store = LocalObjectStore(tmp_path)
    with make_client(server, []) as client:
        committed = land_day(store, client, DAY).manifest
    server.fault_plan = FaultPlan(fail_first=[429], retry_after="86400")
    server.requests.clear()
    sleeps: list[float] = []
    with make_client(server, sleeps, max_retry_after=60) as client:
        with pytest.raises(SourceTransientError, match="Retry-After 86400 s") as raised:
            land_day(store, client, DAY)
    assert sleeps == [] and orders_requests(server) == [429]
    assert read_manifest(store, DAY) == committed and verify_manifest(store, committed) == []
    assert landed_bytes(store) == clean_pages
    assert server.token not in str(raised.value)


def test_a_run_of_503s_within_the_attempts_is_survived(server, tmp_path, clean_landing):
    clean_pages, clean_manifest = clean_landing
    server.fault_plan = FaultPlan(fail_first=[503, 503, 503])
    store = LocalObjectStore(tmp_path)
    sleeps: list[float] = []
    with make_client(server, sleeps, max_attempts=4) as client:
        result = land_day(store, client, DAY)
    assert landed_bytes(store) == clean_pages
    # The manifest too: the same day, totals and page list (number, records, lines, bytes,
    # sha256, file name); only the run's own fields differ.
    manifest = read_manifest(store, DAY)
    assert comparable_manifest(manifest) == comparable_manifest(clean_manifest)
    assert manifest["run_id"] == result.run_id != clean_manifest["run_id"]
    assert manifest["source"]["base_url"] == server.url
    assert orders_requests(server) == [503] * 3 + [200] * len(clean_pages) and len(sleeps) == 3


def test_a_503_run_beyond_the_attempts_commits_nothing(server, tmp_path):
    store = LocalObjectStore(tmp_path)
    with make_client(server, []) as client:
        committed = land_day(store, client, DAY)
    server.requests.clear()
    sleeps: list[float] = []
    with make_client(server, sleeps, max_attempts=3) as client:
        pages = client.iter_pages(DAY)

        def page_1_then_503s():
            # Page 1 arrives; from then on the source answers 503 for longer than the
            # client's attempts, so the re-run dies mid-day.
            yield next(pages)
            server.fault_plan = FaultPlan(fail_first=[503] * 3)
            yield from pages

        with pytest.raises(SourceTransientError, match="3 attempts.*HTTP 503") as raised:
            with DayLease(store, DAY, "rerun") as lease:
                land_pages(store, page_1_then_503s(), DAY, "rerun", source_url=client.safe_url, lease=lease)
    assert orders_requests(server) == [200, 503, 503, 503] and len(sleeps) == 2
    assert read_manifest(store, DAY) == committed.manifest
    assert verify_manifest(store, committed.manifest) == []
    # The failed run's page is on disk but ignored by readers (and cleaned by the next commit).
    assert store.list_keys(run_prefix(DAY, "rerun")) == [run_prefix(DAY, "rerun") + "page-00001.jsonl"]
    assert server.token not in str(raised.value)
    assert not store.exists(lease_key(DAY))


@pytest.mark.parametrize("fault", [FAULT_TRUNCATED, FAULT_INVALID_JSON, FAULT_DISCONNECT])
def test_broken_bodies_are_retried_and_land_the_clean_bytes(server, tmp_path, clean_pages, fault):
    server.fault_plan = FaultPlan(fail_first=[fault, fault])
    store = LocalObjectStore(tmp_path)
    sleeps: list[float] = []
    with make_client(server, sleeps) as client:
        result = land_day(store, client, DAY)
    assert landed_bytes(store) == clean_pages
    assert len(sleeps) == 2 and result.retries == 2 and result.requests == len(clean_pages) + 2


def test_a_slow_answer_past_the_read_timeout_is_retried(server, tmp_path, clean_pages):
    server.fault_plan = FaultPlan(fail_first=[FAULT_SLOW], slow_seconds=1.5)
    store = LocalObjectStore(tmp_path)
    sleeps: list[float] = []
    with make_client(server, sleeps, timeout=(2.0, 0.3)) as client:
        result = land_day(store, client, DAY)
    assert landed_bytes(store) == clean_pages
    assert len(sleeps) == 1 and result.retries == 1


def test_a_repeated_cursor_stops_with_a_pagination_error_and_commits_nothing(server, tmp_path):
    store = LocalObjectStore(tmp_path)
    with make_client(server, []) as client:
        committed = land_day(store, client, DAY).manifest
    server.requests.clear()
    server.fault_plan = FaultPlan(repeat_cursor_on_page=3)
    with make_client(server, []) as client:
        with pytest.raises(SourcePaginationError, match="repeats an earlier cursor"):
            land_day(store, client, DAY)
    assert orders_requests(server) == [200, 200, 200]  # stopped at the loop, no fourth request
    assert read_manifest(store, DAY) == committed and verify_manifest(store, committed) == []


def test_schema_variants_are_landed_exactly_as_served(server, tmp_path):
    server.fault_plan = FaultPlan(schema_variants=True)
    store = LocalObjectStore(tmp_path)
    with make_client(server, []) as client:
        land_day(store, client, DAY)
    landed = b"".join(landed_bytes(store))
    served = server.served_records(DAY)
    assert landed == b"".join(contract.dumps_exact(r).encode() + b"\n" for r in served)
    records = list(contract.records_from_jsonl(landed))
    assert sum(1 for r in records if isinstance(r, dict) and EXTRA_FIELD in r) >= 1
    assert any(isinstance(r, dict) and any(isinstance(l, dict) and isinstance(l.get("quantity"), str)
                                           for l in r.get("lines") or []) for r in records)
    assert contract.expected_figures(records, DAY)["quarantine_by_reason"].get(contract.MISSING_PRODUCT_ID, 0) >= 1


def test_resent_orders_are_landed_and_counted_as_superseded(server, tmp_path):
    server.fault_plan = FaultPlan(resend_orders=3)
    store = LocalObjectStore(tmp_path)
    with make_client(server, []) as client:
        result = land_day(store, client, DAY)
    records = list(contract.records_from_jsonl(b"".join(landed_bytes(store))))
    clean = DemoSourceServer(config=CONFIG).figures(DAY)
    assert result.orders == clean["raw_records"] + 3 == len(records)
    figures = contract.expected_figures(records, DAY)
    assert figures["superseded_lines"] > clean["superseded_lines"]
    assert figures == server.figures(DAY)
    assert [r["status"] for r in records[-3:]] == ["cancelled"] * 3


def test_a_late_correction_replaces_the_loaded_day_atomically(server, tmp_path, clean_pages):
    server.fault_plan = FaultPlan(late_correction=True)
    store = LocalObjectStore(tmp_path)
    with make_client(server, []) as client:
        first = land_day(store, client, DAY)
        assert landed_bytes(store) == clean_pages  # the first listing is the clean day
        second = land_day(store, client, DAY)
    assert read_manifest(store, DAY)["run_id"] == second.run_id
    assert second.orders == first.orders + 1
    corrected = list(contract.records_from_jsonl(b"".join(landed_bytes(store))))[-1]
    assert corrected["status"] == "returned"
    assert second.manifest["source"]["as_of"] != first.manifest["source"]["as_of"]
    # Only the committed run's folder is left.
    assert store.list_keys(run_prefix(DAY, first.run_id)) == []
    assert all(k == manifest_key(DAY) or k.startswith(run_prefix(DAY, second.run_id))
               for k in store.list_keys(f"raw/sales_orders/order_date={DAY}/"))
