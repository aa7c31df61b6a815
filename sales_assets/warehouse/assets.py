"""warehouse/*: the star schema, loaded day by day in one step and one transaction.

The four tables are one multi-asset on purpose: DuckDB lets one process at a
time write its file and Dagster runs each step in its own process, so one step
holds the only connection, loads, and runs the checks on that same connection.
"""

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import dagster as dg

from sales_assets.partitions import daily_partitions, partition_days
from sales_assets.resources.lake import LakeResource
from sales_assets.resources.warehouse import WarehouseResource
from sales_assets.transform.assets import CURATED_KEYS, curated_day_figures
from sales_assets.warehouse import loader

FACT_SALES = dg.AssetKey(["warehouse", "fact_sales"])
# One partitioned parent per spec, on purpose: a UI backfill (partitionNames + assetSelection)
# is rejected by dagster-graphql 1.13 unless every spec of this non-subsettable multi-asset is
# reached the same way by the backfill's graph walk; a spec with two parents gets a union
# subset that compares unequal (`!=`) to its one-parent siblings' although it holds the same
# days. The day's quarantine counts (sales.quarantine_daily) still load in the fact's
# transaction from curated/quarantine, which curated_sales always writes in the same step as
# curated/order_lines, so the one edge orders the steps correctly.
# sales_assets_tests/operations/test_backfill_launch.py guards this.
WAREHOUSE_KEYS = {
    "fact_sales": (FACT_SALES, [CURATED_KEYS["order_lines"]]),
    "dim_customer": (dg.AssetKey(["warehouse", "dim_customer"]), [CURATED_KEYS["dim_customer"]]),
    "dim_product": (dg.AssetKey(["warehouse", "dim_product"]), [CURATED_KEYS["dim_product"]]),
    "dim_date": (dg.AssetKey(["warehouse", "dim_date"]), [CURATED_KEYS["order_lines"]]),
}
_DESCRIPTIONS = {
    "fact_sales": "Sales fact, one row per order line, key (order_id, line_number); each day replaced atomically, "
        "together with that day's quarantine counts (sales.quarantine_daily, from curated/quarantine).",
    "dim_customer": "Customer dimension; the latest attributes win.",
    "dim_product": "Product dimension; the latest attributes win.",
    "dim_date": "Calendar dimension for every year that holds a loaded day.",
}
CHECK_MATCHES_CURATED = "matches_curated"
CHECK_UNIQUE_KEYS = "unique_order_line_keys"
CHECK_HAS_DIMENSIONS = "every_row_has_dimensions"
CHECK_NO_NEGATIVE_QUANTITIES = "no_negative_quantities"
# The daily schedule loads a day every 24 hours; a few hours of slack for a slow or retried run.
FACT_FRESHNESS_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=30), warn_window=dt.timedelta(hours=26)
)


@dg.multi_asset(
    name="warehouse_tables",
    specs=[
        dg.AssetSpec(
            key,
            deps=deps,
            description=_DESCRIPTIONS[name],
            group_name="warehouse",
            kinds={"redshift", "duckdb"},
            metadata={"aws/integration": "redshift_data"},  # Step Functions export: one Data API batch
            freshness_policy=FACT_FRESHNESS_POLICY if key == FACT_SALES else None,
        )
        for name, (key, deps) in WAREHOUSE_KEYS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_MATCHES_CURATED,
            asset=FACT_SALES,
            blocking=True,
            description="Per day, the fact table holds exactly the curated lines: same count, same sum of net.",
        ),
        dg.AssetCheckSpec(CHECK_UNIQUE_KEYS, asset=FACT_SALES, blocking=True, description="(order_id, line_number) is unique."),
        dg.AssetCheckSpec(
            CHECK_HAS_DIMENSIONS, asset=FACT_SALES, description="Every fact row has its customer, product and date."
        ),
        dg.AssetCheckSpec(
            CHECK_NO_NEGATIVE_QUANTITIES, asset=FACT_SALES, description="No fact row of the run's days has quantity < 0."
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
    # On a multi-process executor this step is the warehouse's only writer; a
    # lock held by another process is a retryable failure, so retry it.
    pool="warehouse",
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL),
)
def warehouse_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource
) -> Iterator:
    """Loads the run's days from the curated parquet, replacing each day in one transaction.

    Through a connection (DuckDB, redshift_connector) or, with the Data API warehouse, through
    Data API batches; the checks then read the warehouse on the same path either way.
    """
    days = partition_days(context)
    with warehouse.session() as session:
        report = warehouse.load_days(session, lake.root_uri(), days)
        context.log.info(f"loaded {[d.isoformat() for d in days]}: {report}")
        loaded = loader.fact_figures(session, days)
        duplicates = loader.duplicate_fact_keys(session, days)
        orphans = loader.orphan_fact_rows(session, days)
        negative_by_day = {
            d.isoformat(): int(session.execute("negative_quantity_fact_rows", {"sale_date": d})[0][0]) for d in days
        }
        table_counts = loader.table_row_counts(session)
        schemas = loader.table_schemas()
    # The Data API load reports batches and files, not rows per table: the fact's rows loaded
    # are then the lines the days now hold (each day was replaced whole).
    if isinstance(report, loader.LoadReport):
        rows_loaded = report.rows_inserted
        load_metadata: dict = {}
    else:
        rows_loaded = {"fact_sales": sum(count for count, _ in loaded.values())}
        load_metadata = {"data_api_batches": list(report.batches), "parquet_files_copied": dict(report.files)}

    for name, (key, _) in WAREHOUSE_KEYS.items():
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": table_counts[name],
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(column, column_type) for column, column_type in schemas[name]]
                ),
                **({"rows_loaded_this_run": rows_loaded[name]} if name in rows_loaded else {}),
                **(
                    {"net_by_day": {d.isoformat(): str(loaded.get(d, (0, 0))[1]) for d in days}, **load_metadata}
                    if name == "fact_sales"
                    else {}
                ),
            },
        )

    compared, mismatches = {}, []
    for day in days:
        curated = curated_day_figures(lake, day)
        in_warehouse = loaded.get(day, (0, Decimal("0.00")))
        compared[day.isoformat()] = {
            "curated_lines": curated[0],
            "warehouse_lines": in_warehouse[0],
            "curated_net": str(curated[1]),
            "warehouse_net": str(in_warehouse[1]),
        }
        if curated[0] != in_warehouse[0] or curated[1] != in_warehouse[1]:
            mismatches.append(day.isoformat())
    yield dg.AssetCheckResult(
        asset_key=FACT_SALES,
        check_name=CHECK_MATCHES_CURATED,
        passed=not mismatches,
        metadata={"by_day": compared, "mismatched_days": mismatches},
    )
    yield dg.AssetCheckResult(
        asset_key=FACT_SALES, check_name=CHECK_UNIQUE_KEYS, passed=duplicates == 0, metadata={"duplicate_keys": duplicates}
    )
    yield dg.AssetCheckResult(
        asset_key=FACT_SALES,
        check_name=CHECK_HAS_DIMENSIONS,
        passed=orphans == 0,
        metadata={"rows_without_dimensions": orphans},
        severity=dg.AssetCheckSeverity.ERROR,
    )
    negative_days = {day: rows for day, rows in negative_by_day.items() if rows}
    yield dg.AssetCheckResult(
        asset_key=FACT_SALES,
        check_name=CHECK_NO_NEGATIVE_QUANTITIES,
        passed=not negative_days,
        metadata={"negative_quantity_rows": sum(negative_by_day.values()), "by_day": negative_by_day},
        description=f"rows with quantity < 0 on {sorted(negative_days)}" if negative_days else None,
    )
