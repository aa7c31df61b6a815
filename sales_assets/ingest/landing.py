"""Landing one day of orders in the lake: pages first, the manifest last.

A partition becomes visible only when ``_manifest.json`` is written, so readers
never see half a day; a re-run lands under a new ``run_id`` and replaces the day
by rewriting the manifest (one atomic object write). Folders of uncommitted or
superseded runs are ignored by every reader and removed after a commit.

Only one run writes a day at a time: ``DayLease`` (``sales_assets.ingest.lease``) holds ``_lease.json`` in the
day's folder, created with a conditional put (S3 ``IfNoneMatch="*"``, a hard link
locally), renewed while pages land, checked before the commit and released after
it. A second writer fails with ``LeaseHeldError``; the lease of a crashed writer
expires after its TTL and is then taken over with a compare-and-swap. In a local lake the
lease also names its writer process (host, boot id, pid, process start time): a writer on
this host that is provably dead (SIGKILLed, its pid gone, a zombie or reused) is taken over
at once, so the re-run after a kill need not wait for the TTL.

No Dagster here: the asset and the Lambda handler share this module, and the lake
may be a Dagster ``LakeResource`` or a plain ``sales_assets.ingest.store`` object.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sales_assets.ingest.lease import (  # noqa: F401  (re-exported: the landing API)
    DEFAULT_LEASE_TTL_SECONDS,
    Lease,
    LeaseHeldError,
    LeaseLostError,
    process_identity,
    writer_is_dead,
)
from sales_assets.source.contract import line_units

RAW_TABLE_PREFIX = "raw/sales_orders"
MANIFEST_NAME = "_manifest.json"
LEASE_NAME = "_lease.json"


class Lake(Protocol):
    """The key operations landing needs (``LakeResource`` and the stores have them)."""

    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def delete_key(self, key: str) -> None: ...
    def create_exclusive(self, key: str, data: bytes) -> bool: ...
    def read_versioned(self, key: str) -> Any: ...
    def replace_if_version(self, key: str, data: bytes, version: str) -> bool: ...
    def delete_if_version(self, key: str, version: str) -> bool: ...


def day_prefix(order_date: dt.date | str) -> str:
    day = order_date.isoformat() if isinstance(order_date, dt.date) else dt.date.fromisoformat(order_date).isoformat()
    return f"{RAW_TABLE_PREFIX}/order_date={day}/"


def manifest_key(order_date: dt.date | str) -> str:
    return day_prefix(order_date) + MANIFEST_NAME


def run_prefix(order_date: dt.date | str, run_id: str) -> str:
    return f"{day_prefix(order_date)}run_id={run_id}/"


def lease_key(order_date: dt.date | str) -> str:
    return day_prefix(order_date) + LEASE_NAME


class DayLease(Lease):
    """The lease on one raw day (``_lease.json`` in the day's folder), held while it is landed."""

    def __init__(self, lake: Lake, order_date: dt.date, run_id: str, owner: str = "",
                 ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        super().__init__(lake, lease_key(order_date), f"order_date={order_date}", run_id, owner=owner,
                         ttl_seconds=ttl_seconds, clock=clock, activity="landed")
        self.order_date = order_date


def new_run_id(now: dt.datetime | None = None) -> str:
    """Sortable and unique: a UTC timestamp plus a random suffix."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class PageSummary:
    page: int
    key: str
    records: int
    lines: int
    bytes: int
    sha256: str


def read_manifest(lake: Lake, order_date: dt.date) -> dict | None:
    """The committed manifest of a day, or None if the day was never committed."""
    key = manifest_key(order_date)
    if not lake.exists(key):
        return None
    return json.loads(lake.read_bytes(key))


def _page_counts(page: Any) -> tuple[int, int]:
    """(records, line units) of a page, from its own counts when it has them."""
    if hasattr(page, "line_units") and hasattr(page, "record_count"):
        return page.record_count, page.line_units
    return len(page.records), sum(line_units(record) for record in page.records)


def land_pages(
    lake: Lake,
    pages: Iterable,
    order_date: dt.date,
    run_id: str,
    source_url: str,
    lease: DayLease | None = None,
) -> dict:
    """Write each page as JSON Lines under the run folder, then commit the manifest.

    ``pages`` yields objects with ``number``, ``as_of``, ``jsonl_bytes()`` and either
    ``record_count`` and ``line_units`` (a client ``Page``: counted without parsing the
    records exactly) or ``records``; they are consumed one at a time so memory stays bounded
    by a few pages, whatever the size of the day. ``source_url`` goes into the manifest
    as given: pass it without credentials. With a ``lease``, it is renewed as pages
    land and checked before the commit. Returns the committed manifest.

    Page n is in place (``lake.write_bytes`` returned) before page n+1 is asked for, and
    every page is durable before the manifest is written: a lake with ``deferred_fsync``
    (``LocalObjectStore``) fsyncs the run's pages in the background while later pages land
    and waits for them all when the pages end, so the disk works alongside the fetch.
    """
    summaries: list[PageSummary] = []
    as_of = None
    deferred_fsync = getattr(lake, "deferred_fsync", None)
    durable_pages = (deferred_fsync(run_prefix(order_date, run_id)) if callable(deferred_fsync)
                     else contextlib.nullcontext())
    with durable_pages:
        for page in pages:
            body = page.jsonl_bytes()
            records, lines = _page_counts(page)
            key = f"{run_prefix(order_date, run_id)}page-{page.number:05d}.jsonl"
            lake.write_bytes(key, body)
            summaries.append(
                PageSummary(
                    page=page.number,
                    key=key,
                    records=records,
                    lines=lines,
                    bytes=len(body),
                    sha256=hashlib.sha256(body).hexdigest(),
                )
            )
            as_of = page.as_of or as_of
            if lease is not None:
                lease.renew_if_due()
    manifest = {
        "order_date": order_date.isoformat(),
        "run_id": run_id,
        "committed_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "source": {"base_url": source_url, "as_of": as_of},
        "record_count": sum(s.records for s in summaries),
        "line_count": sum(s.lines for s in summaries),
        "pages": [s.__dict__ for s in summaries],
    }
    if lease is not None:
        lease.ensure_held()
    lake.write_bytes(manifest_key(order_date), json.dumps(manifest, indent=2).encode())
    remove_stale_runs(lake, order_date, keep_run_id=run_id)
    return manifest


def remove_stale_runs(lake: Lake, order_date: dt.date, keep_run_id: str) -> int:
    """Delete run folders of the day other than the committed one; returns objects removed."""
    removed = 0
    stale_runs = {
        key[len(day_prefix(order_date)) :].split("/", 1)[0]
        for key in lake.list_keys(day_prefix(order_date) + "run_id=")
    }
    for folder in sorted(stale_runs - {f"run_id={keep_run_id}"}):
        removed += lake.delete_prefix(f"{day_prefix(order_date)}{folder}/")
    return removed


def verify_manifest(lake: Lake, manifest: dict) -> list[str]:
    """Problems found comparing the committed pages with their manifest (empty when sound)."""
    problems = []
    for page in manifest["pages"]:
        if not lake.exists(page["key"]):
            problems.append(f"page {page['page']} missing: {page['key']}")
            continue
        body = lake.read_bytes(page["key"])
        if hashlib.sha256(body).hexdigest() != page["sha256"]:
            problems.append(f"page {page['page']} sha256 differs from the manifest: {page['key']}")
    if sum(p["records"] for p in manifest["pages"]) != manifest["record_count"]:
        problems.append("record_count differs from the sum of page records")
    if sum(p["lines"] for p in manifest["pages"]) != manifest["line_count"]:
        problems.append("line_count differs from the sum of page lines")
    return problems


@dataclass
class LandingResult:
    """What ``land_day`` did: the committed manifest and the figures for metadata."""

    order_date: dt.date
    run_id: str
    manifest: dict
    manifest_key: str
    source_url: str
    wall_seconds: float
    requests: int
    retries: int
    wait_seconds: float
    took_over_lease_from: dict | None = field(default=None)

    @property
    def pages(self) -> int:
        return len(self.manifest["pages"])

    @property
    def orders(self) -> int:
        return self.manifest["record_count"]

    @property
    def lines(self) -> int:
        return self.manifest["line_count"]

    @property
    def bytes(self) -> int:
        return sum(page["bytes"] for page in self.manifest["pages"])

    def summary(self) -> dict[str, Any]:
        """Plain JSON-ready figures (no token, no credentials: the URL is display-safe)."""
        return {
            "order_date": self.order_date.isoformat(), "run_id": self.run_id, "pages": self.pages,
            "orders": self.orders, "lines": self.lines, "bytes": self.bytes, "requests": self.requests,
            "retries": self.retries, "wait_seconds": round(self.wait_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3), "source_url": self.source_url,
            "manifest_key": self.manifest_key,
        }


def land_day(
    lake: Lake,
    client: Any,
    order_date: dt.date,
    *,
    run_id: str | None = None,
    owner: str = "",
    lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
    clock: Callable[[], float] = time.time,
) -> LandingResult:
    """Land one day from a ``SalesSourceClient`` under the day's lease: the code the
    ``raw/sales_orders`` asset and the Lambda handler share.

    On any failure nothing is committed, the previously committed day stays as it was,
    and the exception propagates (the lease is released). Figures on the result count
    this call only (the client's counters are read before and after).
    """
    run_id = run_id or new_run_id()
    started = time.monotonic()
    before = (client.stats.requests, client.stats.retries, client.stats.wait_seconds)
    with DayLease(lake, order_date, run_id, owner=owner, ttl_seconds=lease_ttl_seconds, clock=clock) as lease:
        manifest = land_pages(lake, client.iter_pages(order_date), order_date, run_id,
                              source_url=client.safe_url, lease=lease)
    return LandingResult(
        order_date=order_date,
        run_id=run_id,
        manifest=manifest,
        manifest_key=manifest_key(order_date),
        source_url=client.safe_url,
        wall_seconds=time.monotonic() - started,
        requests=client.stats.requests - before[0],
        retries=client.stats.retries - before[1],
        wait_seconds=client.stats.wait_seconds - before[2],
        took_over_lease_from=lease.took_over,
    )
