"""The day-replace load as Redshift Data API batches: for a Lambda, a Step Functions task or
any caller without a connection to the cluster.

The Data API runs each BatchExecuteStatement in its own session as ONE transaction, and a
temporary table lives only as long as its session, so a day batch holds everything that
replaces its days: the staging tables, one COPY per curated table (through a manifest listing
exactly the files the days' commit records `curated/<table>/order_date=D/_manifest.json` list), the delete of each day's fact rows and quarantine counts,
the inserts from staging and the dimension upserts (MERGE). Anything failing rolls the whole
batch back: the warehouse keeps the previous copy of every day of that batch.

Callers may rely on:
- `day_load_statements(lake_root, days, iam_role_arn, ...)` is pure: the batches, in order,
  with their SQL (the statement files of `warehouse/sql/`, only bind-parameter names
  renamed) and their bound values; no value is ever formatted into SQL text except the
  validated manifest URI and role ARN of COPY (Redshift binds nothing there). Every batch
  has at most `DATA_API_MAX_BATCH` (40) statements: the schema batch, one calendar batch per
  year (the year's dim_date rows replaced), then one batch per `MAX_DAYS_PER_BATCH` days.
- A day batch's COPYs read `manifest_uri(lake_root, stage_table, days)`, a name fixed by the
  days, so the statements can be exported ahead of time; `write_day_manifests` writes those
  manifests from the days' commit records (every record lists at least one file, an empty day
  a schema-only one, so every table is COPYd; `staged_tables` remains for callers that build
  batches for a subset). A day without a record raises `CuratedRecordMissingError` before any
  batch runs: it is never loaded as an empty day.
- `load_days_with_data_api` does both against S3 and a `RedshiftDataApiResource`; on a
  failed batch it raises `WarehouseLoadError` with the rows of SYS_LOAD_ERROR_DETAIL for
  the failed statement, and keeps that batch's manifests for diagnosis.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlglot import exp

from sales_assets.resources.warehouse import (
    COPY_MANIFEST_FOLDER,
    DATA_API_MAX_BATCH,
    RedshiftDataApiError,
    RedshiftDataApiResource,
    WarehouseLoadError,
    copy_statement,
    write_copy_manifest,
)
from sales_assets.warehouse import loader, transpile

# Statements of a day batch besides the per-day deletes: 4 staging tables, up to 4 COPYs,
# 2 deduplicated dimension stages, 2 inserts, 2 discards + 2 MERGEs.
_FIXED_DAY_STATEMENTS = 2 * len(loader.STAGES) + len(loader.LATEST_STAGES) + 2 + 4
_DELETES_PER_DAY = ("delete_fact_days", "delete_quarantine_days")
MAX_DAYS_PER_BATCH = (DATA_API_MAX_BATCH - _FIXED_DAY_STATEMENTS) // len(_DELETES_PER_DAY)
DAY_PARAMETER = "sale_date"


@dataclasses.dataclass(frozen=True)
class StatementBatch:
    """One BatchExecuteStatement: `sqls` run in order as one transaction with `params` bound.

    `days` are the days the batch replaces (empty for schema and calendar batches);
    `manifests` maps each staging table the batch COPYs into to the manifest it reads.
    """

    name: str
    sqls: tuple[str, ...]
    params: dict[str, Any]
    days: tuple[dt.date, ...] = ()
    manifests: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not 1 <= len(self.sqls) <= DATA_API_MAX_BATCH:
            raise ValueError(f"batch {self.name}: {len(self.sqls)} statements (1 to {DATA_API_MAX_BATCH} allowed)")


def _renamed(name: str, renames: Mapping[str, str]) -> exp.Expression:
    """The parsed statement file `name` with bind parameters renamed (no other change)."""
    tree = transpile.parse_redshift(transpile.redshift_sql(name), source=f"sql/{name}.sql")
    for placeholder in tree.find_all(exp.Placeholder):
        if placeholder.name in renames:
            placeholder.set("this", renames[placeholder.name])
    return tree


# sqlglot writes a named placeholder in Redshift's (psycopg) style, `%(name)s`; the Data API
# binds `:name`, as the statement files spell it.
_PYFORMAT_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _sql(tree: exp.Expression) -> str:
    sql = _PYFORMAT_PLACEHOLDER.sub(r":\1", tree.sql(dialect=transpile.READ_DIALECT, comments=False))
    if "%(" in sql or transpile.placeholders_of(sql) != {p.name for p in tree.find_all(exp.Placeholder)}:
        raise transpile.TranspileError(f"placeholders did not survive: {sql[:200]}")
    return sql


def schema_batch() -> StatementBatch:
    """CREATE ... IF NOT EXISTS of the `sales` schema and its tables (idempotent)."""
    return StatementBatch("sales-schema", tuple(transpile.redshift_sql(n) for n in loader.SCHEMA_STATEMENTS), {})


def calendar_batch(year: int) -> StatementBatch:
    """The year's dim_date rows replaced: one delete, then one multi-row insert per month
    (each row's values bound as `:<column>_<n>`)."""
    rows = loader.calendar_rows([year])
    params: dict[str, Any] = {"first_day": dt.date(year, 1, 1), "last_day": dt.date(year, 12, 31)}
    sqls = [transpile.redshift_sql("delete_dim_date_range")]
    for month in range(1, 13):
        month_rows = [(n, row) for n, row in enumerate(rows) if row["month"] == month]
        tree = _renamed("insert_dim_date", {})
        values = tree.find(exp.Values)
        template = values.expressions[0]
        tuples = []
        for n, row in month_rows:
            copy = template.copy()
            for placeholder in copy.find_all(exp.Placeholder):
                column = placeholder.name
                placeholder.set("this", f"{column}_{n}")
                params[f"{column}_{n}"] = row[column]
            tuples.append(copy)
        values.set("expressions", tuples)
        sqls.append(_sql(tree))
    return StatementBatch(f"sales-calendar-{year}", tuple(sqls), params)


def day_chunks(days: Iterable[dt.date], size: int = MAX_DAYS_PER_BATCH) -> list[tuple[dt.date, ...]]:
    """The sorted distinct days in runs of at most `size` (one day batch each)."""
    ordered = sorted(set(days))
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def manifest_name(days: Sequence[dt.date]) -> str:
    return f"{min(days).isoformat()}_{max(days).isoformat()}.manifest"


def manifest_uri(lake_root: str, stage_table: str, days: Sequence[dt.date]) -> str:
    """Where the COPY manifest of `stage_table` for these days lives (fixed by the days)."""
    return f"{lake_root.rstrip('/')}/{COPY_MANIFEST_FOLDER}/{stage_table}/{manifest_name(days)}"


def day_batch(
    lake_root: str,
    days: Sequence[dt.date],
    iam_role_arn: str,
    loaded_at: dt.datetime,
    staged_tables: Iterable[str] = tuple(loader.STAGES),
) -> StatementBatch:
    """The one-transaction replacement of `days` (at most MAX_DAYS_PER_BATCH).

    `staged_tables` are the curated tables whose manifests list files; the others are staged
    empty (a day without valid lines is replaced by nothing, like the connection path does).
    """
    days = tuple(sorted(set(days)))
    if not 1 <= len(days) <= MAX_DAYS_PER_BATCH:
        raise ValueError(f"a day batch replaces 1 to {MAX_DAYS_PER_BATCH} days, got {len(days)}")
    staged = set(staged_tables)
    unknown = staged - set(loader.STAGES)
    if unknown:
        raise ValueError(f"unknown curated tables {sorted(unknown)}")
    sqls, manifests = [], {}
    for table, stage in loader.STAGES.items():
        sqls.append(transpile.redshift_sql(stage))
        if table in staged:
            manifests[stage] = manifest_uri(lake_root, stage, days)
            sqls.append(copy_statement(stage, manifests[stage], iam_role_arn))
    sqls += [transpile.redshift_sql(latest) for latest in loader.LATEST_STAGES]
    params: dict[str, Any] = {"loaded_at": loaded_at}
    for n, day in enumerate(days):
        name = f"{DAY_PARAMETER}_{n}"
        params[name] = day
        sqls += [_sql(_renamed(statement, {DAY_PARAMETER: name})) for statement in _DELETES_PER_DAY]
    sqls += [
        transpile.redshift_sql(name)
        for name in (
            "insert_fact_from_stage",
            "insert_quarantine_daily_from_stage",
            "discard_stale_dim_customer",
            "merge_dim_customer",
            "discard_stale_dim_product",
            "merge_dim_product",
        )
    ]
    return StatementBatch(f"sales-days-{days[0]}-{days[-1]}", tuple(sqls), params, days, manifests)


def day_load_statements(
    lake_root: str,
    days: Iterable[dt.date],
    iam_role_arn: str,
    loaded_at: dt.datetime | None = None,
    staged_tables: Mapping[tuple[dt.date, ...], Iterable[str]] | None = None,
) -> list[StatementBatch]:
    """Every batch that loads `days`, in order: schema, calendar per year, day batches.

    `staged_tables[chunk]` (default: all four) names the curated tables with files for a
    chunk of `day_chunks(days)`.
    """
    chunks = day_chunks(days)
    if not chunks:
        raise ValueError("day_load_statements needs at least one day")
    loaded_at = loaded_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # warehouse stores UTC
    batches = [schema_batch()]
    batches += [calendar_batch(year) for year in sorted({d.year for chunk in chunks for d in chunk})]
    for chunk in chunks:
        tables = (staged_tables or {}).get(chunk, tuple(loader.STAGES))
        batches.append(day_batch(lake_root, chunk, iam_role_arn, loaded_at, tables))
    return batches


def write_day_manifests(s3_client: Any, lake_root: str, days: Sequence[dt.date]) -> dict[str, int]:
    """Write the COPY manifests of one day batch from the days' commit records; curated table ->
    files listed. CuratedRecordMissingError / CuratedFileMissingError name a day not curated or
    a listed file gone; nothing is written for a table whose record failed; CuratedRunMismatchError
    (before anything is written) a day whose tables were committed by different transform runs."""
    from sales_assets.transform.curated_manifest import require_one_run_per_day

    # As the connection loader does: a day whose tables come from two transform runs is refused.
    require_one_run_per_day(lake_root, days, tuple(loader.STAGES), s3_client)
    counts = {}
    for table, stage in loader.STAGES.items():
        locations = [loader.curated_day_location(lake_root, table, day) for day in days]
        uri, count = write_copy_manifest(s3_client, stage, locations, manifest_name=manifest_name(days))
        assert uri is None or uri == manifest_uri(lake_root, stage, days), uri
        counts[table] = count
    return counts


@dataclasses.dataclass(frozen=True)
class DataApiLoadReport:
    """Batches run (by name, in order) and parquet files COPYd per curated table."""

    batches: tuple[str, ...]
    files: dict[str, int]


def _load_error_rows(data_api: RedshiftDataApiResource, error: RedshiftDataApiError) -> list[tuple]:
    """SYS_LOAD_ERROR_DETAIL rows of the batch's failed COPY (none when it was not a COPY)."""
    try:
        description = data_api.client().describe_statement(Id=error.statement_id)
        failed = [
            s for s in description.get("SubStatements", [])
            if s.get("Status") in ("FAILED", "ABORTED") and "COPY" in s.get("QueryString", "").upper()[:20]
        ]
        if not failed or failed[0].get("RedshiftQueryId") is None:
            return []
        return data_api.query(
            transpile.redshift_sql("load_error_detail_for_query"), {"query_id": int(failed[0]["RedshiftQueryId"])}
        )
    except Exception as detail_error:  # keep the batch's error even if the lookup fails
        return [("could not read sys_load_error_detail", repr(detail_error))]


def load_days_with_data_api(
    data_api: RedshiftDataApiResource, s3_client: Any, lake_root: str, days: Iterable[dt.date], iam_role_arn: str
) -> DataApiLoadReport:
    """Replace `days` in Redshift through the Data API (see the module docstring)."""
    chunks = day_chunks(days)
    staged, files = {}, dict.fromkeys(loader.STAGES, 0)
    for chunk in chunks:
        counts = write_day_manifests(s3_client, lake_root, chunk)
        staged[chunk] = [table for table, count in counts.items() if count]
        for table, count in counts.items():
            files[table] += count
    run = []
    for batch in day_load_statements(lake_root, [d for c in chunks for d in c], iam_role_arn, staged_tables=staged):
        try:
            data_api.execute_batch(batch.sqls, batch.params, name=batch.name)
        except RedshiftDataApiError as error:
            raise WarehouseLoadError(f"Data API batch {batch.name} {error.status}: {error.error}", _load_error_rows(data_api, error)) from error
        for uri in batch.manifests.values():
            bucket, key = uri[len("s3://") :].split("/", 1)
            s3_client.delete_object(Bucket=bucket, Key=key)
        run.append(batch.name)
    return DataApiLoadReport(tuple(run), files)
