"""The project's crawler: one committed day of raw/sales_orders into a Glue-shaped catalog.

It does what a Glue crawler does for one partition, but reads only the committed run (the
manifest's page list), so a catalog never describes an uncommitted or superseded run:

1. read ``raw/sales_orders/order_date=D/_manifest.json`` (the commit marker);
2. infer the schema from the listed page files (every record, or the first ``sample_limit``);
3. merge it into the table under Glue's safe policy (:func:`schema.merge_columns`) and write a
   new table version only when the schema changed (or create the table);
4. upsert partition ``order_date=D`` whose Location is the committed run folder.

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

from sales_assets.catalog.schema import (
    NumberMode,
    infer_schema,
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


def crawl_partition(
    lake: Lake,
    catalog: CatalogResource,
    database: str,
    table: str,
    order_date: str | dt.date,
    sample_limit: int | None = None,
    number_mode: NumberMode = "double",
) -> CrawlResult:
    """Crawl the committed run of ``order_date`` into ``database.table``; see the module docstring.

    Raises FileNotFoundError (or the lake's own not-found error) when the day has no manifest,
    and ManifestError when the manifest is inconsistent.
    """
    order_date = order_date.isoformat() if isinstance(order_date, dt.date) else order_date
    if sample_limit is not None and sample_limit < 1:
        raise ValueError("sample_limit must be positive or None")
    manifest = read_manifest(lake, order_date)
    run_id = manifest["run_id"]
    stats: dict = {}
    inferred = infer_schema(iter_records(lake, manifest, sample_limit, stats), number_mode=number_mode)
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
    catalog.upsert_partition(
        database,
        table,
        [order_date],
        storage_descriptor(merged, partition_location),
        parameters={**TABLE_PARAMETERS, "run_id": run_id,
                    "committed_at": str(manifest.get("committed_at", "")),
                    "recordCount": str(manifest.get("record_count", inferred.records))},
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
        pages_scanned=stats.get("pages", 0),
        nullable_columns=list(inferred.nullable),
        dropped=dropped,
    )
