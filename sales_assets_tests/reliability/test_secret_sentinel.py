"""Guards fault 19 (secret leakage): across a successful run and failing runs of the same day,
a sentinel source token must never appear in Python logs, captured stdout/stderr, Dagster's
event log (messages, per-retry lines, materialization metadata, step-failure errors), the
alerts an administrator receives (the local alerts file and SNS messages, under moto), the
exception text, or anything written to the lake. The token is in play the whole time (every
request carries it), and one failing run talks to a source that echoes the Authorization header
it received back in its error bodies and headers (503s retried, then a 403, as a proxy or a
debugging server may), so a leak anywhere on these paths, from the client up, fails this test."""
from __future__ import annotations

import datetime as dt
import json
import logging
from http.server import BaseHTTPRequestHandler

import boto3
import dagster as dg
import pytest
from moto import mock_aws

from sales_assets.ingest.assets import raw_sales_orders, raw_manifest_matches_pages
from sales_assets.ingest.landing import read_manifest
from sales_assets.operations.sensors import run_failure_alert
from sales_assets.resources.alerts import LocalAlertsResource, SnsAlertsResource
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.source.client import SourceTransientError
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer, FaultPlan
from sales_assets_tests.loopback_http import loopback_server

DAY = "2026-11-20"
SENTINEL = "SENTINEL-7f3a9c41-never-log-me"
REGION = "us-east-1"


class EchoingSource:
    """Answers every GET with the next status of `statuses` (the last one repeats), its JSON
    error body and an `X-Echo-Authorization` header both quoting the Authorization header the
    request carried. `received` lists those headers."""

    def __init__(self, statuses: list[int]) -> None:
        self.received: list[str | None] = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                auth = self.headers.get("Authorization")
                source.received.append(auth)
                status = statuses[min(len(source.received), len(statuses)) - 1]
                body = json.dumps({"error": f"status {status}; you sent Authorization: {auth}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Echo-Authorization", str(auth))
                if status in (429, 503):
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd, self.url, self._thread = loopback_server(Handler)

    def __enter__(self) -> EchoingSource:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server():
    with DemoSourceServer(port=0, token=SENTINEL, config=DemoDataConfig(orders_per_day=60)) as started:
        yield started


def step_failures(result) -> list:
    return [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]


def sns_inbox():
    """A topic with an SQS queue subscribed (under moto): (topic ARN, function reading the queue)."""
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="sales-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def read() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
        return [json.loads(m["Body"]) for m in messages]

    return topic_arn, read


def test_the_token_never_appears_anywhere_across_a_good_and_a_failing_run(server, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    lake_root = tmp_path / "lake"
    lake = LocalLakeResource(root=str(lake_root))
    source = SalesSourceResource(base_url=server.url, token=SENTINEL, page_size=20, backoff_base_seconds=0.01)
    alerts_path = tmp_path / "alerts.jsonl"
    texts: list[str] = []
    with dg.instance_for_test() as instance:
        good = dg.materialize([raw_sales_orders, raw_manifest_matches_pages], partition_key=DAY,
                              resources={"source": source, "lake": lake}, instance=instance)
        assert good.success

        # The re-run dies mid-day: the source repeats a cursor, a non-retryable failure.
        server.fault_plan = FaultPlan(repeat_cursor_on_page=2)
        looping = dg.materialize([raw_sales_orders], partition_key=DAY, resources={"source": source, "lake": lake},
                                 instance=instance, raise_on_error=False)
        assert not looping.success

        # A source that echoes the token: two 503s the client retries (one log line each, in the
        # run's log too), then a 403 whose error text the client quotes in its message.
        with EchoingSource([503, 503, 403]) as echoing:
            echoing_source = SalesSourceResource(base_url=echoing.url, token=SENTINEL, max_attempts=3,
                                                 backoff_base_seconds=0.0)
            echoed = dg.materialize([raw_sales_orders], partition_key=DAY,
                                    resources={"source": echoing_source, "lake": lake},
                                    instance=instance, raise_on_error=False)
        assert not echoed.success
        assert echoing.received == [f"Bearer {SENTINEL}"] * 3  # the source really had the token to echo

        bad_runs = (looping, echoed)
        alerts = [run_failure_alert(instance, instance.get_run_by_id(run.run_id), "run failed") for run in bad_runs]
        for alert in alerts:
            LocalAlertsResource(path=str(alerts_path)).send(alert)
        with mock_aws():
            topic_arn, read_sns = sns_inbox()
            for alert in alerts:
                SnsAlertsResource(topic_arn=topic_arn, region_name=REGION).send(alert)
            published = read_sns()

        for run in (good, *bad_runs):
            texts += [repr(entry) for entry in instance.all_logs(run.run_id)]
            texts += [repr(event) for event in run.all_events]
        failures = {run.run_id: step_failures(run) for run in bad_runs}
        texts += [e.step_failure_data.error.to_string() for found in failures.values() for e in found]
        echoed_log = [entry.user_message for entry in instance.all_logs(echoed.run_id)]
        with pytest.raises(Exception) as raised:  # the raising flavour: the exception a caller sees
            dg.materialize([raw_sales_orders], partition_key=DAY, resources={"source": source, "lake": lake},
                           instance=instance)
        texts.append(str(raised.value) + repr(raised.value))

    # The 503s past the client's attempts (Dagster's retry policy would reschedule them; the
    # step is invoked directly so no retry delay is waited): the exception a caller sees.
    with EchoingSource([503]) as echoing:
        echoing_source = SalesSourceResource(base_url=echoing.url, token=SENTINEL, max_attempts=2,
                                             backoff_base_seconds=0.0)
        with pytest.raises(SourceTransientError) as transient:
            raw_sales_orders(context=dg.build_asset_context(partition_key=DAY), source=echoing_source, lake=lake)
    assert len(echoing.received) == 2 and "HTTP 503" in str(transient.value)
    texts.append(str(transient.value) + repr(transient.value))

    # The sentinel was really used: every request carried it and the source accepted it.
    assert server.requests and all(r.status != 401 for r in server.requests)
    assert [len(found) for found in failures.values()] == [1, 1]  # each failed once, not retried
    assert "cursor" in failures[looping.run_id][0].step_failure_data.error.to_string().lower()
    echoed_failure = failures[echoed.run_id][0].step_failure_data.error.to_string()
    assert "403" in echoed_failure and "SALES_SOURCE_TOKEN" in echoed_failure
    assert sum("attempt " in message and "HTTP 503" in message for message in echoed_log) == 2
    metadata = good.asset_materializations_for_node("raw__sales_orders")[0].metadata
    texts.append(json.dumps({k: str(v.value) for k, v in metadata.items()}))
    texts.append(alerts_path.read_text())
    texts += [json.dumps(message) for message in published]
    texts.append(caplog.text)
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    texts += [path.read_text(errors="replace") for path in lake_root.rglob("*") if path.is_file()]
    # The alerts tell the story...
    assert "cursor" in alerts_path.read_text().lower() and "403" in alerts_path.read_text()
    assert len(published) == 2
    assert sorted(("cursor" in m["Message"].lower(), "SALES_SOURCE_TOKEN" in m["Message"]) for m in published) == [
        (False, True), (True, False)]
    leaks = [text for text in texts if SENTINEL in text]
    assert leaks == []  # ...without the token
    assert read_manifest(lake, dt.date.fromisoformat(DAY)) is not None  # the good run's day survived
