"""Landing one day of orders in the lake: pages first, the manifest last.

A partition becomes visible only when ``_manifest.json`` is written, so readers
never see half a day; a re-run lands under a new ``run_id`` and replaces the day
by rewriting the manifest (one atomic object write). Folders of uncommitted or
superseded runs are ignored by every reader and removed after a commit.

Only one run writes a day at a time: ``day_lease`` holds ``_lease.json`` in the
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

import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sales_assets.source.contract import line_units

RAW_TABLE_PREFIX = "raw/sales_orders"
MANIFEST_NAME = "_manifest.json"
LEASE_NAME = "_lease.json"
# Long enough for a slow page or two; the lease is renewed as pages land (when half of it
# has passed), so a long day keeps it. A crashed writer blocks the day for at most this long
# on S3; in a local lake a writer proven dead (see ``writer_is_dead``) is taken over at once.
DEFAULT_LEASE_TTL_SECONDS = 600.0


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


def day_prefix(order_date: dt.date | str) -> str:
    day = order_date.isoformat() if isinstance(order_date, dt.date) else dt.date.fromisoformat(order_date).isoformat()
    return f"{RAW_TABLE_PREFIX}/order_date={day}/"


def manifest_key(order_date: dt.date | str) -> str:
    return day_prefix(order_date) + MANIFEST_NAME


def run_prefix(order_date: dt.date | str, run_id: str) -> str:
    return f"{day_prefix(order_date)}run_id={run_id}/"


def lease_key(order_date: dt.date | str) -> str:
    return day_prefix(order_date) + LEASE_NAME


class LeaseHeldError(RuntimeError):
    """Another run holds the day's lease: this run must not write the day now."""


class LeaseLostError(RuntimeError):
    """This run's lease expired and another run took the day over: nothing was committed."""


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> tuple[str, str] | None:
    """(start time in clock ticks since boot, state) of ``pid`` from /proc; None when it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    return fields[19], fields[0]


def process_identity() -> dict | None:
    """This process as a lease names it; None where /proc is not there to prove anything."""
    boot_id = _read("/proc/sys/kernel/random/boot_id")
    start = _process_start(os.getpid())
    if boot_id is None or start is None:
        return None
    return {"host": socket.gethostname(), "boot_id": boot_id, "pid": os.getpid(), "started": start[0]}


def writer_is_dead(holder: dict) -> bool:
    """True only when the lease's writer ran on this host since this boot and that process is
    gone (no such pid, a zombie, or the pid now belongs to a process started later)."""
    writer, here = holder.get("writer"), process_identity()
    if not isinstance(writer, dict) or here is None:
        return False
    if (writer.get("host"), writer.get("boot_id")) != (here["host"], here["boot_id"]):
        return False
    if not isinstance(writer.get("pid"), int):
        return False
    current = _process_start(writer["pid"])
    return current is None or current[1] == "Z" or current[0] != writer.get("started")


def _is_local(lake: Any) -> bool:
    root = getattr(lake, "root_uri", None)
    return callable(root) and not str(root()).startswith("s3://")


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


class DayLease:
    """One writer per day: acquire, renew while landing, release after the commit.

    Use as a context manager. ``owner`` is a human description (e.g. a Dagster run id)
    shown to a second writer; ``clock`` gives epoch seconds (injectable for tests).
    """

    def __init__(self, lake: Lake, order_date: dt.date, run_id: str, owner: str = "",
                 ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.lake = lake
        self.order_date = order_date
        self.key = lease_key(order_date)
        self.run_id = run_id
        self.owner = owner or f"run {run_id}"
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._version: str | None = None
        self._renewed_at = 0.0
        self.took_over: dict | None = None
        # Only a local lake's writers share this host's process table (S3: the TTL alone).
        self._writer = process_identity() if _is_local(lake) else None

    def _body(self, now: float) -> bytes:
        body = {"run_id": self.run_id, "owner": self.owner,
                "acquired_at": _iso(now), "expires_at": now + self.ttl_seconds}
        if self._writer is not None:
            body["writer"] = self._writer
        return json.dumps(body).encode()

    def acquire(self) -> "DayLease":
        now = self.clock()
        body = self._body(now)
        for _ in range(3):
            if self.lake.create_exclusive(self.key, body):
                break
            current = self.lake.read_versioned(self.key)
            if current is None:
                continue  # released between our two calls: try again
            try:
                holder = json.loads(current.data)
                expires_at = float(holder["expires_at"])
            except (ValueError, KeyError, TypeError):
                holder, expires_at = {}, 0.0  # unreadable lease: treat as expired
            if expires_at > now and not (self._writer is not None and writer_is_dead(holder)):
                raise LeaseHeldError(
                    f"order_date={self.order_date} is being landed by another run "
                    f"({holder.get('owner', '?')}, run_id {holder.get('run_id', '?')}); its lease {self.key} "
                    f"expires at {_iso(expires_at)}. One writer per day keeps pages from interleaving: "
                    f"retry when that run has finished, or after the lease expires if it crashed.")
            if self.lake.replace_if_version(self.key, body, current.version):
                self.took_over = holder
                break
        else:
            raise LeaseHeldError(f"order_date={self.order_date}: could not take the lease {self.key}; "
                                 f"another run keeps taking it. Retry later.")
        self._version = self._current_version(body)
        self._renewed_at = now
        return self

    def _current_version(self, body: bytes) -> str | None:
        current = self.lake.read_versioned(self.key)
        return current.version if current is not None and current.data == body else None

    def renew_if_due(self) -> None:
        """Extend the lease when half its TTL has passed; LeaseLostError if it is gone."""
        now = self.clock()
        if now - self._renewed_at < self.ttl_seconds / 2:
            return
        body = self._body(now)
        if self._version is None or not self.lake.replace_if_version(self.key, body, self._version):
            raise LeaseLostError(self._lost_message())
        self._version = self._current_version(body)
        self._renewed_at = now

    def ensure_held(self) -> None:
        """LeaseLostError unless this run still holds an unexpired lease (call before committing)."""
        current = self.lake.read_versioned(self.key)
        if current is None or current.version != self._version:
            raise LeaseLostError(self._lost_message())
        if float(json.loads(current.data)["expires_at"]) <= self.clock():
            raise LeaseLostError(self._lost_message())

    def _lost_message(self) -> str:
        return (f"order_date={self.order_date}: run {self.run_id} lost its lease {self.key} (it expired and "
                f"another run took the day over); nothing of this run was committed.")

    def release(self) -> None:
        """Delete the lease if it is still this run's (never another run's)."""
        current = self.lake.read_versioned(self.key)
        if current is not None and self._version is not None and current.version == self._version:
            self.lake.delete_key(self.key)
        self._version = None

    def __enter__(self) -> "DayLease":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


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
    by a page, whatever the size of the day. ``source_url`` goes into the manifest
    as given: pass it without credentials. With a ``lease``, it is renewed as pages
    land and checked before the commit. Returns the committed manifest.
    """
    summaries: list[PageSummary] = []
    as_of = None
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
