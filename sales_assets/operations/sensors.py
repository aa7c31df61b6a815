"""Sensors that watch finished runs: alerts on failed runs and failed checks, metrics per materialization.

- ``sales_run_failure_alerts`` (a ``run_failure_sensor``): one alert per failed run, naming
  the assets of the failed steps, the partition (a day or a ``first...last`` range), the
  steps' errors and a link to the run.
- ``sales_check_failure_alerts``: one alert per failed asset-check evaluation of a finished
  run (blocking checks fail the run too; warn checks do not, and are only seen here),
  with the numbers the check compared.
- ``sales_materialization_metrics``: rows, quarantined lines and step duration of every
  asset a finished run materialized, through the ``metrics`` resource (CloudWatch in aws).

- ``sales_freshness_alerts``: an alert when an asset with a time-window freshness policy
  (``warehouse/fact_sales``) goes stale, that is its last materialization is older than the
  policy's warn window (warning) or fail window (error): the day the schedule should have
  loaded did not arrive, whatever the reason (schedule off, run stuck, source down).

The check-failure and metrics sensors read finished runs from the instance's run-status events with a storage-id
cursor, so each run is handled once; a fresh sensor starts from "now" instead of
replaying the instance's history. They watch every run of the instance, however it was
launched (schedule, UI, CLI). Nothing here puts a resource's configuration, an
environment variable or a secret into an alert.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.definitions.freshness import TimeWindowFreshnessPolicy
from dagster._core.event_api import RunStatusChangeRecordsFilter

from sales_assets.operations.schedules import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from sales_assets.resources.alerts import Alert, AlertsResource
from sales_assets.resources.metrics import MaterializationMetrics, MetricsResource

RUN_FAILURE_SENSOR_NAME = "sales_run_failure_alerts"
CHECK_FAILURE_SENSOR_NAME = "sales_check_failure_alerts"
METRICS_SENSOR_NAME = "sales_materialization_metrics"
FRESHNESS_SENSOR_NAME = "sales_freshness_alerts"
FRESHNESS_SENSOR_INTERVAL_SECONDS = 300
PARTITION_TAG = "dagster/partition"
FINISHED_RUN_EVENTS = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE)
RUNS_PER_TICK = 50
SENSOR_INTERVAL_SECONDS = 30


def run_partition(tags: dict[str, str]) -> str | None:
    """The run's partition as its tags say: a day, ``first...last`` for a single-run range, or None."""
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    start, end = tags.get(PARTITION_RANGE_START_TAG), tags.get(PARTITION_RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


def _error_text(error) -> str:
    """The error and its causes, one line each (the root cause is what a person needs)."""
    lines = []
    while error is not None:
        message = (error.message or "").strip()
        if message:
            lines.append(message.splitlines()[0] if len(lines) else message)
        error = error.cause or getattr(error, "context", None)
    return "\n".join(dict.fromkeys(lines))


def assets_by_step(instance: dg.DagsterInstance, run) -> dict[str, list[str]]:
    """step key -> asset keys (user strings) that step materializes, from the run's execution plan."""
    if not run.execution_plan_snapshot_id:
        return {}
    snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    out: dict[str, list[str]] = {}
    for step in snapshot.steps:
        keys = [
            output.properties.asset_key.to_user_string()
            for output in step.outputs
            if output.properties is not None and output.properties.asset_key is not None
        ]
        out[step.key] = sorted(set(keys))
    return out


def run_failure_alert(instance: dg.DagsterInstance, run, run_failure_message: str | None) -> Alert:
    """The alert for a failed run: failed steps' assets and errors, or the run's own failure."""
    step_assets = assets_by_step(instance, run)
    failures, assets = [], []
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_FAILURE).records
    for record in records:
        event = record.event_log_entry.dagster_event
        step_key = event.step_key or "?"
        assets += step_assets.get(step_key, [])
        error = event.step_failure_data.error if event.step_failure_data else None
        failures.append(f"step {step_key}: {_error_text(error) if error else event.message or 'failed'}")
    if not failures:
        failures.append(run_failure_message or "the run failed before any step failed")
        assets = sorted({a for keys in step_assets.values() for a in keys})
    partition = run_partition(dict(run.tags))
    failed_steps = [r.event_log_entry.dagster_event.step_key for r in records]
    title = f"Run failed: {run.job_name}" + (f" [{partition}]" if partition else "")
    if failed_steps:
        title += f" at {', '.join(s for s in failed_steps if s)}"
    return Alert(
        kind="run_failure",
        severity="error",
        title=title,
        assets=tuple(sorted(set(assets))),
        partition=partition,
        failure="\n".join(failures),
        run_id=run.run_id,
        job_name=run.job_name,
        details={"failed_steps": failed_steps},
    )


def _metadata_values(metadata) -> dict:
    return {name: getattr(value, "value", value) for name, value in (metadata or {}).items()}


def failed_check_alerts(instance: dg.DagsterInstance, run) -> list[Alert]:
    """One alert per failed check of the run (partitions of one check in one run are one alert)."""
    failed: dict[tuple[str, str], dict] = {}
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
        entry = failed.setdefault(key, {"evaluation": evaluation, "partitions": []})
        if getattr(evaluation, "partition", None):
            entry["partitions"].append(evaluation.partition)
    alerts = []
    run_range = run_partition(dict(run.tags))
    for (asset, check_name), entry in sorted(failed.items()):
        evaluation, partitions = entry["evaluation"], sorted(entry["partitions"])
        partition = _span(partitions) or run_range
        severity = "warning" if evaluation.severity == dg.AssetCheckSeverity.WARN else "error"
        compared = _metadata_values(evaluation.metadata)
        failure = evaluation.description or json.dumps(compared, default=str, sort_keys=True)
        alerts.append(
            Alert(
                kind="check_failure",
                severity=severity,
                title=f"Check failed: {asset} {check_name}" + (f" [{partition}]" if partition else ""),
                assets=(asset,),
                partition=partition,
                failure=failure,
                run_id=run.run_id,
                job_name=run.job_name,
                check_name=check_name,
                details={"blocking": bool(getattr(evaluation, "blocking", False)), "metadata": compared},
            )
        )
    return alerts


def _span(keys: list[str]) -> str | None:
    """Sorted partition keys as one label: None, a key, or ``first...last``."""
    if not keys:
        return None
    return keys[0] if len(keys) == 1 else f"{keys[0]}...{keys[-1]}"


def stage_of(asset: str) -> str:
    """``curated/order_lines`` -> ``curated``: the pipeline layer, the first part of the key."""
    return asset.split("/", 1)[0]


def run_materialization_metrics(instance: dg.DagsterInstance, run) -> list[MaterializationMetrics]:
    """One entry per asset the run materialized.

    A single-run range emits one materialization event per day with the same (whole-run)
    metadata, so events are grouped per asset: rows are the materialization's
    ``dagster/row_count``, quarantined lines the sum of ``figures_by_day``'s
    ``quarantine_lines`` where the asset reports them, and the duration runs from its
    step's start to the materialization.
    """
    step_starts = {
        record.event_log_entry.dagster_event.step_key: record.event_log_entry.timestamp
        for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_START).records
    }
    grouped: dict[str, list] = defaultdict(list)
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
        entry = record.event_log_entry
        grouped[entry.dagster_event.asset_key.to_user_string()].append(entry)
    out = []
    for asset, entries in sorted(grouped.items()):
        first = entries[0]
        materialization = first.dagster_event.event_specific_data.materialization
        metadata = _metadata_values(materialization.metadata)
        rows = metadata.get("dagster/row_count")
        figures = metadata.get("figures_by_day")
        quarantined = (
            sum(int(day.get("quarantine_lines", 0)) for day in figures.values()) if isinstance(figures, dict) else None
        )
        started = step_starts.get(first.dagster_event.step_key)
        finished = max(e.timestamp for e in entries)
        partitions = sorted(p for p in (e.dagster_event.partition for e in entries) if p)
        partition = _span(partitions)
        out.append(
            MaterializationMetrics(
                asset=asset,
                stage=stage_of(asset),
                rows=int(rows) if rows is not None else None,
                quarantined=quarantined,
                duration_seconds=round(finished - started, 3) if started is not None else None,
                timestamp=dt.datetime.fromtimestamp(finished, tz=dt.timezone.utc),
                partition=partition,
                run_id=run.run_id,
            )
        )
    return out


def _latest_storage_id(instance: dg.DagsterInstance) -> int:
    latest = 0
    for event_type in FINISHED_RUN_EVENTS:
        result = instance.fetch_run_status_changes(event_type, limit=1, ascending=False)
        latest = max([latest] + [record.storage_id for record in result.records])
    return latest


def finished_runs_after(instance: dg.DagsterInstance, cursor: str | None, limit: int = RUNS_PER_TICK):
    """(runs finished after ``cursor``, oldest first, and the cursor after them).

    ``cursor`` is the storage id of the last run-status event handled; None means "start
    now": no runs, and a cursor at the latest finished run.
    """
    if cursor is None:
        return [], str(_latest_storage_id(instance))
    after = int(cursor)
    records, horizon = [], None
    for event_type in FINISHED_RUN_EVENTS:
        result = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after), limit=limit, ascending=True
        )
        records += result.records
        if result.has_more and result.records:
            # Events past this one of this type are not fetched yet; stop there for every type.
            last = result.records[-1].storage_id
            horizon = last if horizon is None else min(horizon, last)
    records = sorted(
        (r for r in records if horizon is None or r.storage_id <= horizon), key=lambda r: r.storage_id
    )
    runs = []
    for record in records:
        run = instance.get_run_by_id(record.event_log_entry.run_id)
        if run is not None:
            runs.append(run)
    new_cursor = str(records[-1].storage_id) if records else str(after)
    return runs, new_cursor


def _each_finished_run(context: dg.SensorEvaluationContext, handle, done: str) -> dg.SkipReason:
    """``handle(run)`` (returning how many things it did) for each run finished since the
    cursor, then the cursor moves past them: a run is handled once per sensor."""
    runs, cursor = finished_runs_after(context.instance, context.cursor)
    count = sum(handle(run) for run in runs)
    context.update_cursor(cursor)
    return dg.SkipReason(f"{len(runs)} finished run(s), {count} {done}")


@dg.run_failure_sensor(
    name=RUN_FAILURE_SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    description="Alerts (alerts resource) on every failed run: assets, partition, error, run link.",
)
def sales_run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    alert = run_failure_alert(context.instance, context.dagster_run, context.failure_event.message)
    alerts.send(alert)


@dg.sensor(
    name=CHECK_FAILURE_SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    description="Alerts (alerts resource) on every failed asset check of a finished run, with its numbers.",
)
def sales_check_failure_alerts(context: dg.SensorEvaluationContext, alerts: AlertsResource):
    def send(run) -> int:
        found = failed_check_alerts(context.instance, run)
        for alert in found:
            alerts.send(alert)
        return len(found)

    return _each_finished_run(context, send, "check alert(s) sent")


@dg.sensor(
    name=METRICS_SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    description="Puts rows, quarantined lines and duration of each materialization through the metrics resource.",
)
def sales_materialization_metrics(context: dg.SensorEvaluationContext, metrics: MetricsResource):
    def put(run) -> int:
        measured = run_materialization_metrics(context.instance, run)
        if measured:
            metrics.put(measured)
        return len(measured)

    return _each_finished_run(context, put, "materialization metric set(s) put")


FRESH, WARN, FAIL, UNKNOWN = "fresh", "warn", "fail", "unknown"


@dataclasses.dataclass(frozen=True)
class Freshness:
    """An asset's freshness at ``now`` under its time-window policy: ``state`` is ``fresh``,
    ``warn``, ``fail``, or ``unknown`` (never materialized: nothing to be stale yet)."""

    asset: str
    state: str
    age_seconds: float | None
    last_run_id: str | None
    last_partition: str | None
    fail_window_seconds: float
    warn_window_seconds: float | None


def time_window_policies(asset_graph) -> dict[dg.AssetKey, TimeWindowFreshnessPolicy]:
    """asset key -> time-window freshness policy, for every asset of the graph that declares one."""
    out = {}
    for key in asset_graph.get_all_asset_keys():
        policy = asset_graph.get(key).freshness_policy
        if isinstance(policy, TimeWindowFreshnessPolicy):
            out[key] = policy
    return out


def asset_freshness(
    instance: dg.DagsterInstance, key: dg.AssetKey, policy: TimeWindowFreshnessPolicy, now: dt.datetime
) -> Freshness:
    """The same rule the UI shows for a time-window policy: the age of the last
    materialization (of any partition) against the fail and warn windows."""
    fail = policy.fail_window.to_timedelta().total_seconds()
    warn = policy.warn_window.to_timedelta().total_seconds() if policy.warn_window else None
    event = instance.get_latest_materialization_event(key)
    if event is None:
        return Freshness(key.to_user_string(), UNKNOWN, None, None, None, fail, warn)
    age = now.timestamp() - event.timestamp
    state = FAIL if age > fail else WARN if warn is not None and age > warn else FRESH
    partition = event.dagster_event.partition if event.dagster_event else None
    return Freshness(key.to_user_string(), state, age, event.run_id or None, partition, fail, warn)


def freshness_alert(freshness: Freshness) -> Alert:
    """The alert for a stale asset: how old its last update is, the window it broke, and a
    link to the run that last updated it."""
    hours = freshness.age_seconds / 3600
    window = freshness.fail_window_seconds if freshness.state == FAIL else freshness.warn_window_seconds
    failure = (
        f"last materialized {hours:.1f} h ago (partition {freshness.last_partition or '-'}); "
        f"the freshness policy's {'fail' if freshness.state == FAIL else 'warn'} window is {window / 3600:g} h. "
        "The latest day was not loaded: look for a stopped schedule, a failed or stuck run, or a source outage."
    )
    return Alert(
        kind="freshness",
        severity="error" if freshness.state == FAIL else "warning",
        title=f"Stale: {freshness.asset} not updated for {hours:.1f} h",
        assets=(freshness.asset,),
        partition=freshness.last_partition,
        failure=failure,
        run_id=freshness.last_run_id or "",
        details={
            "state": freshness.state,
            "age_seconds": round(freshness.age_seconds),
            "fail_window_seconds": freshness.fail_window_seconds,
            "warn_window_seconds": freshness.warn_window_seconds,
        },
    )


def freshness_transitions(
    instance: dg.DagsterInstance,
    policies: dict[dg.AssetKey, TimeWindowFreshnessPolicy],
    previous: dict[str, str],
    now: dt.datetime,
) -> tuple[list[Alert], dict[str, str]]:
    """(alerts to send, states to remember). An alert goes out when an asset enters ``warn``
    or ``fail`` (not on every tick while it stays there); recovering and failing again
    alerts again."""
    alerts, states = [], {}
    for key, policy in sorted(policies.items(), key=lambda item: item[0].to_user_string()):
        freshness = asset_freshness(instance, key, policy, now)
        states[freshness.asset] = freshness.state
        if freshness.state in (WARN, FAIL) and previous.get(freshness.asset) != freshness.state:
            alerts.append(freshness_alert(freshness))
    return alerts, states


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dg.sensor(
    name=FRESHNESS_SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=FRESHNESS_SENSOR_INTERVAL_SECONDS,
    description="Alerts (alerts resource) when an asset's freshness policy goes to warn or fail (a day did not arrive).",
)
def sales_freshness_alerts(context: dg.SensorEvaluationContext, alerts: AlertsResource):
    policies = time_window_policies(context.repository_def.asset_graph)
    previous = json.loads(context.cursor) if context.cursor else {}
    to_send, states = freshness_transitions(context.instance, policies, previous, _utcnow())
    for alert in to_send:
        alerts.send(alert)
    context.update_cursor(json.dumps(states, sort_keys=True))
    return dg.SkipReason(f"freshness {states}; {len(to_send)} alert(s) sent")


SENSORS = [sales_run_failure_alerts, sales_check_failure_alerts, sales_materialization_metrics, sales_freshness_alerts]
