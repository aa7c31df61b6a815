"""raw/sales_orders run by Dagster against a misbehaving demo source.

Risk: the asset's materialization hiding what ingestion did (pages, bytes, retries),
the token leaking into Dagster's event log, metadata or error text, an empty day
failing its check, or a second writer of a day interleaving with the first.
"""

from __future__ import annotations

import datetime as dt
import logging

import dagster as dg
import pytest

from sales_assets.ingest.assets import raw_manifest_matches_pages, raw_sales_orders
from sales_assets.ingest.landing import DayLease, lease_key, manifest_key, read_manifest
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import FAULT_TRUNCATED, DemoSourceServer, FaultPlan

DAY = "2026-11-20"


def materialize(source, lake, instance):
    return dg.materialize(
        [raw_sales_orders, raw_manifest_matches_pages],
        partition_key=DAY,
        resources={"source": source, "lake": lake},
        instance=instance,
        raise_on_error=False,
    )


def event_log_text(instance, run_id) -> str:
    """Everything Dagster stored about the run: messages, metadata, errors."""
    return "\n".join(repr(entry) for entry in instance.all_logs(run_id))


@pytest.fixture
def server():
    plan = FaultPlan(fail_first=[429, 503, FAULT_TRUNCATED], retry_after="0")
    with DemoSourceServer(port=0, config=DemoDataConfig(orders_per_day=80), fault_plan=plan) as started:
        yield started


def test_metadata_tells_what_ingestion_did_and_never_the_token(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    source = SalesSourceResource(base_url=server.url, token=server.token, page_size=30, backoff_base_seconds=0.01)
    with dg.instance_for_test() as instance:
        result = materialize(source, lake, instance)
        assert result.success
        [mat] = result.asset_materializations_for_node("raw__sales_orders")
        meta = {k: v.value for k, v in mat.metadata.items()}
        manifest = read_manifest(lake, dt.date.fromisoformat(DAY))
        assert meta["pages"] == len(manifest["pages"]) >= 3
        assert meta["orders"] == manifest["record_count"] == server.figures(DAY)["raw_records"]
        assert meta["bytes"] == sum(p["bytes"] for p in manifest["pages"]) > 0
        assert meta["retries"] == 3 and meta["requests"] == meta["pages"] + 3
        assert meta["wall_seconds"] > 0
        assert meta["source_url"] == server.url
        assert meta["manifest_key"] == manifest_key(DAY)
        [check] = result.get_asset_check_evaluations()
        assert check.passed
        logged = event_log_text(instance, result.run_id)
    assert server.token not in logged and server.token not in caplog.text
    assert server.token not in str(manifest)
    assert not lake.exists(lease_key(DAY))


def test_a_rejected_token_fails_once_without_leaking_it(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.fault_plan = None
    wrong = "wr0ng-t0ken-value-123"
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    source = SalesSourceResource(base_url=server.url, token=wrong)
    with dg.instance_for_test() as instance:
        result = materialize(source, lake, instance)
        assert not result.success
        logged = event_log_text(instance, result.run_id)
        step_failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert len(step_failures) == 1  # not retried: a wrong token does not heal
    assert "SALES_SOURCE_TOKEN" in logged and "401" in logged
    assert wrong not in logged and server.token not in logged and wrong not in caplog.text
    assert [r.status for r in server.requests] == [401]
    assert read_manifest(lake, dt.date.fromisoformat(DAY)) is None


def test_an_empty_day_commits_a_zero_record_manifest_and_passes_its_check(tmp_path):
    # base_url unset: the bundled demo source, here with no orders at all
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    with dg.instance_for_test() as instance:
        result = materialize(SalesSourceResource(demo_orders_per_day=0), lake, instance)
    assert result.success
    manifest = read_manifest(lake, dt.date.fromisoformat(DAY))
    assert manifest["record_count"] == 0 and manifest["line_count"] == 0 and len(manifest["pages"]) == 1
    [check] = result.get_asset_check_evaluations()
    assert check.passed
    [mat] = result.asset_materializations_for_node("raw__sales_orders")
    assert mat.metadata["orders"].value == 0 and mat.metadata["bytes"].value == 0


def test_a_second_writer_of_the_day_fails_clearly_and_leaves_the_first_alone(server, tmp_path, monkeypatch):
    server.fault_plan = None
    # No wait for the holder's lease to expire (reliability/test_lease_retries.py tests the waits).
    monkeypatch.setattr("sales_assets.ingest.assets.LEASE_RETRIES", 0)
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    holder = DayLease(lake, dt.date.fromisoformat(DAY), "first-run", owner="dagster run first").acquire()
    source = SalesSourceResource(base_url=server.url, token=server.token)
    with dg.instance_for_test() as instance:
        result = materialize(source, lake, instance)
        logged = event_log_text(instance, result.run_id)
    assert not result.success
    assert "is being landed by another run" in logged and "dagster run first" in logged
    assert server.requests == []  # refused before asking the source anything
    assert read_manifest(lake, dt.date.fromisoformat(DAY)) is None
    assert lake.exists(lease_key(DAY))
    holder.release()
