"""Guards the watchers a user leaves running: a failed run must raise an alert naming the
asset, partition, failure and run link (and no secret), delivered to the file and a real
HTTP webhook; failed checks, blocking or warn, must each raise one alert carrying the
numbers they compared, once; and every materialization of a finished run must put rows,
quarantined lines and duration to CloudWatch (moto) with dimensions asset and stage."""

import datetime as dt
import json

import boto3
import dagster as dg
from dagster._core.events import DagsterEventType
from moto import mock_aws

from sales_assets.definitions import defs
from sales_assets.operations.sensors import (
    CHECK_FAILURE_SENSOR_NAME,
    METRICS_SENSOR_NAME,
    RUN_FAILURE_SENSOR_NAME,
    run_partition,
    sales_check_failure_alerts,
    sales_materialization_metrics,
    sales_run_failure_alerts,
)
from sales_assets.resources.alerts import LocalAlertsResource
from sales_assets.resources.metrics import CloudWatchMetricsResource
from sales_assets_tests.resources.test_alerts_metrics import _Receiver

from .test_backfills import _materialize_curated
from .fakes import day_range, write_manifests

UI = "http://dagster.example:3000"
DAYS = day_range(dt.date(2025, 3, 1), 2)
PARTITION = "2025-03-01...2025-03-02"


def _alerts(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_sensors_are_registered_and_start_running():
    names = {s.name: s for s in defs.sensors}
    for name in (RUN_FAILURE_SENSOR_NAME, CHECK_FAILURE_SENSOR_NAME, METRICS_SENSOR_NAME):
        assert names[name].default_status == dg.DefaultSensorStatus.RUNNING


def test_run_partition_reads_a_day_or_a_range():
    assert run_partition({"dagster/partition": "2025-03-01"}) == "2025-03-01"
    assert run_partition({"dagster/asset_partition_range_start": "2025-03-01", "dagster/asset_partition_range_end": "2025-03-02"}) == PARTITION
    assert run_partition({}) is None


def test_a_failed_run_alerts_with_asset_partition_failure_and_link(tmp_path):
    write_manifests(tmp_path / "lake", DAYS, orders=10, lines=12)
    alerts_path = tmp_path / "alerts.jsonl"
    with dg.instance_for_test() as instance, _Receiver() as receiver:
        result = _materialize_curated(tmp_path, DAYS, instance, fail="Spark executor lost; Authorization: Bearer sk-live-123")
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        [failure] = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
        context = dg.build_run_status_sensor_context(
            sensor_name=RUN_FAILURE_SENSOR_NAME,
            dagster_event=failure.event_log_entry.dagster_event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"alerts": LocalAlertsResource(path=str(alerts_path), webhook_url=receiver.url, ui_base_url=UI)},
        ).for_run_failure()
        sales_run_failure_alerts(context)

    [alert] = _alerts(alerts_path)
    assert alert["kind"] == "run_failure" and alert["severity"] == "error"
    assert alert["assets"] == ["curated/dim_customer", "curated/dim_product", "curated/order_lines", "curated/quarantine"]
    assert alert["partition"] == PARTITION
    assert "curated_sales" in alert["failure"] and "Spark executor lost" in alert["failure"]
    assert alert["run_url"] == f"{UI}/runs/{result.run_id}"
    assert "sk-live-123" not in alerts_path.read_text()
    [(_, _, body)] = receiver.received
    text = json.loads(body)["text"]
    assert PARTITION in text and "Spark executor lost" in text and "sk-live-123" not in text


def _tick(sensor, instance, cursor, resources):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = sensor.evaluate_tick(context)
    return result.cursor


def test_failed_checks_alert_once_each_with_their_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("SALES_QUARANTINE_RATE_MAX", "0.05")
    write_manifests(tmp_path / "lake", DAYS, orders=10, lines=12)
    alerts_path = tmp_path / "alerts.jsonl"
    resources = {"alerts": LocalAlertsResource(path=str(alerts_path), ui_base_url=UI)}
    with dg.instance_for_test() as instance:
        before = dg.materialize([dg.AssetSpec("unrelated")], instance=instance)  # history the sensor must not replay
        assert before.success
        cursor = _tick(sales_check_failure_alerts, instance, None, resources)
        assert _alerts(alerts_path) == []

        # The job's figures say 12 curated lines on day 2 while the lake holds 11: reconciliation
        # (blocking) fails the run; 1 of 12 lines quarantined (8%) also trips the 5% warn check.
        broken = _materialize_curated(
            tmp_path, DAYS, instance, curated_lines=11, quarantine_lines=1,
            overrides={DAYS[1].isoformat(): {"curated_lines": 12}},
        )
        assert not broken.success
        cursor = _tick(sales_check_failure_alerts, instance, cursor, resources)
        alerts = {a["check_name"]: a for a in _alerts(alerts_path)}
        assert set(alerts) == {"reconciles_with_raw", "quarantine_rate_under_threshold"}

        reconciliation = alerts["reconciles_with_raw"]
        assert reconciliation["severity"] == "error" and reconciliation["details"]["blocking"] is True
        assert reconciliation["assets"] == ["curated/order_lines"] and reconciliation["partition"] == PARTITION
        assert "2025-03-02: 11 curated rows in the lake, job reported 12" in reconciliation["failure"]
        assert reconciliation["details"]["metadata"]["by_day"]["2025-03-02"]["curated_rows_in_lake"] == 11
        assert reconciliation["run_url"] == f"{UI}/runs/{broken.run_id}"

        rate = alerts["quarantine_rate_under_threshold"]
        assert rate["severity"] == "warning" and rate["assets"] == ["curated/quarantine"]
        assert rate["details"]["metadata"]["by_day"]["2025-03-01"]["rate"] == round(1 / 12, 6)

        # Handled runs are not alerted again.
        cursor = _tick(sales_check_failure_alerts, instance, cursor, resources)
        assert len(_alerts(alerts_path)) == 2

        # The run-failure alert of the same run says which blocking check stopped it.
        run = instance.get_run_by_id(broken.run_id)
        [failure] = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
        sales_run_failure_alerts(
            dg.build_run_status_sensor_context(
                sensor_name=RUN_FAILURE_SENSOR_NAME,
                dagster_event=failure.event_log_entry.dagster_event,
                dagster_instance=instance,
                dagster_run=run,
                resources=resources,
            ).for_run_failure()
        )
        run_alert = _alerts(alerts_path)[-1]
        assert run_alert["kind"] == "run_failure" and run_alert["partition"] == PARTITION
        assert "reconciles_with_raw" in run_alert["failure"], run_alert["failure"]


@mock_aws
def test_each_materialization_puts_cloudwatch_metrics(tmp_path):
    write_manifests(tmp_path / "lake", DAYS, orders=10, lines=12)
    resources = {"metrics": CloudWatchMetricsResource(namespace="SalesPipelineTest", region_name="us-east-1")}
    with dg.instance_for_test() as instance:
        cursor = _tick(sales_materialization_metrics, instance, None, resources)
        result = _materialize_curated(tmp_path, DAYS, instance, curated_lines=11, quarantine_lines=1)
        assert result.success
        _tick(sales_materialization_metrics, instance, cursor, resources)

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    listed = cloudwatch.list_metrics(Namespace="SalesPipelineTest")["Metrics"]
    by_asset = {}
    for metric in listed:
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert dims["Stage"] == dims["Asset"].split("/")[0] == "curated"
        by_asset.setdefault(dims["Asset"], set()).add(metric["MetricName"])
    assert set(by_asset) == {"curated/order_lines", "curated/quarantine", "curated/dim_customer", "curated/dim_product"}
    assert by_asset["curated/order_lines"] == {"Rows", "QuarantinedLines", "DurationSeconds"}

    now = dt.datetime.now(dt.timezone.utc)

    def total(name):
        points = cloudwatch.get_metric_statistics(
            Namespace="SalesPipelineTest",
            MetricName=name,
            Dimensions=[{"Name": "Asset", "Value": "curated/order_lines"}, {"Name": "Stage", "Value": "curated"}],
            StartTime=now - dt.timedelta(hours=1),
            EndTime=now + dt.timedelta(hours=1),
            Period=3600,
            Statistics=["Sum", "SampleCount"],
        )["Datapoints"]
        return sum(p["Sum"] for p in points), sum(p["SampleCount"] for p in points)

    # One data point per asset per run, even though a 2-day range emits a materialization per day.
    assert total("Rows") == (22, 1)
    assert total("QuarantinedLines") == (2, 1)
    duration, samples = total("DurationSeconds")
    assert samples == 1 and 0 <= duration < 600
