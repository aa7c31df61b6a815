"""reporting/*: the `reporting` views and the local HTML sales dashboard.

Both run after the warehouse step (they depend on its tables) and open their own warehouse
session then: DuckDB admits one writing process at a time, and the warehouse step has
closed its connection by the time a downstream step starts. They share the `warehouse` pool
with it and retry a lock held by another process like it does.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
from pydantic import Field

from sales_assets.partitions import daily_partitions, partition_days
from sales_assets.reporting import dashboard, views
from sales_assets.resources.warehouse import WarehouseResource
from sales_assets.warehouse.assets import WAREHOUSE_KEYS

REPORTING_VIEWS = dg.AssetKey(["reporting", "views"])
SALES_DASHBOARD = dg.AssetKey(["reporting", "sales_dashboard"])
_RETRY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL)
FALLBACK_DASHBOARD_PATH = "./.sales_data/reports/" + dashboard.DASHBOARD_FILE


class DashboardConfig(dg.Config):
    output_path: str = Field(
        default="",
        description="Where to write the HTML; empty: reports/sales_dashboard.html beside the DuckDB warehouse file.",
    )


def dashboard_path(warehouse: WarehouseResource, configured: str = "") -> Path:
    """The configured path, else beside a DuckDB warehouse file, else under ./.sales_data/."""
    if configured:
        return Path(configured)
    local_file = getattr(warehouse, "path", None)
    return dashboard.default_dashboard_path(local_file) if local_file else Path(FALLBACK_DASHBOARD_PATH)


@dg.asset(
    key=REPORTING_VIEWS,
    deps=[key for key, _ in WAREHOUSE_KEYS.values()],
    group_name="reporting",
    kinds={"redshift", "duckdb", "sql"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
    retry_policy=_RETRY,
)
def reporting_views(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The `reporting` schema of views Power BI and the dashboard read: the star (sales,
    customers, products, calendar) and daily sales, sales by product, category, region and
    channel, returns and cancellations, quarantine rate. Replaced idempotently."""
    with warehouse.session() as session:
        views.create_views(session)
        counts = views.view_row_counts(session)
    context.log.info(f"reporting views for {[d.isoformat() for d in partition_days(context)]}: {counts}")
    return dg.MaterializeResult(
        metadata={
            "views": [views.qualified(name) for name in views.VIEW_NAMES],
            "rows_per_view": counts,
            "dagster/row_count": counts["daily_sales"],
        }
    )


@dg.asset(
    key=SALES_DASHBOARD,
    deps=[REPORTING_VIEWS],
    group_name="reporting",
    kinds={"html"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
    retry_policy=_RETRY,
)
def sales_dashboard(
    context: dg.AssetExecutionContext, config: DashboardConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """A static HTML page (inline SVG, opens without network) charting daily net revenue,
    revenue by category, region and channel, top products and the quarantine rate over
    every day the warehouse holds."""
    with warehouse.session() as session:
        data = dashboard.read_dashboard_data(session)
    page = dashboard.render_dashboard(data, dt.datetime.now(dt.timezone.utc))
    path = dashboard.write_dashboard(dashboard_path(warehouse, config.output_path), page)
    context.log.info(f"sales dashboard written to {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "url": dg.MetadataValue.url(path.as_uri()),
            "days": [d.isoformat() for d in data.days],
            "currencies": data.currencies(),
        }
    )
