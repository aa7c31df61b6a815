"""Landing one day of orders in the lake: pages first, the manifest last.

A partition becomes visible only when ``_manifest.json`` is written, so readers
never see half a day; a re-run lands under a new ``run_id`` and replaces the day
by rewriting the manifest (one atomic object write). Folders of uncommitted or
superseded runs are ignored by every reader and removed after a commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sales_assets.resources.lake import LakeResource
from sales_assets.source.contract import line_units

RAW_TABLE_PREFIX = "raw/sales_orders"
MANIFEST_NAME = "_manifest.json"


def day_prefix(order_date: dt.date | str) -> str:
    day = order_date.isoformat() if isinstance(order_date, dt.date) else dt.date.fromisoformat(order_date).isoformat()
    return f"{RAW_TABLE_PREFIX}/order_date={day}/"


def manifest_key(order_date: dt.date | str) -> str:
    return day_prefix(order_date) + MANIFEST_NAME


def run_prefix(order_date: dt.date | str, run_id: str) -> str:
    return f"{day_prefix(order_date)}run_id={run_id}/"


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


def read_manifest(lake: LakeResource, order_date: dt.date) -> dict | None:
    """The committed manifest of a day, or None if the day was never committed."""
    key = manifest_key(order_date)
    if not lake.exists(key):
        return None
    return json.loads(lake.read_bytes(key))


def land_pages(
    lake: LakeResource,
    pages: Iterable,
    order_date: dt.date,
    run_id: str,
    source_url: str,
) -> dict:
    """Write each page as JSON Lines under the run folder, then commit the manifest.

    ``pages`` yields objects with ``number``, ``records``, ``as_of`` and
    ``jsonl_bytes()``; they are consumed one at a time so memory stays bounded
    by a page, whatever the size of the day. Returns the committed manifest.
    """
    summaries: list[PageSummary] = []
    as_of = None
    for page in pages:
        body = page.jsonl_bytes()
        key = f"{run_prefix(order_date, run_id)}page-{page.number:05d}.jsonl"
        lake.write_bytes(key, body)
        summaries.append(
            PageSummary(
                page=page.number,
                key=key,
                records=len(page.records),
                lines=sum(line_units(record) for record in page.records),
                bytes=len(body),
                sha256=hashlib.sha256(body).hexdigest(),
            )
        )
        as_of = page.as_of or as_of
    manifest = {
        "order_date": order_date.isoformat(),
        "run_id": run_id,
        "committed_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "source": {"base_url": source_url, "as_of": as_of},
        "record_count": sum(s.records for s in summaries),
        "line_count": sum(s.lines for s in summaries),
        "pages": [s.__dict__ for s in summaries],
    }
    lake.write_bytes(manifest_key(order_date), json.dumps(manifest, indent=2).encode())
    remove_stale_runs(lake, order_date, keep_run_id=run_id)
    return manifest


def remove_stale_runs(lake: LakeResource, order_date: dt.date, keep_run_id: str) -> int:
    """Delete run folders of the day other than the committed one; returns objects removed."""
    removed = 0
    stale_runs = {
        key[len(day_prefix(order_date)) :].split("/", 1)[0]
        for key in lake.list_keys(day_prefix(order_date) + "run_id=")
    }
    for folder in sorted(stale_runs - {f"run_id={keep_run_id}"}):
        removed += lake.delete_prefix(f"{day_prefix(order_date)}{folder}/")
    return removed


def verify_manifest(lake: LakeResource, manifest: dict) -> list[str]:
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
