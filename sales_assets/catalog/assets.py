"""catalog/sales_orders: the crawled table and its daily partitions in database ``sales_raw``,
and the blocking check that the day's data still carries every column the transform needs."""

from typing import Iterator

import dagster as dg

from sales_assets.catalog.contract import REQUIRED_FIELDS, contract_problems
from sales_assets.catalog.crawler import CrawlResult, Sample, crawl_partition, crawl_with_glue_crawler
from sales_assets.catalog.crawler_config import MAX_SAMPLE_BYTES_PER_PAGE, SAMPLE_BYTES_PER_PAGE, SAMPLE_PAGES
from sales_assets.catalog.schema import NumberMode
from sales_assets.ingest.assets import RAW_SALES_ORDERS
from sales_assets.partitions import daily_partitions, partition_days
from sales_assets.resources.catalog import CatalogResource
from sales_assets.resources.lake import LakeResource

CATALOG_SALES_ORDERS = dg.AssetKey(["catalog", "sales_orders"])
REQUIRED_COLUMNS_CHECK = "required_columns_readable"


class CrawlerConfig(dg.Config):
    database: str = "sales_raw"
    table: str = "sales_orders"
    sample_limit: int | None = None
    """Infer the schema from at most this many lines per day (None: no cap beyond the sample)."""
    sample_pages: int | None = SAMPLE_PAGES
    """Pages per day to infer from, spread over the day (None: every page; Glue's SampleSize)."""
    sample_bytes_per_page: int | None = SAMPLE_BYTES_PER_PAGE
    """Bytes read from the start of each sampled page (None: whole pages; Glue reads 1 MB)."""
    max_sample_bytes_per_page: int | None = MAX_SAMPLE_BYTES_PER_PAGE
    """How far a page's read grows while it holds no JSON object (Glue: up to 10 MB)."""
    number_mode: NumberMode = "decimal"
    """How JSON fractions are typed: "decimal" (decimal(p,s) keeping scale) or "double" (like a
    Glue crawler). An enum in the launchpad: anything else is a config error before the run starts."""

    def sample(self) -> Sample:
        return Sample(pages=self.sample_pages, bytes_per_page=self.sample_bytes_per_page,
                      max_bytes_per_page=self.max_sample_bytes_per_page)


def glue_columns_to_schema(columns: list[dict]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c["Name"], c["Type"]) for c in columns])


def _crawl(context: dg.AssetExecutionContext, config: CrawlerConfig, lake: LakeResource,
           catalog: CatalogResource) -> list[CrawlResult]:
    days = partition_days(context)
    crawler = catalog.configured_crawler()
    if crawler:
        context.log.info(f"running Glue crawler {crawler!r} for {len(days)} day(s)")
        return crawl_with_glue_crawler(
            lake, catalog, crawler, config.database, config.table, days,
            sample_limit=config.sample_limit, number_mode=config.number_mode, sample=config.sample(),
        )
    results = [
        crawl_partition(lake, catalog, config.database, config.table, day, sample_limit=config.sample_limit,
                        number_mode=config.number_mode, write_partition=False, sample=config.sample())
        for day in days
    ]
    # Every partition of the run with the table's final columns, in as few calls as possible.
    final = results[-1].columns
    catalog.upsert_partitions(config.database, config.table,
                              [{**r.partition_input, "StorageDescriptor": {
                                  **r.partition_input["StorageDescriptor"], "Columns": [dict(c) for c in final]}}
                               for r in results])
    return results


@dg.asset(
    key=CATALOG_SALES_ORDERS,
    deps=[RAW_SALES_ORDERS],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="catalog",
    kinds={"glue"},
    metadata={"aws/integration": "glue_crawler"},  # Step Functions export: run the crawler
    check_specs=[
        dg.AssetCheckSpec(
            REQUIRED_COLUMNS_CHECK,
            asset=CATALOG_SALES_ORDERS,
            blocking=True,
            description="Each day's data carries every column the transform needs, with a type it can read "
            "(the table never loses a column, so the day's own inferred schema is what is judged).",
        )
    ],
)
def catalog_sales_orders(
    context: dg.AssetExecutionContext, config: CrawlerConfig, lake: LakeResource, catalog: CatalogResource
) -> Iterator:
    """The raw orders as a Glue Data Catalog table (JSON SerDe) with one partition per day whose
    location is the committed run folder; schema inferred from the landed JSON and merged safely
    (new columns added, none deleted, types only widened; each change is a new table version)."""
    results = _crawl(context, config, lake, catalog)
    problems: dict[str, list[str]] = {}
    found: dict[str, dict] = {}
    for result in results:
        diff = result.diff
        context.log.info(
            f"crawled {result.order_date}: {result.record_count} records, schema inferred from "
            f"{result.records_scanned} of them ({result.pages_scanned} pages, {result.bytes_scanned} bytes), table version "
            f"{result.table_version}{' (new)' if result.schema_changed else ''}, added {diff['added']}, "
            f"widened {diff['widened']}, missing in partition {diff['missing_in_partition']}, "
            f"partition at {result.partition_location}"
        )
        if result.records_scanned == 0:
            # An empty day (a zero-record manifest) has nothing the transform could misread.
            day_problems, day_found = [], {}
        else:
            day_problems, day_found = contract_problems(result.contract_columns)
        found[result.order_date] = {
            "types": day_found,
            "missing_in_partition": diff["missing_in_partition"],
            "records": result.record_count,
            "records_sampled": result.records_scanned,
        }
        if day_problems:
            problems[result.order_date] = day_problems
            context.log.error(f"{result.order_date}: required columns unreadable: {day_problems}")
    last = results[-1]
    yield dg.MaterializeResult(
        asset_key=CATALOG_SALES_ORDERS,
        metadata={
            "dagster/row_count": sum(r.record_count for r in results),
            "dagster/column_schema": glue_columns_to_schema(last.columns),
            "table_version": str(last.table_version),
            "schema_changed": any(r.schema_changed for r in results),
            "schema_diff": {r.order_date: r.diff for r in results},
            "partition_locations": {r.order_date: r.partition_location for r in results},
        },
    )
    yield dg.AssetCheckResult(
        asset_key=CATALOG_SALES_ORDERS,
        check_name=REQUIRED_COLUMNS_CHECK,
        passed=not problems,
        metadata={
            "problems": problems,
            "required": dict(REQUIRED_FIELDS),
            "found_by_day": found,
        },
        description="; ".join(f"{day}: {', '.join(p)}" for day, p in problems.items()) or None,
    )
