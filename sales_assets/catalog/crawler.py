"""The project's crawler: one committed day of raw/sales_orders into a Glue-shaped catalog.

It does what a Glue crawler does for one partition, but reads only the committed run (the
manifest's page list), so a catalog never describes an uncommitted or superseded run:

1. read ``raw/sales_orders/order_date=D/_manifest.json`` (the commit marker);
2. infer the schema from the listed page files (every record, or the first ``sample_limit``);
3. merge it into the table under Glue's safe policy (:func:`schema.merge_columns`) and write a
   new table version only when the schema changed (or create the table);
4. upsert partition ``order_date=D`` whose Location is the committed run folder.

:func:`crawl_with_glue_crawler` is the ``aws`` alternative that lets a real Glue crawler infer
and merge the schema instead (steps 2-3), keeping step 4 and the partition scan for the checks.

The lake is any object with ``read_bytes(key) -> bytes`` and ``uri(key) -> str`` over keys
relative to the lake root; the catalog is a :class:`CatalogResource`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator, Protocol

from sales_assets.catalog.contract import contract_view
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


class ManifestError(ValueError):
    """The day's manifest is missing a field, names another day, or disagrees with its pages."""


@dataclass(frozen=True)
class CrawlResult:
    """What one crawl saw and wrote.

    ``columns``: the table's columns after the crawl (Glue Column dicts). ``diff``: the merge
    diff (``added``, ``widened``, ``missing_in_partition``; columns named like the partition key
    are listed in ``dropped`` instead). ``table_version``: the table's VersionId after the crawl;
    ``table_created`` / ``table_updated`` say whether this crawl wrote it. ``records_scanned``:
    JSON objects inferred from; ``records_skipped``: lines that were not JSON objects.
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


def iter_records(
    lake: Lake, manifest: dict, sample_limit: int | None = None, stats: dict | None = None
) -> Iterator[Any]:
    """Parsed lines of the manifest's pages in page order; unparseable lines yield a sentinel.

    Each page read is checked against the manifest's sha256; ``stats["pages"]`` counts pages read.
    ``sample_limit`` counts non-blank lines, parseable or not.
    """
    remaining = sample_limit
    for page in sorted(manifest["pages"], key=lambda p: p.get("page", 0)):
        if remaining is not None and remaining <= 0:
            return
        body = lake.read_bytes(page["key"])
        if stats is not None:
            stats["pages"] = stats.get("pages", 0) + 1
        expected = page.get("sha256")
        if expected and hashlib.sha256(body).hexdigest() != expected:
            raise ManifestError(f"page {page['key']} does not match the manifest's sha256")
        for line in body.splitlines():
            if not line.strip():
                continue
            if remaining is not None:
                if remaining <= 0:
                    return
                remaining -= 1
            try:
                yield json.loads(line, parse_float=Decimal)
            except ValueError:
                yield _UNPARSEABLE


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

    ``inferred``: every column of the records; ``contract``: the contract view
    (:func:`contract.contract_view`) that the required-columns check judges.
    """

    order_date: str
    manifest: dict
    inferred: InferredSchema
    contract: InferredSchema
    pages: int

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]


def scan_partition(
    lake: Lake, order_date: str | dt.date, sample_limit: int | None = None, number_mode: NumberMode = "decimal"
) -> PartitionScan:
    """Read the committed day once and infer both schemas; writes nothing."""
    order_date = order_date.isoformat() if isinstance(order_date, dt.date) else order_date
    if sample_limit is not None and sample_limit < 1:
        raise ValueError("sample_limit must be positive or None")
    manifest = read_manifest(lake, order_date)
    stats: dict = {}
    full, contract = SchemaAccumulator(number_mode), SchemaAccumulator(number_mode)
    for record in iter_records(lake, manifest, sample_limit, stats):
        full.add(record)
        contract.add(contract_view(record))
    return PartitionScan(order_date, manifest, full.result(), contract.result(), stats.get("pages", 0))


def _partition_parameters(scan: PartitionScan) -> dict:
    return {**TABLE_PARAMETERS, "run_id": scan.run_id,
            "committed_at": str(scan.manifest.get("committed_at", "")),
            "recordCount": str(scan.manifest.get("record_count", scan.inferred.records))}


def crawl_partition(
    lake: Lake,
    catalog: CatalogResource,
    database: str,
    table: str,
    order_date: str | dt.date,
    sample_limit: int | None = None,
    number_mode: NumberMode = "decimal",
    write_partition: bool = True,
) -> CrawlResult:
    """Crawl the committed run of ``order_date`` into ``database.table``; see the module docstring.

    With ``write_partition=False`` the table is merged but the partition is left to the caller
    (``result.partition_input``), so a range of days can be written in one batch with the final
    columns. Raises FileNotFoundError (or the lake's own not-found error) when the day has no
    manifest, and ManifestError when the manifest is inconsistent.
    """
    scan = scan_partition(lake, order_date, sample_limit, number_mode)
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
) -> list[CrawlResult]:
    """Let the Glue crawler ``crawler_name`` merge the schema of ``days``; one result per day.

    The crawler is exported with the table as its catalog target (:mod:`crawler_config`), so it
    needs the table and the days' partitions to exist: a missing table is created from this
    crawler's inference and each partition is pointed at its committed run folder first. Then
    the crawler runs to completion (``catalog.start_crawler_and_wait``), and each partition is
    pointed at its committed run folder again with the table's new columns, whatever the crawler
    did to it. Each day is still scanned here, for the diff and the required-columns check.
    """
    scans = [scan_partition(lake, day, sample_limit, number_mode) for day in days]
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
            nullable_columns=list(scan.inferred.nullable),
            dropped=[c["Name"] for c in scan.inferred.columns if c["Name"].lower() == PARTITION_KEY],
            partition_columns=partition_columns, contract_columns=scan.contract.columns,
            partition_parameters=_partition_parameters(scan),
        ))
    return results
