"""raw/sales_orders: the day's orders landed from the Sales Source API, as received."""

import datetime as dt

import dagster as dg

from sales_assets.ingest.landing import land_pages, manifest_key, new_run_id, read_manifest, verify_manifest
from sales_assets.partitions import daily_partitions, partition_days
from sales_assets.resources.lake import LakeResource
from sales_assets.resources.source import SalesSourceResource

RAW_SALES_ORDERS = dg.AssetKey(["raw", "sales_orders"])

# The landed pages keep every field as received; these are the contract's
# top-level fields, which is what a reader of the raw layer can rely on.
RAW_COLUMN_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("order_id", "string"),
        dg.TableColumn("order_timestamp", "string", description="RFC 3339 with a UTC offset"),
        dg.TableColumn("updated_at", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn("channel", "string"),
        dg.TableColumn("store_id", "string"),
        dg.TableColumn("currency", "string"),
        dg.TableColumn("customer", "struct"),
        dg.TableColumn("lines", "array<struct>"),
    ]
)


@dg.asset(
    key=RAW_SALES_ORDERS,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="raw",
    kinds={"s3", "json"},
    # Transient source failures (429/5xx past the client's own retries) are
    # rescheduled by Dagster rather than slept through inside the step.
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
)
def raw_sales_orders(
    context: dg.AssetExecutionContext, source: SalesSourceResource, lake: LakeResource
) -> dg.MaterializeResult:
    """JSON Lines pages of the day's orders from the Sales Source API, one order per line, fields as
    received, committed by a `_manifest.json` written last (the Lambda's job in the AWS design)."""
    client = source.get_client()
    per_day = {}
    for day in partition_days(context):
        run_id = new_run_id()
        manifest = land_pages(lake, client.iter_pages(day), day, run_id, source_url=source.effective_url)
        per_day[day.isoformat()] = {
            "run_id": run_id,
            "records": manifest["record_count"],
            "lines": manifest["line_count"],
            "pages": len(manifest["pages"]),
        }
        context.log.info(
            f"landed {day}: {manifest['record_count']} orders, {manifest['line_count']} lines "
            f"in {len(manifest['pages'])} pages (run {run_id})"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(d["records"] for d in per_day.values()),
            "dagster/column_schema": RAW_COLUMN_SCHEMA,
            "line_count": sum(d["lines"] for d in per_day.values()),
            "by_day": per_day,
            "manifests": [lake.uri(manifest_key(day)) for day in partition_days(context)],
        }
    )


@dg.asset_check(asset=RAW_SALES_ORDERS, blocking=True, partitions_def=daily_partitions)
def raw_manifest_matches_pages(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    """Every page the manifest commits exists with the sha256 and counts it records."""
    problems: dict[str, list[str]] = {}
    for key in context.partition_keys:
        manifest = read_manifest(lake, dt.date.fromisoformat(key))
        found = ["no committed manifest"] if manifest is None else verify_manifest(lake, manifest)
        if found:
            problems[key] = found
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": problems})
