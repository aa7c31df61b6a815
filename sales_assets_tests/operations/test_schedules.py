"""Guards the daily schedule: each tick requests yesterday's (complete) UTC day, every
asset of the pipeline, and nothing for a day that has not ended."""

import datetime as dt

import dagster as dg

from sales_assets.definitions import defs
from sales_assets.operations.schedules import build_daily_schedule


def test_schedule_requests_yesterdays_partition_at_the_configured_hour():
    schedule = build_daily_schedule(hour_of_day=5)
    assert schedule.cron_schedule == "0 5 * * *"
    assert schedule.execution_timezone == "UTC"
    tick = dt.datetime(2026, 11, 21, 5, 0, tzinfo=dt.timezone.utc)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-11-20"]


def test_the_shipped_schedule_targets_the_whole_daily_job():
    schedule = defs.resolve_schedule_def("daily_sales_schedule")
    job = defs.resolve_job_def(schedule.job_name)
    assert job.partitions_def is not None
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert {"raw/sales_orders", "catalog/sales_orders", "curated/order_lines", "warehouse/fact_sales"} <= selected
