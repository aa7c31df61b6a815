"""Guards backfills: a range of days must be ONE run and ONE Spark (Glue) job over the whole
range, not one per day, for 10 days and for a year; every asset must keep the single-run
policy that `dagster asset materialize --partition-range` demands; and the curated step's
warn checks (quarantine rate, order volume against the trailing average) must flag the
days they should, with the numbers they compared, without failing the run."""

import datetime as dt

import dagster as dg
import pytest

from sales_assets.definitions import build_definitions
from sales_assets.operations.schedules import DAILY_JOB_NAME, PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.settings import load_settings
from sales_assets.transform.assets import (
    QUARANTINE_RATE_CHECK,
    RECONCILIATION_CHECK,
    VOLUME_CHECK,
    curated_sales,
    quarantine_rates,
    volume_deviation,
)

from .fakes import RecordingEtl, calls, day_range, write_manifests

# A past year, so that every day of a 365-day range is an existing partition.
FIRST = dt.date(2025, 1, 1)


def _range_tags(days):
    return {PARTITION_RANGE_START_TAG: days[0].isoformat(), PARTITION_RANGE_END_TAG: days[-1].isoformat()}


def _materialize_curated(tmp_path, days, instance, **etl):
    return dg.materialize(
        [curated_sales],
        instance=instance,
        resources={"etl": RecordingEtl(calls_path=str(tmp_path / "calls.jsonl"), **etl), "lake": LocalLakeResource(root=str(tmp_path / "lake"))},
        tags=_range_tags(days),
        raise_on_error=False,
    )


def _evaluations(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


# 10 days here; a year is proven on the plan below (executing 365 days through Dagster's
# per-partition event bookkeeping takes minutes, which belongs in bench/, not in a unit test).
@pytest.mark.parametrize("count", [10])
def test_a_range_is_one_run_and_one_etl_job(tmp_path, count):
    days = day_range(FIRST, count)
    write_manifests(tmp_path / "lake", days, orders=10, lines=12)
    with dg.instance_for_test() as instance:
        result = _materialize_curated(tmp_path, days, instance, curated_lines=11, quarantine_lines=1)
        assert result.success
        assert len(instance.get_runs()) == 1
    assert calls(tmp_path / "calls.jsonl") == [
        {
            "script": "curate_sales_orders.py",
            "lake_root": str((tmp_path / "lake").resolve()),
            "order_date": days[0].isoformat(),
            "order_date_end": days[-1].isoformat(),
            # The job checks the run's day leases before each commit (issue #10).
            "lease_key_prefix": "curated/_leases",
            "lease_run_id": result.run_id,
        }
    ]
    # One materialization event per day of the range, all from that single step.
    order_lines = [m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == "curated/order_lines"]
    assert sorted(m.partition for m in order_lines) == [d.isoformat() for d in days]
    evaluations = _evaluations(result)
    assert evaluations[RECONCILIATION_CHECK].passed
    assert len(evaluations[RECONCILIATION_CHECK].metadata["by_day"].value) == count


def test_every_asset_accepts_a_one_year_partition_range_from_the_cli():
    # What `dagster asset materialize --select '*' --partition-range A...B` checks before it runs.
    defs = build_definitions(load_settings({}))
    from dagster._core.definitions.partitions.context import partition_loading_context

    with dg.instance_for_test() as instance, partition_loading_context(dynamic_partitions_store=instance) as context:
        repo = defs.get_repository_def()
        keys = dg.AssetSelection.all().resolve(repo.asset_graph)
        job = repo.get_implicit_job_def_for_assets(keys)
        assert job is not None
        for key in keys:
            policy = job.asset_layer.get(key).backfill_policy
            assert policy == dg.BackfillPolicy.single_run(), key
        job.validate_partition_key("2025-01-01", selected_asset_keys=keys, context=context)
        job.validate_partition_key("2025-12-31", selected_asset_keys=keys, context=context)
        daily = defs.resolve_job_def(DAILY_JOB_NAME)
        # Each multi-asset is one step whatever the range: one Spark job, one warehouse load.
        nodes = {n.node_name for n in daily.get_job_snapshot().dep_structure_snapshot.node_invocation_snaps}
        assert {"raw__sales_orders", "catalog__sales_orders", "curated_sales", "warehouse_tables"} <= nodes
        # And a 365-day range resolves to all 365 days inside that one run.
        tags = _range_tags([dt.date(2025, 1, 1), dt.date(2025, 12, 31)])
        keys_in_range = daily.partitions_def.get_partition_keys_in_range(
            dg.PartitionKeyRange(tags[PARTITION_RANGE_START_TAG], tags[PARTITION_RANGE_END_TAG])
        )
        assert len(keys_in_range) == 365


def test_blocking_reconciliation_fails_the_run_when_the_job_misreports(tmp_path):
    days = day_range(FIRST, 2)
    write_manifests(tmp_path / "lake", days, orders=10, lines=12)
    with dg.instance_for_test() as instance:
        result = _materialize_curated(
            tmp_path, days, instance, curated_lines=11, quarantine_lines=1,
            overrides={days[1].isoformat(): {"curated_lines": 12}},
        )
    assert not result.success
    evaluation = _evaluations(result)[RECONCILIATION_CHECK]
    assert not evaluation.passed
    assert evaluation.metadata["by_day"].value[days[1].isoformat()]["curated_rows_in_lake"] == 11
    assert any(days[1].isoformat() in p for p in evaluation.metadata["problems"].value)


def test_quarantine_rate_and_volume_warn_without_failing_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SALES_QUARANTINE_RATE_MAX", "0.10")
    monkeypatch.setenv("SALES_VOLUME_DEVIATION_MAX", "0.5")
    monkeypatch.setenv("SALES_VOLUME_LOOKBACK_DAYS", "7")
    history = day_range(FIRST, 7)
    spike = FIRST + dt.timedelta(days=7)
    normal = FIRST + dt.timedelta(days=8)
    orders = {**{d: 100 for d in history}, spike: 400, normal: 110}
    write_manifests(tmp_path / "lake", [*history, spike, normal], orders=orders, lines=10)
    with dg.instance_for_test() as instance:
        result = _materialize_curated(tmp_path, [spike, normal], instance, curated_lines=8, quarantine_lines=2)
    assert result.success  # warn checks never stop the run
    evaluations = _evaluations(result)
    assert evaluations[RECONCILIATION_CHECK].passed

    rate = evaluations[QUARANTINE_RATE_CHECK]
    assert not rate.passed and rate.severity == dg.AssetCheckSeverity.WARN
    assert rate.metadata["by_day"].value[spike.isoformat()] == {
        "raw_lines": 10, "quarantine_lines": 2, "rate": 0.2, "max_rate": 0.1,
    }

    volume = evaluations[VOLUME_CHECK]
    assert not volume.passed and volume.severity == dg.AssetCheckSeverity.WARN
    by_day = volume.metadata["by_day"].value
    assert by_day[spike.isoformat()]["orders"] == 400
    assert by_day[spike.isoformat()]["trailing_average"] == 100
    assert by_day[spike.isoformat()]["deviation"] == 3.0
    # The normal day's window includes the spike: (6*100 + 400) / 7.
    assert by_day[normal.isoformat()]["trailing_average"] == pytest.approx(142.857, abs=1e-3)
    problems = volume.metadata["problems"].value
    assert len(problems) == 1 and problems[0].startswith(spike.isoformat())


def test_quality_rules_on_their_own():
    problems, compared = quarantine_rates(
        {"2026-01-02": {"raw_lines": 0, "quarantine_lines": 0}, "2026-01-01": {"raw_lines": 200, "quarantine_lines": 11}},
        0.05,
    )
    assert list(compared) == ["2026-01-01", "2026-01-02"]
    assert problems == ["2026-01-01: 11 of 200 lines quarantined (5.50% > 5.00%)"]
    assert compared["2026-01-02"]["rate"] == 0.0

    assert volume_deviation(50, [100, 100], 0.5)[0] is None  # too little history for a verdict
    assert volume_deviation(49, [100, 100, 100], 0.5)[0] is not None
    assert volume_deviation(50, [100, 100, 100], 0.5)[0] is None
    problem, compared = volume_deviation(5, [0, 0, 0], 0.5)
    assert problem and compared["deviation"] == "inf"
    assert volume_deviation(0, [0, 0, 0], 0.5)[0] is None
