"""The commit record of a curated table-day: ``curated/<table>/order_date=D/_manifest.json``.

The Glue job (``glue_scripts/curate_sales_orders.py``, which cannot import this package) writes
a day's parquet files under names unique to its run, then this record, last and atomically, then
deletes the day folder's files the record does not list. The record is the day: every reader
(the warehouse loader, the Redshift COPY, the Data API load, the curated checks, the demo
summary) reads exactly the files it lists, so a crashed or concurrent write is never seen half
done, and a day without a record is an error, never an empty day.

The record is a Redshift COPY manifest, nothing more, so Redshift can COPY ... MANIFEST straight
from it (the exported Step Functions state machine does)::

    {"entries": [{"url": "s3://bucket/prefix/curated/order_lines/order_date=D/part-<run>-00000.snappy.parquet",
                  "mandatory": true, "meta": {"content_length": 12345}}]}

``url`` is an ``s3://`` URI on S3 and an absolute file path in a local lake. ``content_length``
is the file's size in bytes (Redshift requires it for parquet). A record always lists at least
one file: an empty day is one schema-only parquet file, because Redshift fails a COPY of an
empty manifest.

Callers may rely on:
- ``parse_record(body, where)`` returns the entries or raises ``CuratedRecordError`` naming
  ``where`` when the body is not such a record (including an empty ``entries``).
- ``listed_names(entries, table, day, root)`` are the file names, each checked to live in that
  very day folder (``root`` is the lake root; on S3 the URL must be under it exactly, a local
  lake may have been moved, so only the ``curated/<table>/order_date=D`` tail is compared).
- ``CuratedRecordMissingError`` / ``CuratedFileMissingError`` (both ``FileNotFoundError``)
  name the table, the day and what to do.
- ``commit_day(lake, table, day, tables)`` writes a day the way the Glue job does (files, then
  record, then cleanup) through a ``LakeResource``; for tests and tools that build curated
  data without Spark.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only: the warehouse sessions import this module, it needs no Dagster
    import pyarrow as pa

    from sales_assets.resources.lake import LakeResource

CURATED_FOLDER = "curated"
RECORD_NAME = "_manifest.json"
PARTITION_KEY = "order_date"


class CuratedRecordError(ValueError):
    """A curated day's record is not a COPY manifest of files in its own day folder."""


class CuratedRecordMissingError(FileNotFoundError):
    """A curated table-day has no committed record: it was never curated (or its run died)."""


class CuratedFileMissingError(FileNotFoundError):
    """A file a committed record lists is gone: the lake was changed behind the pipeline."""


@dataclass(frozen=True)
class RecordEntry:
    url: str
    content_length: int


def day_prefix(table: str, day: dt.date) -> str:
    """``curated/<table>/order_date=YYYY-MM-DD/`` (lake key of the day folder)."""
    return f"{CURATED_FOLDER}/{table}/{PARTITION_KEY}={_iso(day)}/"


def record_key(table: str, day: dt.date) -> str:
    return day_prefix(table, day) + RECORD_NAME


def _iso(day: dt.date) -> str:
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise TypeError(f"day must be a datetime.date, got {day!r}")
    return day.isoformat()


def missing_record(table: str, day: dt.date, where: str) -> CuratedRecordMissingError:
    return CuratedRecordMissingError(
        f"curated/{table} order_date={_iso(day)} has no committed record ({where} is absent): the day "
        f"was never curated, or its transform run did not finish. Run the transform (the curated/* "
        f"assets, glue_scripts/curate_sales_orders.py) for {_iso(day)} first; nothing was loaded."
    )


def missing_file(table: str, day: dt.date, name: str, where: str) -> CuratedFileMissingError:
    return CuratedFileMissingError(
        f"curated/{table} order_date={_iso(day)}: {name}, listed by the committed record {where}, is "
        "missing; the lake was changed outside the pipeline. Re-run the transform for that day."
    )


def parse_record(body: bytes, where: str) -> list[RecordEntry]:
    """The entries of a record; CuratedRecordError naming ``where`` when it is malformed."""
    try:
        document = json.loads(body)
    except ValueError as error:
        raise CuratedRecordError(f"{where}: not JSON ({error})") from None
    entries = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CuratedRecordError(f"{where}: a curated record needs a non-empty 'entries' list")
    parsed = []
    for entry in entries:
        url = entry.get("url") if isinstance(entry, dict) else None
        meta = entry.get("meta") if isinstance(entry, dict) else None
        length = meta.get("content_length") if isinstance(meta, dict) else None
        if (
            not isinstance(url, str) or not url or entry.get("mandatory") is not True
            or not isinstance(length, int) or isinstance(length, bool) or length < 0
        ):
            raise CuratedRecordError(f"{where}: malformed entry {entry!r} (url, mandatory: true, meta.content_length)")
        parsed.append(RecordEntry(url, length))
    return parsed


def listed_names(entries: Sequence[RecordEntry], table: str, day: dt.date, root: str, where: str = "") -> list[str]:
    """The file names the entries list, each proven to be in ``curated/<table>/order_date=D/``."""
    tail = day_prefix(table, day).rstrip("/")
    names = []
    for entry in entries:
        parent, _, name = entry.url.replace("\\", "/").rpartition("/")
        if str(root).startswith("s3://"):
            inside = parent == f"{str(root).rstrip('/')}/{tail}"
        else:
            inside = parent.endswith("/" + tail)
        if not inside or not name or name.startswith(("_", ".")) or not name.endswith(".parquet"):
            raise CuratedRecordError(f"{where or record_key(table, day)}: {entry.url} is not a parquet file of {tail}/")
        names.append(name)
    if len(set(names)) != len(names):
        raise CuratedRecordError(f"{where or record_key(table, day)}: a file is listed twice")
    return names


def record_body(entries: Sequence[RecordEntry]) -> bytes:
    """A record's bytes (the Glue job writes the same shape)."""
    return json.dumps(
        {"entries": [{"url": e.url, "mandatory": True, "meta": {"content_length": e.content_length}} for e in entries]},
        indent=1,
    ).encode("utf-8")


def commit_day(lake: "LakeResource", table: str, day: dt.date, tables: Sequence["pa.Table"]) -> list[str]:
    """Write ``tables`` (one parquet file each; none given is an error) as the committed day.

    Same protocol as the Glue job: files under run-unique names, then the record (one atomic
    write), then every other file of the day folder deleted. Returns the keys listed.
    """
    import pyarrow.parquet as pq

    if not tables:
        raise ValueError("a curated day lists at least one file (write an empty table for an empty day)")
    prefix = day_prefix(table, day)
    run = uuid.uuid4().hex
    entries, keys = [], []
    for n, frame in enumerate(tables):
        sink = io.BytesIO()
        pq.write_table(frame, sink)
        key = f"{prefix}part-{n:05d}-{run}.snappy.parquet"
        lake.write_bytes(key, sink.getvalue())
        entries.append(RecordEntry(lake.uri(key), len(sink.getvalue())))
        keys.append(key)
    lake.write_bytes(prefix + RECORD_NAME, record_body(entries))
    for stale in lake.list_keys(prefix):
        if stale not in keys and stale != prefix + RECORD_NAME:
            lake.delete_key(stale)
    return keys
