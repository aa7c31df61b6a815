"""Guards fault 19 (secret leakage): across a successful run and a failing run of the same day,
a sentinel source token must never appear in Python logs, Dagster's event log (messages,
materialization metadata, step-failure errors), the alert an administrator receives, the
exception text, or anything written to the lake. The token is in play the whole time (every
request carries it), so a leak anywhere on these paths fails this test."""
from __future__ import annotations

import datetime as dt
import json
import logging

import dagster as dg
import pytest

from sales_assets.ingest.assets import raw_sales_orders, raw_manifest_matches_pages
from sales_assets.ingest.landing import read_manifest
from sales_assets.operations.sensors import run_failure_alert
from sales_assets.resources.alerts import LocalAlertsResource
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer, FaultPlan

DAY = "2026-11-20"
SENTINEL = "SENTINEL-7f3a9c41-never-log-me"


@pytest.fixture
def server():
    with DemoSourceServer(port=0, token=SENTINEL, config=DemoDataConfig(orders_per_day=60)) as started:
        yield started


def test_the_token_never_appears_anywhere_across_a_good_and_a_failing_run(server, tmp_path, caplog):
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
        bad = dg.materialize([raw_sales_orders], partition_key=DAY, resources={"source": source, "lake": lake},
                             instance=instance, raise_on_error=False)
        assert not bad.success
        alert = run_failure_alert(instance, instance.get_run_by_id(bad.run_id), "run failed")
        LocalAlertsResource(path=str(alerts_path)).send(alert)

        for run_id in (good.run_id, bad.run_id):
            texts += [repr(entry) for entry in instance.all_logs(run_id)]
        texts += [repr(event) for event in good.all_events + bad.all_events]
        failures = [e for e in bad.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        texts += [e.step_failure_data.error.to_string() for e in failures]
        with pytest.raises(Exception) as raised:  # the raising flavour: the exception a caller sees
            dg.materialize([raw_sales_orders], partition_key=DAY, resources={"source": source, "lake": lake},
                           instance=instance)
        texts.append(str(raised.value) + repr(raised.value))

    # The sentinel was really used: every request carried it and the source accepted it.
    assert server.requests and all(r.status != 401 for r in server.requests)
    assert failures and "cursor" in failures[0].step_failure_data.error.to_string().lower()
    metadata = good.asset_materializations_for_node("raw__sales_orders")[0].metadata
    texts.append(json.dumps({k: str(v.value) for k, v in metadata.items()}))
    texts.append(alerts_path.read_text())
    texts.append(caplog.text)
    texts += [path.read_text(errors="replace") for path in lake_root.rglob("*") if path.is_file()]
    assert "cursor" in alerts_path.read_text().lower()  # the alert tells the story...
    leaks = [text for text in texts if SENTINEL in text]
    assert leaks == []  # ...without the token
    assert read_manifest(lake, dt.date.fromisoformat(DAY)) is not None  # the good run's day survived
