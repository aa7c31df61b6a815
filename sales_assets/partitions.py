"""The daily partitions: one partition is one UTC calendar day of ``order_timestamp``."""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

from sales_assets.settings import load_settings

# Every asset module imports this one before its decorators run. The assets deliberately use
# Dagster's beta/preview APIs that go with these partitions (single-run backfills, partitioned
# checks); their import-time warnings are not the user's concern.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

PARTITION_DATE_FORMAT = "%Y-%m-%d"


def build_daily_partitions(start: dt.date) -> dg.DailyPartitionsDefinition:
    # end_offset=0: today's partition appears only once the day is complete, so a
    # schedule never lands half a day.
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", fmt=PARTITION_DATE_FORMAT)


daily_partitions = build_daily_partitions(load_settings().partition_start)


def partition_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The days a run covers: one for a partition, all of them for a single-run backfill range."""
    return [dt.date.fromisoformat(key) for key in context.partition_keys]
