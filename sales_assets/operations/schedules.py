"""Schedules and the jobs they run."""

from __future__ import annotations

import dagster as dg

from sales_assets.partitions import daily_partitions

DAILY_JOB_NAME = "daily_sales_job"

daily_sales_job = dg.define_asset_job(
    DAILY_JOB_NAME,
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Every layer for one day: source -> raw -> catalog -> curated -> warehouse.",
)


def build_daily_schedule(hour_of_day: int) -> dg.ScheduleDefinition:
    """Yesterday's partition, every day at ``hour_of_day`` UTC (the day is complete by then)."""
    return dg.build_schedule_from_partitioned_job(
        daily_sales_job, hour_of_day=hour_of_day, name="daily_sales_schedule"
    )
