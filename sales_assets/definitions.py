"""The one ``dg.Definitions`` of the code location."""

from __future__ import annotations

import dagster as dg

from sales_assets.catalog.assets import catalog_sales_orders
from sales_assets.ingest.assets import raw_manifest_matches_pages, raw_sales_orders
from sales_assets.operations.schedules import build_daily_schedule, build_trailing_window_schedule, daily_sales_job
from sales_assets.operations.sensors import SENSORS
from sales_assets.resources import build_resources
from sales_assets.settings import Settings, load_settings
from sales_assets.transform.assets import curated_sales
from sales_assets.reporting.assets import reporting_views, sales_dashboard
from sales_assets.warehouse.assets import warehouse_tables


def build_definitions(settings: Settings) -> dg.Definitions:
    """Everything Dagster loads, with the resource set ``settings.env`` picks."""
    return dg.Definitions(
        assets=[raw_sales_orders, catalog_sales_orders, curated_sales, warehouse_tables, reporting_views, sales_dashboard],
        asset_checks=[raw_manifest_matches_pages],
        jobs=[daily_sales_job],
        schedules=[build_daily_schedule(settings.schedule_hour_utc)]
        # SALES_TRAILING_WINDOW_DAYS=0 turns the trailing-window re-runs off.
        + (
            [build_trailing_window_schedule(settings.trailing_window_days, settings.trailing_window_hour_utc)]
            if settings.trailing_window_days
            else []
        ),
        sensors=SENSORS,
        resources=build_resources(settings),
    )


settings = load_settings()
defs = build_definitions(settings)
