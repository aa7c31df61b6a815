"""Guards the alerting and metrics resources: an alert must reach the alerts file, a real
HTTP webhook (Slack-compatible body) and SNS, naming asset, partition, failure and the run
link, and must never carry a secret (a token in an error message, the webhook URL itself);
metrics must arrive in CloudWatch under the pipeline namespace with dimensions Asset and
Stage, and as one structured log line locally."""

import datetime as dt
import http.server
import json
import logging

import boto3
import pytest
from moto import mock_aws

from sales_assets.resources.alerts import Alert, LocalAlertsResource, SnsAlertsResource, scrub
from sales_assets.resources.metrics import (
    METRICS_LOGGER,
    CloudWatchMetricsResource,
    LogMetricsResource,
    MaterializationMetrics,
)
from sales_assets_tests.loopback_http import loopback_server

UI = "http://dagster.example:3000"
SECRET_TOKEN = "s3cr3t-t0ken-value"


def _alert(**overrides) -> Alert:
    values = dict(
        kind="run_failure",
        severity="error",
        title="Run failed: daily_sales_job [2026-11-20] at curated_sales",
        assets=("curated/order_lines", "curated/quarantine"),
        partition="2026-11-20",
        failure=f"step curated_sales: source said 401 for Authorization: Bearer {SECRET_TOKEN}; password={SECRET_TOKEN}",
        run_id="abc-123",
        job_name="daily_sales_job",
    )
    values.update(overrides)
    return Alert(**values)


class _Receiver:
    """A webhook receiver on 127.0.0.1 recording each POST body; answers ``status``."""

    def __init__(self, status: int = 200):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers["Content-Length"])
                received.append((self.path, self.headers["Content-Type"], self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server, _url, self.thread = loopback_server(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXXSECRETPATH"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_local_alert_lands_in_the_file_and_the_webhook_without_secrets(tmp_path):
    path = tmp_path / "alerts" / "alerts.jsonl"
    with _Receiver() as receiver:
        resource = LocalAlertsResource(path=str(path), webhook_url=receiver.url, ui_base_url=UI)
        resource.send(_alert())
        resource.send(_alert(kind="check_failure", severity="warning", check_name="quarantine_rate_under_threshold"))

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["assets"] == ["curated/order_lines", "curated/quarantine"]
    assert first["partition"] == "2026-11-20"
    assert first["run_url"] == f"{UI}/runs/abc-123"
    assert "step curated_sales: source said 401" in first["failure"]
    assert lines[1]["check_name"] == "quarantine_rate_under_threshold"

    assert len(receiver.received) == 2
    request_path, content_type, body = receiver.received[0]
    assert request_path == "/services/T000/B000/XXXXSECRETPATH" and content_type == "application/json"
    posted = json.loads(body)
    # Slack's incoming webhooks read "text"; the structured alert rides along.
    assert "curated/order_lines" in posted["text"] and "2026-11-20" in posted["text"]
    assert f"{UI}/runs/abc-123" in posted["text"]
    assert ":warning:" in json.loads(receiver.received[1][2])["text"]

    everything = path.read_text() + "".join(b.decode() for _, _, b in receiver.received)
    assert SECRET_TOKEN not in everything
    assert "XXXXSECRETPATH" not in everything


def test_a_failing_webhook_keeps_the_alert_in_the_file_and_does_not_leak_the_url(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with _Receiver(status=500) as receiver:
        resource = LocalAlertsResource(path=str(path), webhook_url=receiver.url, ui_base_url=UI)
        with pytest.raises(RuntimeError) as raised:
            resource.send(_alert())
    assert "HTTP 500" in str(raised.value)
    assert "XXXXSECRETPATH" not in str(raised.value)
    assert len(path.read_text().splitlines()) == 1


def test_scrub_removes_credentials_but_keeps_the_story():
    text = (
        "GET https://user:hunter2@api.example/x failed; Bearer abc.def; token=xyz; "
        "key AKIAABCDEFGHIJKLMNOP; 3 lines quarantined"
    )
    cleaned = scrub(text)
    for secret in ("hunter2", "abc.def", "xyz", "AKIAABCDEFGHIJKLMNOP"):
        assert secret not in cleaned
    assert "3 lines quarantined" in cleaned and "api.example/x failed" in cleaned


@mock_aws
def test_sns_alert_is_published_to_the_topic():
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    topic_arn = sns.create_topic(Name="sales-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    SnsAlertsResource(topic_arn=topic_arn, region_name="us-east-1", ui_base_url=UI).send(
        _alert(title="Check failed: warehouse/fact_sales matches_curated [2026-11-20]" + " and more" * 20)
    )

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])
    assert len(envelope["Subject"]) <= 100 and envelope["Subject"].startswith("Check failed: warehouse/fact_sales")
    text, _, payload_json = envelope["Message"].partition("\n\n")
    payload = json.loads(payload_json)
    assert payload["assets"] == ["curated/order_lines", "curated/quarantine"]
    assert payload["partition"] == "2026-11-20"
    assert payload["run_url"] == f"{UI}/runs/abc-123"
    assert f"run: {UI}/runs/abc-123" in text
    assert SECRET_TOKEN not in envelope["Message"]


def _metrics(now):
    return [
        MaterializationMetrics("curated/order_lines", "curated", 120, 4, 12.5, now, "2026-11-20", "run-1"),
        MaterializationMetrics("warehouse/fact_sales", "warehouse", 120, None, 3.0, now, "2026-11-20", "run-1"),
    ]


@mock_aws
def test_cloudwatch_metrics_carry_namespace_dimensions_and_values():
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    CloudWatchMetricsResource(namespace="SalesPipelineTest", region_name="us-east-1").put(_metrics(now))

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    listed = cloudwatch.list_metrics(Namespace="SalesPipelineTest")["Metrics"]
    seen = {
        (m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"]))) for m in listed
    }
    curated = (("Asset", "curated/order_lines"), ("Stage", "curated"))
    fact = (("Asset", "warehouse/fact_sales"), ("Stage", "warehouse"))
    assert seen == {
        ("Rows", curated), ("QuarantinedLines", curated), ("DurationSeconds", curated),
        ("Rows", fact), ("DurationSeconds", fact),
    }

    def statistic(name, dimensions, unit):
        points = cloudwatch.get_metric_statistics(
            Namespace="SalesPipelineTest",
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions],
            StartTime=now - dt.timedelta(minutes=5),
            EndTime=now + dt.timedelta(minutes=5),
            Period=60,
            Statistics=["Sum"],
            Unit=unit,
        )["Datapoints"]
        return sum(p["Sum"] for p in points)

    assert statistic("Rows", curated, "Count") == 120
    assert statistic("QuarantinedLines", curated, "Count") == 4
    assert statistic("DurationSeconds", curated, "Seconds") == 12.5


def test_local_metrics_are_one_structured_log_line_each(caplog):
    now = dt.datetime(2026, 11, 21, 2, 5, tzinfo=dt.timezone.utc)
    with caplog.at_level(logging.INFO, logger=METRICS_LOGGER):
        LogMetricsResource(namespace="SalesPipeline").put(_metrics(now))
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == METRICS_LOGGER]
    assert len(records) == 2
    assert records[0]["dimensions"] == {"Asset": "curated/order_lines", "Stage": "curated"}
    assert records[0]["Rows"] == 120 and records[0]["QuarantinedLines"] == 4 and records[0]["DurationSeconds"] == 12.5
    assert "QuarantinedLines" not in records[1] and records[1]["namespace"] == "SalesPipeline"
