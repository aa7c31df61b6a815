"""The project's crawler: one committed day of raw/sales_orders into a Glue-shaped catalog.

It does what a Glue crawler does for one partition, but reads only the committed run (the
manifest's page list), so a catalog never describes an uncommitted or superseded run:

1. read ``raw/sales_orders/order_date=D/_manifest.json`` (the commit marker);
2. infer the schema from a sample of the listed page files, as a Glue crawler samples files
   (:class:`Sample`, defaults in :mod:`crawler_config` with their AWS sources): the first
   ``bytes_per_page`` of up to ``pages`` pages spread evenly over the day (first and last
   included), read with a bounded prefix read (S3: one ranged GET), never the whole object;
3. merge it into the table under Glue's safe policy (:func:`schema.merge_columns`) and write a
   new table version only when the schema changed (or create the table);
4. upsert partition ``order_date=D`` whose Location is the committed run folder.

:func:`crawl_with_glue_crawler` is the ``aws`` alternative that lets a real Glue crawler infer
and merge the schema instead (steps 2-3), keeping step 4 and the partition scan for the checks.

Sampling trade-off (the Glue crawler's own): a field or a type change that appears only in
pages, or past the first ``bytes_per_page`` of a page, outside the sample is not cataloged by
that crawl (a later crawl that samples it adds or widens the column). The transform reads every
line whatever the catalog says and keeps or quarantines such lines by its own rules, and the
raw asset's blocking check verifies every page against the manifest's sha256; the crawler checks
the sha256 only of pages it reads whole. ``Sample.everything()`` restores the full pass, at
about 8 MB/s of JSON on one core. Row counts (``record_count``, the partition's ``recordCount``)
come from the landing manifest, which counted every page, never from the sample.

The lake is any object with ``read_bytes(key) -> bytes`` and ``uri(key) -> str`` over keys
relative to the lake root, and preferably ``read_prefix(key, n) -> bytes`` (without it the crawler
reads the object and keeps its first ``n`` bytes); the catalog is a :class:`CatalogResource`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator, Protocol

from sales_assets.catalog.contract import contract_view
from sales_assets.catalog.crawler_config import MAX_SAMPLE_BYTES_PER_PAGE, SAMPLE_BYTES_PER_PAGE, SAMPLE_PAGES
from sales_assets.catalog.schema import (
    InferredSchema,
    NumberMode,
    SchemaAccumulator,
    merge_columns,
    schema_changed,
)
from sales_assets.ingest.landing import RAW_TABLE_PREFIX, manifest_key
from sales_assets.ingest.landing import run_prefix as run_folder_key
from sales_assets.resources.catalog import CatalogConflictError, CatalogResource

PARTITION_KEY = "order_date"
PARTITION_KEYS = [{"Name": PARTITION_KEY, "Type": "string"}]
INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
SERDE = "org.openx.data.jsonserde.JsonSerDe"
TABLE_PARAMETERS = {"classification": "json", "compressionType": "none", "typeOfData": "file"}
# Parallel days may race on the same table; each conflict means another writer made progress,
# so retrying (re-read, re-merge) terminates; the bound only guards against a broken catalog.
MAX_MERGE_ATTEMPTS = 25


class Lake(Protocol):
    def read_bytes(self, key: str) -> bytes: ...

    def uri(self, key: str) -> str: ...


@dataclass(frozen=True)
class Sample:
    """How much of a committed day a crawl infers the schema from.

    ``pages``: at most this many pages, spread evenly over the manifest's page order (first
    and last included); None: every page (Glue ``S3Target.SampleSize``). ``bytes_per_page``:
    the complete lines within the first this-many bytes of each sampled page; None: whole pages
    (Glue reads a JSON file's first 1 MB). When that prefix holds no JSON object the read grows
    by ``bytes_per_page`` up to ``max_bytes_per_page`` (Glue: 1 MB steps up to 10 MB).
    """

    pages: int | None = SAMPLE_PAGES
    bytes_per_page: int | None = SAMPLE_BYTES_PER_PAGE
    max_bytes_per_page: int | None = MAX_SAMPLE_BYTES_PER_PAGE

    def __post_init__(self) -> None:
        for name in ("pages", "bytes_per_page", "max_bytes_per_page"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"Sample.{name} must be positive or None, got {value}")

    @classmethod
    def everything(cls) -> "Sample":
        """Every line of every page: the full pass (slow on big days; see the module docstring)."""
        return cls(pages=None, bytes_per_page=None, max_bytes_per_page=None)


class ManifestError(ValueError):
    """The day's manifest is missing a field, names another day, or disagrees with its pages."""


@dataclass(frozen=True)
class CrawlResult:
    """What one crawl saw and wrote.

    ``columns``: the table's columns after the crawl (Glue Column dicts). ``diff``: the merge
    diff (``added``, ``widened``, ``missing_in_partition``; columns named like the partition key
    are listed in ``dropped`` instead). ``table_version``: the table's VersionId after the crawl;
    ``table_created`` / ``table_updated`` say whether this crawl wrote it. ``records_scanned``:
    JSON objects inferred from (the sample); ``records_skipped``: sampled lines that were not JSON
    objects; ``record_count``: the day's records per the landing manifest (every page);
    ``pages_scanned`` / ``bytes_scanned``: what the sample read.
    """

    database: str
    table: str
    order_date: str
    run_id: str
    columns: list[dict]
    diff: dict
    table_version: str
    table_created: bool
    table_updated: bool
    partition_values: list[str]
    partition_location: str
    table_location: str
    records_scanned: int
    records_skipped: int
    pages_scanned: int
    nullable_columns: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    partition_columns: list[dict] = field(default_factory=list)
    contract_columns: list[dict] = field(default_factory=list)
    partition_parameters: dict = field(default_factory=dict)
    partition_written: bool = True
    record_count: int = 0
    bytes_scanned: int = 0

    @property
    def partition_input(self) -> dict:
        """Glue ``PartitionInput`` for this day: the table's columns at the committed run folder."""
        return {
            "Values": list(self.partition_values),
            "StorageDescriptor": storage_descriptor(self.columns, self.partition_location),
            "Parameters": dict(self.partition_parameters),
        }

    @property
    def schema_changed(self) -> bool:
        return self.table_created or self.table_updated


def _folder_uri(lake: Lake, key: str) -> str:
    uri = lake.uri(key.rstrip("/"))
    return uri if uri.endswith("/") else uri + "/"


def read_manifest(lake: Lake, order_date: str) -> dict:
    """The day's committed manifest, checked for the fields the crawler relies on."""
    manifest = json.loads(lake.read_bytes(manifest_key(order_date)))
    if manifest.get("order_date") != order_date:
        raise ManifestError(f"manifest for {order_date} names order_date {manifest.get('order_date')!r}")
    run_id = manifest.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise ManifestError(f"manifest for {order_date} has no run_id")
    pages = manifest.get("pages")
    if not isinstance(pages, list):
        raise ManifestError(f"manifest for {order_date} has no pages list")
    folder = run_folder_key(order_date, run_id)
    for page in pages:
        # The partition's Location is the run folder, so a page elsewhere would be invisible.
        if not str(page.get("key", "")).startswith(folder):
            raise ManifestError(f"page {page.get('key')!r} is outside the committed run folder {folder}")
    return manifest


def sampled_pages(manifest: dict, pages: int | None) -> list[dict]:
    """The manifest's pages a crawl reads, in page order: all of them when ``pages`` is None or
    covers the day, else ``pages`` of them evenly spaced, the first and the last included."""
    ordered = sorted(manifest["pages"], key=lambda p: p.get("page", 0))
    if pages is None or len(ordered) <= pages:
        return ordered
    if pages == 1:
        return ordered[:1]
    last = len(ordered) - 1
    return [ordered[i] for i in sorted({round(n * last / (pages - 1)) for n in range(pages)})]


def _read_prefix(lake: Lake, key: str, length: int) -> bytes:
    reader = getattr(lake, "read_prefix", None)
    return reader(key, length) if reader is not None else lake.read_bytes(key)[:length]


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line, parse_float=Decimal)
    except ValueError:
        return _UNPARSEABLE


def read_page_sample(lake: Lake, page: dict, sample: Sample, stats: dict | None = None) -> list[bytes]:
    """The non-blank complete lines of ``page`` that ``sample`` covers, reading only their bytes.

    A page read whole is checked against the manifest's sha256 (and a page longer than the
    manifest's ``bytes`` is refused); a prefix cannot be hashed, so a partly read page is left
    to the raw asset's check. A partial last line is dropped, as is a page's unread rest.
    """
    key, size, expected = page["key"], page.get("bytes"), page.get("sha256")
    step, cap = sample.bytes_per_page, sample.max_bytes_per_page
    limit = step
    while True:
        if limit is None:
            body, whole = lake.read_bytes(key), True
        else:
            # Asking one byte past the manifest's size tells a whole page from a grown one.
            want = min(limit, size + 1) if isinstance(size, int) else limit
            body = _read_prefix(lake, key, want)
            whole = len(body) < want
            if isinstance(size, int) and want == size + 1 and len(body) > size:
                raise ManifestError(f"page {key} is longer than the manifest's {size} bytes")
        if whole and expected and hashlib.sha256(body).hexdigest() != expected:
            raise ManifestError(f"page {key} does not match the manifest's sha256")
        if not whole:
            body = body[: body.rfind(b"\n") + 1]
        lines = [line for line in body.splitlines() if line.strip()]
        # Glue reads on while it has no valid record: a prefix of invalid lines says nothing.
        can_grow = not whole and step is not None and (cap is None or limit < cap)
        if not can_grow or any(isinstance(_parse(line), dict) for line in lines):
            break
        limit = limit + step if cap is None else min(limit + step, cap)
    if stats is not None:
        stats["pages"] = stats.get("pages", 0) + 1
        stats["bytes"] = stats.get("bytes", 0) + len(body)
    return lines


def iter_records(
    lake: Lake, manifest: dict, sample_limit: int | None = None, stats: dict | None = None,
    sample: Sample | None = None,
) -> Iterator[Any]:
    """Parsed lines of the sampled pages (:class:`Sample`; default: the crawler_config defaults)
    in page order; unparseable lines yield a sentinel.

    ``stats["pages"]`` / ``stats["bytes"]`` count pages and bytes read. ``sample_limit`` caps
    the non-blank lines, parseable or not, over the whole day.
    """
    sample = sample or Sample()
    remaining = sample_limit
    for page in sampled_pages(manifest, sample.pages):
        if remaining is not None and remaining <= 0:
            return
        for line in read_page_sample(lake, page, sample, stats):
            if not line.strip():
                continue
            if remaining is not None:
                if remaining <= 0:
                    return
                remaining -= 1
            yield _parse(line)


# Not a JSON object, so infer_schema counts it as skipped (an invalid_json line).
_UNPARSEABLE = object()


def build_table_input(table: str, columns: list[dict], location: str, existing: dict | None = None) -> dict:
    """Glue TableInput for the raw JSON table; keeps parameters another writer (a Glue crawler) set."""
    parameters = {**((existing or {}).get("Parameters") or {}), **TABLE_PARAMETERS}
    return {
        "Name": table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "StorageDescriptor": storage_descriptor(columns, location),
        "PartitionKeys": [dict(k) for k in PARTITION_KEYS],
    }


def storage_descriptor(columns: list[dict], location: str) -> dict:
    return {
        "Columns": [dict(c) for c in columns],
        "Location": location,
        "InputFormat": INPUT_FORMAT,
        "OutputFormat": OUTPUT_FORMAT,
        "Compressed": False,
        "SerdeInfo": {"SerializationLibrary": SERDE, "Parameters": {"paths": ",".join(c["Name"] for c in columns)}},
        "StoredAsSubDirectories": False,
    }


@dataclass(frozen=True)
class PartitionScan:
    """One pass over a committed day: its manifest and the schemas inferred from its records.

    ``inferred``: every column of the sampled records; ``contract``: the contract view
    (:func:`contract.contract_view`) that the required-columns check judges. ``pages`` /
    ``bytes``: what was read; ``record_count``: the day's records, from the manifest.
    """

    order_date: str
    manifest: dict
    inferred: InferredSchema
    contract: InferredSchema
    pages: int
    bytes: int = 0

    @property
    def record_count(self) -> int:
        return manifest_record_count(self.manifest)

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]


def manifest_record_count(manifest: dict) -> int:
    """The day's records as landing counted them (every page), never a count of the sample."""
    if isinstance(manifest.get("record_count"), int):
        return manifest["record_count"]
    return sum(int(page.get("records", 0)) for page in manifest["pages"])


def scan_partition(
    lake: Lake, order_date: str | dt.date, sample_limit: int | None = None, number_mode: NumberMode = "decimal",
    sample: Sample | None = None,
) -> PartitionScan:
    """Read the committed day's sample once and infer both schemas; writes nothing."""
    order_date = order_date.isoformat() if isinstance(order_date, dt.date) else order_date
    if sample_limit is not None and sample_limit < 1:
        raise ValueError("sample_limit must be positive or None")
    manifest = read_manifest(lake, order_date)
    stats: dict = {}
    full, contract = SchemaAccumulator(number_mode), SchemaAccumulator(number_mode)
    for record in iter_records(lake, manifest, sample_limit, stats, sample):
        full.add(record)
        contract.add(contract_view(record))
    return PartitionScan(order_date, manifest, full.result(), contract.result(), stats.get("pages", 0),
                         stats.get("bytes", 0))


def _partition_parameters(scan: PartitionScan) -> dict:
    return {**TABLE_PARAMETERS, "run_id": scan.run_id,
            "committed_at": str(scan.manifest.get("committed_at", "")),
            "recordCount": str(scan.record_count)}


def crawl_partition(
    lake: Lake,
    catalog: CatalogResource,
    database: str,
    table: str,
    order_date: str | dt.date,
    sample_limit: int | None = None,
    number_mode: NumberMode = "decimal",
    write_partition: bool = True,
    sample: Sample | None = None,
) -> CrawlResult:
    """Crawl the committed run of ``order_date`` into ``database.table``; see the module docstring.

    With ``write_partition=False`` the table is merged but the partition is left to the caller
    (``result.partition_input``), so a range of days can be written in one batch with the final
    columns. Raises FileNotFoundError (or the lake's own not-found error) when the day has no
    manifest, and ManifestError when the manifest is inconsistent.
    """
    scan = scan_partition(lake, order_date, sample_limit, number_mode, sample)
    order_date = scan.order_date
    run_id = scan.run_id
    inferred = scan.inferred
    # A data column named like the partition key would make Athena reject the table.
    partition_names = {k["Name"].lower() for k in PARTITION_KEYS}
    dropped = [c["Name"] for c in inferred.columns if c["Name"].lower() in partition_names]
    inferred_columns = [c for c in inferred.columns if c["Name"].lower() not in partition_names]

    table_location = _folder_uri(lake, RAW_TABLE_PREFIX)
    partition_location = _folder_uri(lake, run_folder_key(order_date, run_id))
    catalog.ensure_database(database)

    for attempt in range(MAX_MERGE_ATTEMPTS):
        existing = catalog.get_table(database, table)
        if existing is not None:
            keys = [k["Name"] for k in existing.get("PartitionKeys") or []]
            if keys != [PARTITION_KEY]:
                raise ValueError(f"table {database}.{table} is partitioned by {keys}, not [{PARTITION_KEY!r}]")
        existing_columns = (existing or {}).get("StorageDescriptor", {}).get("Columns") or []
        merged, diff = merge_columns(existing_columns, inferred_columns)
        table_input = build_table_input(table, merged, table_location, existing)
        try:
            if existing is None:
                version = catalog.create_table(database, table_input)
                created, updated = True, False
            elif schema_changed(diff):
                version = catalog.update_table(database, table_input, expected_version=existing["VersionId"])
                created, updated = False, True
            else:
                version, created, updated = str(existing["VersionId"]), False, False
            break
        except CatalogConflictError:
            if attempt == MAX_MERGE_ATTEMPTS - 1:
                raise
    parameters = _partition_parameters(scan)
    if write_partition:
        catalog.upsert_partition(
            database, table, [order_date], storage_descriptor(merged, partition_location), parameters=parameters
        )
    return CrawlResult(
        database=database,
        table=table,
        order_date=order_date,
        run_id=run_id,
        columns=merged,
        diff=diff,
        table_version=version,
        table_created=created,
        table_updated=updated,
        partition_values=[order_date],
        partition_location=partition_location,
        table_location=table_location,
        records_scanned=inferred.records,
        records_skipped=inferred.skipped,
        pages_scanned=scan.pages,
        record_count=scan.record_count,
        bytes_scanned=scan.bytes,
        nullable_columns=list(inferred.nullable),
        dropped=dropped,
        partition_columns=inferred_columns,
        contract_columns=scan.contract.columns,
        partition_parameters=parameters,
        partition_written=write_partition,
    )


def _table_columns(table: dict | None) -> list[dict]:
    return list(((table or {}).get("StorageDescriptor") or {}).get("Columns") or [])


def column_changes(before: list[dict], after: list[dict], partition_columns: list[dict]) -> dict:
    """The merge diff's shape for a table another writer changed from ``before`` to ``after``."""
    old = {c["Name"].lower(): c for c in before}
    seen = {c["Name"].lower() for c in partition_columns}
    added = [c["Name"] for c in after if c["Name"].lower() not in old]
    widened = [{"name": c["Name"], "from": old[c["Name"].lower()]["Type"], "to": c["Type"]}
               for c in after if c["Name"].lower() in old and old[c["Name"].lower()]["Type"] != c["Type"]]
    missing = [c["Name"] for c in after if c["Name"].lower() not in seen]
    return {"added": added, "widened": widened, "missing_in_partition": missing}


def crawl_with_glue_crawler(
    lake: Lake,
    catalog: CatalogResource,
    crawler_name: str,
    database: str,
    table: str,
    days: list[str | dt.date],
    sample_limit: int | None = None,
    number_mode: NumberMode = "decimal",
    sample: Sample | None = None,
) -> list[CrawlResult]:
    """Let the Glue crawler ``crawler_name`` merge the schema of ``days``; one result per day.

    The crawler is exported with the table as its catalog target (:mod:`crawler_config`), so it
    needs the table and the days' partitions to exist: a missing table is created from this
    crawler's inference and each partition is pointed at its committed run folder first. Then
    the crawler runs to completion (``catalog.start_crawler_and_wait``), and each partition is
    pointed at its committed run folder again with the table's new columns, whatever the crawler
    did to it. Each day is still scanned here, for the diff and the required-columns check.
    """
    scans = [scan_partition(lake, day, sample_limit, number_mode, sample) for day in days]
    table_location = _folder_uri(lake, RAW_TABLE_PREFIX)
    catalog.ensure_database(database)
    before = catalog.get_table(database, table)
    created = False
    if before is None:
        columns: list[dict] = []
        for scan in scans:
            columns, _ = merge_columns(columns, [c for c in scan.inferred.columns if c["Name"].lower() != PARTITION_KEY])
        try:
            catalog.create_table(database, build_table_input(table, columns, table_location))
            created = True
        except CatalogConflictError:
            pass  # created meanwhile by another run: the crawler merges into it
        before = catalog.get_table(database, table)

    def partition_inputs(columns: list[dict]) -> list[dict]:
        return [{"Values": [s.order_date],
                 "StorageDescriptor": storage_descriptor(columns, _folder_uri(lake, run_folder_key(s.order_date, s.run_id))),
                 "Parameters": _partition_parameters(s)} for s in scans]

    catalog.upsert_partitions(database, table, partition_inputs(_table_columns(before)))
    catalog.start_crawler_and_wait(crawler_name)
    after = catalog.get_table(database, table)
    columns = _table_columns(after)
    catalog.upsert_partitions(database, table, partition_inputs(columns))
    version = str(after["VersionId"])
    results = []
    for scan in scans:
        partition_columns = [c for c in scan.inferred.columns if c["Name"].lower() != PARTITION_KEY]
        diff = column_changes(_table_columns(before), columns, partition_columns)
        results.append(CrawlResult(
            database=database, table=table, order_date=scan.order_date, run_id=scan.run_id,
            columns=columns, diff=diff, table_version=version, table_created=created,
            table_updated=str(before["VersionId"]) != version,
            partition_values=[scan.order_date],
            partition_location=_folder_uri(lake, run_folder_key(scan.order_date, scan.run_id)),
            table_location=table_location, records_scanned=scan.inferred.records,
            records_skipped=scan.inferred.skipped, pages_scanned=scan.pages,
            record_count=scan.record_count, bytes_scanned=scan.bytes,
            nullable_columns=list(scan.inferred.nullable),
            dropped=[c["Name"] for c in scan.inferred.columns if c["Name"].lower() == PARTITION_KEY],
            partition_columns=partition_columns, contract_columns=scan.contract.columns,
            partition_parameters=_partition_parameters(scan),
        ))
    return results
