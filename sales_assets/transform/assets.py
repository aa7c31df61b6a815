"""curated/*: the Glue PySpark job, launched through Dagster Pipes, and its reconciliation check."""

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import dagster as dg
import pyarrow.compute as pc

from sales_assets.catalog.assets import CATALOG_SALES_ORDERS
from sales_assets.ingest.landing import read_manifest
from sales_assets.partitions import daily_partitions, partition_days
from sales_assets.resources.etl import EtlResource
from sales_assets.resources.lake import LakeResource

CURATE_SCRIPT = "curate_sales_orders.py"
CURATED_TABLES = ("order_lines", "quarantine", "dim_customer", "dim_product")
CURATED_ORDER_LINES = dg.AssetKey(["curated", "order_lines"])
CURATED_KEYS = {name: dg.AssetKey(["curated", name]) for name in CURATED_TABLES}
RECONCILIATION_CHECK = "reconciles_with_raw"

_DESCRIPTIONS = {
    "order_lines": "Typed, deduplicated order lines (one row per line, money as DECIMAL(18,2)) in parquet.",
    "quarantine": "Order lines rejected by validation, each with a reason code and the raw record.",
    "dim_customer": "Latest customer attributes seen in the day's curated lines.",
    "dim_product": "Latest product attributes seen in the day's curated lines.",
}


def curated_prefix(table: str, day: dt.date) -> str:
    return f"curated/{table}/order_date={day.isoformat()}/"


def metadata_value(result: dg.MaterializeResult, name: str):
    value = (result.metadata or {}).get(name)
    return getattr(value, "value", value)


def reconcile(day: str, manifest: dict | None, figures: dict | None, curated_rows: int, quarantine_rows: int) -> list[str]:
    """Why a day's curated output does not account for its raw lines (empty when it does)."""
    if manifest is None:
        return [f"{day}: no committed raw manifest"]
    if figures is None:
        return [f"{day}: the Glue job reported no figures for the day"]
    problems = []
    if figures["raw_lines"] != manifest["line_count"]:
        problems.append(f"{day}: job read {figures['raw_lines']} raw lines, manifest commits {manifest['line_count']}")
    accounted = figures["curated_lines"] + figures["quarantine_lines"] + figures["superseded_lines"]
    if accounted != figures["raw_lines"]:
        problems.append(f"{day}: curated + quarantine + superseded = {accounted} != raw {figures['raw_lines']}")
    if curated_rows != figures["curated_lines"]:
        problems.append(f"{day}: {curated_rows} curated rows in the lake, job reported {figures['curated_lines']}")
    if quarantine_rows != figures["quarantine_lines"]:
        problems.append(f"{day}: {quarantine_rows} quarantine rows in the lake, job reported {figures['quarantine_lines']}")
    return problems


@dg.multi_asset(
    name="curated_sales",
    specs=[
        dg.AssetSpec(
            key,
            deps=[CATALOG_SALES_ORDERS],
            description=_DESCRIPTIONS[name],
            group_name="curated",
            kinds={"spark", "parquet"},
        )
        for name, key in CURATED_KEYS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            RECONCILIATION_CHECK,
            asset=CURATED_ORDER_LINES,
            blocking=True,
            description="raw lines = curated + quarantine + superseded, per day, against the raw manifest.",
        )
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def curated_sales(context: dg.AssetExecutionContext, etl: EtlResource, lake: LakeResource) -> Iterator:
    """Runs glue_scripts/curate_sales_orders.py for the run's days (one Spark job for a whole range)."""
    days = partition_days(context)
    arguments = {"lake_root": lake.root_uri(), "order_date": days[0].isoformat()}
    if len(days) > 1:
        arguments["order_date_end"] = days[-1].isoformat()
    results = list(etl.run_script(context, CURATE_SCRIPT, arguments).get_results())
    yield from results

    order_lines = next(r for r in results if r.asset_key == CURATED_ORDER_LINES)
    figures_by_day = metadata_value(order_lines, "figures_by_day") or {}
    problems: list[str] = []
    compared = {}
    for day in days:
        key = day.isoformat()
        curated = lake.read_parquet(curated_prefix("order_lines", day))
        quarantine = lake.read_parquet(curated_prefix("quarantine", day))
        curated_rows = curated.num_rows if curated is not None else 0
        quarantine_rows = quarantine.num_rows if quarantine is not None else 0
        manifest = read_manifest(lake, day)
        problems += reconcile(key, manifest, figures_by_day.get(key), curated_rows, quarantine_rows)
        compared[key] = {
            "manifest_lines": manifest["line_count"] if manifest else None,
            **(figures_by_day.get(key) or {}),
            "curated_rows_in_lake": curated_rows,
            "quarantine_rows_in_lake": quarantine_rows,
        }
    yield dg.AssetCheckResult(
        asset_key=CURATED_ORDER_LINES,
        check_name=RECONCILIATION_CHECK,
        passed=not problems,
        metadata={"problems": problems, "by_day": compared},
        description="; ".join(problems) or None,
    )


def curated_day_figures(lake: LakeResource, day: dt.date) -> tuple[int, Decimal]:
    """(lines, sum of net) of a day's curated order lines as they stand in the lake."""
    table = lake.read_parquet(curated_prefix("order_lines", day))
    if table is None or table.num_rows == 0:
        return 0, Decimal("0.00")
    total = pc.sum(table.column("net")).as_py()
    return table.num_rows, Decimal(total).quantize(Decimal("0.01"))
