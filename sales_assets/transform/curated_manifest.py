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
- ``commit_day(lake, table, day, tables, run_id=None)`` writes a day the way the Glue job does
  (files, then record, then cleanup) through a ``LakeResource``; for tests and tools that build
  curated data without Spark.

One run per day. The Glue job commits the four tables of a day one after the other, all with
the run id of the job run, which it puts in every file name: ``part-NNNNN-<run_id>.snappy.parquet``
(``run_id`` is 32 lowercase hex digits, ``uuid4().hex``). A kill between two tables' commits leaves
a day whose tables come from two runs (say order_lines new, quarantine old); loading or checking
that mix would pair rows that were never computed together. The record stays a bare COPY manifest
(Redshift knows only ``entries``), so the run is read from the listed names:
- ``record_run_id(names, where)`` is the run of one record: None when no name follows the job's
  convention (files written by another tool carry no run and take no part in the rule);
  ``CuratedRunMismatchError`` when its names carry two runs.
- ``require_one_run(day, runs_by_table)`` raises ``CuratedRunMismatchError`` (a
  ``CuratedRecordError``) naming the day, each table's run and telling to re-run the transform
  for that day, when the tables' runs differ; it returns the day's run (or None).
- ``require_one_run_per_day(lake_root, days, tables, s3_client=None)`` reads the records of a
  local or S3 lake and applies the rule to each day; the warehouse loader calls it before its
  transaction, the transform's reconciliation check per day. A missing record is left to the
  reader's own error (``missing_record``).
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
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


class CuratedRunMismatchError(CuratedRecordError):
    """The tables of a curated day (or one record's files) were committed by different runs."""


# The name the Glue job gives a committed file: part-NNNNN-<run_id>.<suffix>, run_id = uuid4().hex.
RUN_FILE_NAME = re.compile(r"part-\d{5}-(?P<run>[0-9a-f]{32})\.[a-z.]*parquet")


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


def record_run_id(names: Sequence[str], where: str) -> str | None:
    """The run that committed the files ``names`` (one record's); None when no name carries one."""
    runs = {match["run"] for match in map(RUN_FILE_NAME.fullmatch, names) if match}
    if len(runs) > 1:
        raise CuratedRunMismatchError(
            f"{where}: lists files of {len(runs)} transform runs ({', '.join(sorted(runs))}); a commit "
            "lists one run's files only. Re-run the transform for that day."
        )
    return runs.pop() if runs else None


def require_one_run(day: dt.date, runs_by_table: dict[str, str | None]) -> str | None:
    """The run every table of ``day`` was committed by (None when none carries one).

    ``CuratedRunMismatchError`` naming the day and each table's run when they differ: the
    transform stopped between two tables' commits, and the day is a mix of two runs.
    """
    runs = {run for run in runs_by_table.values() if run is not None}
    if len(runs) > 1:
        detail = ", ".join(f"{table}: {run or 'no run id'}" for table, run in sorted(runs_by_table.items()))
        raise CuratedRunMismatchError(
            f"curated order_date={_iso(day)} mixes the output of {len(runs)} transform runs ({detail}): "
            f"a transform run stopped between two tables' commits. Re-run the transform (the curated/* "
            f"assets, glue_scripts/curate_sales_orders.py) for {_iso(day)}; nothing was loaded."
        )
    return runs.pop() if runs else None


def _read_record(lake_root: str, table: str, day: dt.date, s3_client) -> tuple[bytes | None, str]:
    """(record body or None when absent, its URI) in a local or S3 lake."""
    root = str(lake_root).rstrip("/")
    where = f"{root}/{record_key(table, day)}"
    if root.startswith("s3://"):
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        bucket, _, key = where[len("s3://"):].partition("/")
        try:
            return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read(), where
        except s3_client.exceptions.NoSuchKey:
            return None, where
    try:
        with open(where, "rb") as handle:
            return handle.read(), where
    except FileNotFoundError:
        return None, where


def require_one_run_per_day(
    lake_root: str, days: Sequence[dt.date], tables: Sequence[str], s3_client=None
) -> dict[dt.date, str | None]:
    """Apply ``require_one_run`` to each day over the records of ``tables``; the run per day.

    Records are read from ``lake_root`` (a local path, or ``s3://bucket/prefix`` through
    ``s3_client``); an absent record is skipped here (the reader fails on it with its own error).
    """
    runs = {}
    for day in sorted(set(days)):
        by_table = {}
        for table in tables:
            body, where = _read_record(lake_root, table, day, s3_client)
            if body is not None:
                names = listed_names(parse_record(body, where), table, day, lake_root, where)
                by_table[table] = record_run_id(names, where)
        runs[day] = require_one_run(day, by_table)
    return runs


def record_body(entries: Sequence[RecordEntry]) -> bytes:
    """A record's bytes (the Glue job writes the same shape)."""
    return json.dumps(
        {"entries": [{"url": e.url, "mandatory": True, "meta": {"content_length": e.content_length}} for e in entries]},
        indent=1,
    ).encode("utf-8")


def commit_day(
    lake: "LakeResource", table: str, day: dt.date, tables: Sequence["pa.Table"], run_id: str | None = None
) -> list[str]:
    """Write ``tables`` (one parquet file each; none given is an error) as the committed day.

    Same protocol as the Glue job: files named ``part-NNNNN-<run_id>``, then the record (one
    atomic write), then every other file of the day folder deleted. Returns the keys listed.
    ``run_id`` (32 hex digits) is the run committing the file; omitted, the run the day's other
    tables were committed by continues (a new one for a day none of whose tables has a record),
    so a day built one table at a time is one run's, as the Glue job builds it. Numbers start
    past the folder's names of that run, so a listed file is never overwritten.
    """
    import pyarrow.parquet as pq

    if not tables:
        raise ValueError("a curated day lists at least one file (write an empty table for an empty day)")
    prefix = day_prefix(table, day)
    run = run_id or _current_run(lake, day) or uuid.uuid4().hex
    if not re.fullmatch(r"[0-9a-f]{32}", run):
        raise ValueError(f"run_id must be 32 lowercase hex digits (uuid4().hex), got {run!r}")
    taken = [
        int(match["n"]) for key in lake.list_keys(prefix)
        if (match := re.fullmatch(rf"part-(?P<n>\d{{5}})-{run}\..*", key[len(prefix):]))
    ]
    first = max(taken, default=-1) + 1
    entries, keys = [], []
    for n, frame in enumerate(tables, start=first):
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


def _current_run(lake: "LakeResource", day: dt.date) -> str | None:
    """The run the day's committed tables share (commit_day's default), None when there is none."""
    runs = set()
    for key in lake.list_keys(f"{CURATED_FOLDER}/"):
        table, _, rest = key[len(CURATED_FOLDER) + 1:].partition("/")
        if rest == f"{PARTITION_KEY}={_iso(day)}/{RECORD_NAME}":
            names = [e.url.replace("\\", "/").rpartition("/")[2] for e in parse_record(lake.read_bytes(key), key)]
            runs.add(record_run_id(names, key))
    runs.discard(None)
    return runs.pop() if len(runs) == 1 else None
