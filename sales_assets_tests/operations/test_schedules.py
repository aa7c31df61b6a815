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


# The trailing window: late corrections converge because the days before yesterday are
# re-materialized, as ONE single-run range, never overlapping the daily run's yesterday.

from sales_assets.operations.schedules import (  # noqa: E402
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    TRAILING_WINDOW_TAG,
    build_trailing_window_schedule,
    trailing_window,
)
from sales_assets.partitions import build_daily_partitions  # noqa: E402
from sales_assets.settings import load_settings  # noqa: E402


def test_trailing_window_is_the_days_before_yesterday_clamped_at_the_first_partition():
    tick = dt.date(2026, 11, 21)
    assert trailing_window(tick, 3, dt.date(2020, 1, 1)) == [dt.date(2026, 11, 17), dt.date(2026, 11, 18), dt.date(2026, 11, 19)]
    assert trailing_window(tick, 1, dt.date(2020, 1, 1)) == [dt.date(2026, 11, 19)]
    assert trailing_window(tick, 3, dt.date(2026, 11, 18)) == [dt.date(2026, 11, 18), dt.date(2026, 11, 19)]
    assert trailing_window(tick, 3, dt.date(2026, 11, 20)) == []
    assert trailing_window(tick, 0, dt.date(2020, 1, 1)) == []


def _evaluate(schedule, tick):
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        return schedule.evaluate_tick(context)


def test_trailing_window_schedule_requests_one_range_run_at_its_hour():
    schedule = build_trailing_window_schedule(window_days=3, hour_of_day=4)
    assert schedule.cron_schedule == "0 4 * * *" and schedule.execution_timezone == "UTC"
    result = _evaluate(schedule, dt.datetime(2026, 11, 21, 4, 0, tzinfo=dt.timezone.utc))
    [request] = result.run_requests
    assert request.tags[PARTITION_RANGE_START_TAG] == "2026-11-17"
    assert request.tags[PARTITION_RANGE_END_TAG] == "2026-11-19"
    assert request.tags[TRAILING_WINDOW_TAG] == "3d"
    assert request.partition_key is None  # a range, not one partition: one run for all days
    assert request.run_key == "trailing-window-2026-11-17...2026-11-19"
    assert schedule.job_name == "daily_sales_job"


def test_trailing_window_schedule_skips_before_the_first_partition():
    partitions = build_daily_partitions(dt.date(2026, 11, 20))
    schedule = build_trailing_window_schedule(window_days=3, hour_of_day=4, partitions_def=partitions)
    result = _evaluate(schedule, dt.datetime(2026, 11, 21, 4, 0, tzinfo=dt.timezone.utc))
    assert not result.run_requests and "2026-11-20" in result.skip_message


def test_trailing_window_is_configurable_and_can_be_turned_off():
    from sales_assets.definitions import build_definitions

    # Resolving a Definitions' repository wants a live instance (an earlier test's is closed).
    with dg.instance_for_test() as instance:
        five = build_definitions(load_settings({"SALES_TRAILING_WINDOW_DAYS": "5", "SALES_TRAILING_WINDOW_HOUR_UTC": "6"}))
        schedule = five.resolve_schedule_def("trailing_window_schedule")
        tick = dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.timezone.utc)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        [request] = schedule.evaluate_tick(context).run_requests
        off = build_definitions(load_settings({"SALES_TRAILING_WINDOW_DAYS": "0"}))
        assert [s.name for s in off.schedules] == ["daily_sales_schedule"]
    assert (request.tags[PARTITION_RANGE_START_TAG], request.tags[PARTITION_RANGE_END_TAG]) == ("2026-11-15", "2026-11-19")
    assert schedule.cron_schedule == "0 6 * * *"
