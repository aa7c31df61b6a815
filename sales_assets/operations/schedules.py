"""Schedules and the jobs they run.

Two schedules keep the warehouse current without a person:

- ``daily_sales_schedule`` materializes yesterday's (complete) UTC day at
  ``SALES_SCHEDULE_HOUR_UTC``;
- ``trailing_window_schedule`` re-materializes the ``SALES_TRAILING_WINDOW_DAYS``
  days before yesterday as ONE single-run range at ``SALES_TRAILING_WINDOW_HOUR_UTC``,
  so late corrections at the source converge: re-materializing a day replaces it
  in every layer. Yesterday is left to the daily run, so the two never write the
  same day at once.
"""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

from sales_assets.partitions import daily_partitions

DAILY_JOB_NAME = "daily_sales_job"
DAILY_SCHEDULE_NAME = "daily_sales_schedule"
TRAILING_WINDOW_SCHEDULE_NAME = "trailing_window_schedule"
# Dagster's tags for a single-run range (what the UI and `--partition-range` set).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
TRAILING_WINDOW_TAG = "sales/trailing_window"

with warnings.catch_warnings():
    # `partitions_def` is deprecated in 1.13 (inferred from the assets), but a schedule built
    # from this job is only evaluable on its own (tests, schedule previews) when the job names it.
    warnings.filterwarnings("ignore", message="Parameter `partitions_def`", category=DeprecationWarning)
    daily_sales_job = dg.define_asset_job(
        DAILY_JOB_NAME,
        selection=dg.AssetSelection.all(),
        partitions_def=daily_partitions,
        description="Every layer for one day: source -> raw -> catalog -> curated -> warehouse.",
    )


def build_daily_schedule(hour_of_day: int) -> dg.ScheduleDefinition:
    """Yesterday's partition, every day at ``hour_of_day`` UTC (the day is complete by then)."""
    return dg.build_schedule_from_partitioned_job(daily_sales_job, hour_of_day=hour_of_day, name=DAILY_SCHEDULE_NAME)


def trailing_window(tick_date: dt.date, window_days: int, first_day: dt.date) -> list[dt.date]:
    """The days a trailing-window run at a tick on ``tick_date`` re-materializes, oldest first.

    The ``window_days`` days before yesterday (``tick_date - 1`` belongs to the daily
    schedule), never before ``first_day``; empty when the window is 0 or entirely before it.
    """
    last = tick_date - dt.timedelta(days=2)
    days = [last - dt.timedelta(days=offset) for offset in range(window_days - 1, -1, -1)]
    return [day for day in days if day >= first_day]


def trailing_window_tags(days: list[dt.date]) -> dict[str, str]:
    """Run tags that make one run cover ``days`` as a single-run range."""
    return {
        PARTITION_RANGE_START_TAG: days[0].isoformat(),
        PARTITION_RANGE_END_TAG: days[-1].isoformat(),
        TRAILING_WINDOW_TAG: f"{len(days)}d",
    }


def build_trailing_window_schedule(
    window_days: int, hour_of_day: int, partitions_def: dg.DailyPartitionsDefinition = daily_partitions
) -> dg.ScheduleDefinition:
    """Every day at ``hour_of_day`` UTC, one run re-materializing :func:`trailing_window`'s days.

    Every asset has ``BackfillPolicy.single_run()``, so the range is one Spark job and one
    warehouse load. The run key is the range, so a tick evaluated twice launches one run.
    """
    first_day = dt.date.fromisoformat(partitions_def.start.strftime("%Y-%m-%d"))

    @dg.schedule(
        name=TRAILING_WINDOW_SCHEDULE_NAME,
        job=daily_sales_job,
        cron_schedule=f"0 {hour_of_day} * * *",
        execution_timezone="UTC",
        description=(
            f"Re-materializes the {window_days} day(s) before yesterday in one run, "
            "so late corrections from the source converge."
        ),
    )
    def trailing_window_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
        tick_date = tick.astimezone(dt.timezone.utc).date()
        days = trailing_window(tick_date, window_days, first_day)
        if not days:
            return dg.SkipReason(f"no day of the {window_days}-day window is on or after {first_day}")
        return dg.RunRequest(
            run_key=f"trailing-window-{days[0].isoformat()}...{days[-1].isoformat()}",
            tags=trailing_window_tags(days),
        )

    return trailing_window_schedule
