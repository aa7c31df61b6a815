"""The quick-start run: a range of days end to end, then what landed in each layer."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import dagster as dg
from dagster._core.errors import DagsterHomeNotSetError

from sales_assets.ingest.landing import read_manifest
from sales_assets.operations.schedules import DAILY_JOB_NAME
from sales_assets.resources import build_resources
from sales_assets.settings import Settings, load_settings
from sales_assets.transform.assets import summary_row_count
from sales_assets.reporting.dashboard import default_dashboard_path
from sales_assets.warehouse import loader

PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclasses.dataclass
class DaySummary:
    day: dt.date
    raw_orders: int
    raw_lines: int
    curated_lines: int
    quarantined_lines: int
    warehouse_lines: int
    net_revenue: Decimal


@dataclasses.dataclass
class DemoSummary:
    success: bool
    run_id: str
    days: list[DaySummary]
    locations: dict[str, str]
    failed_checks: list[str]

    def render(self) -> str:
        lines = [f"Run {self.run_id}: {'succeeded' if self.success else 'FAILED'}", ""]
        header = f"{'day':<12}{'orders':>8}{'raw lines':>11}{'curated':>9}{'quarantined':>13}{'warehouse':>11}{'net revenue':>15}"
        lines += [header, "-" * len(header)]
        for d in self.days:
            lines.append(
                f"{d.day.isoformat():<12}{d.raw_orders:>8}{d.raw_lines:>11}{d.curated_lines:>9}"
                f"{d.quarantined_lines:>13}{d.warehouse_lines:>11}{d.net_revenue:>15,.2f}"
            )
        if self.failed_checks:
            lines += ["", "Failed checks: " + ", ".join(self.failed_checks)]
        lines += [""] + [f"{name:<10} {path}" for name, path in self.locations.items()]
        lines += [
            "",
            "Open the UI with `make dev` (runs `dagster dev`), then http://127.0.0.1:3000 -> Assets.",
            "Materialize one day: dagster asset materialize -m sales_assets.definitions --select '*' --partition YYYY-MM-DD",
        ]
        return "\n".join(lines)


def run_demo(
    days: list[dt.date], settings: Settings | None = None, instance: dg.DagsterInstance | None = None
) -> DemoSummary:
    """Materialize every asset for ``days`` in one run (a single-run backfill) and summarize it."""
    from sales_assets.definitions import build_definitions

    settings = settings or load_settings()
    defs = build_definitions(settings)
    if instance is None:
        try:
            instance = dg.DagsterInstance.get()
        except DagsterHomeNotSetError:
            # Without DAGSTER_HOME (the Makefile sets it) the run is not kept for the UI.
            instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def(DAILY_JOB_NAME)
    result = job.execute_in_process(
        instance=instance,
        tags={PARTITION_RANGE_START_TAG: days[0].isoformat(), PARTITION_RANGE_END_TAG: days[-1].isoformat()},
        # Step-level progress, not every engine event: the full log is in the UI.
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        raise_on_error=False,
    )
    failed_checks = [
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed
    ]
    resources = build_resources(settings)
    lake, warehouse = resources["lake"], resources["warehouse"]
    figures: dict = {}
    if result.success:
        with warehouse.session() as session:
            figures = loader.fact_figures(session, days)

    summaries = []
    for day in days:
        manifest = read_manifest(lake, day) or {"record_count": 0, "line_count": 0}
        lines, net = figures.get(day, (0, Decimal("0.00")))
        summaries.append(
            DaySummary(
                day=day,
                raw_orders=manifest["record_count"],
                raw_lines=manifest["line_count"],
                curated_lines=summary_row_count(lake, "order_lines", day),
                quarantined_lines=summary_row_count(lake, "quarantine", day),
                warehouse_lines=lines,
                net_revenue=net,
            )
        )
    return DemoSummary(
        success=result.success and not failed_checks,
        run_id=result.run_id,
        days=summaries,
        locations={
            "lake": settings.lake_root,
            "catalog": settings.catalog_path,
            "warehouse": settings.warehouse_path,
            # Written by reporting/sales_dashboard; open it in a browser, no server needed.
            "dashboard": str(default_dashboard_path(settings.warehouse_path).resolve()),
        },
        failed_checks=failed_checks,
    )
