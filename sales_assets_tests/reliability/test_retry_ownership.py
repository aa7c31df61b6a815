"""Guards faults 2 and 4's "Dagster's retry policy owns the reschedule": a transient source
failure (5xx past the client's attempts, a Retry-After above the bound) must leave the raw
asset's step as an ordinary error its RetryPolicy retries, never as a `dg.Failure` with
`allow_retries=False` (which would end the day at the first blip), and the policy must exist.
Fault 9's other side: a source whose paging loops must fail the step once, as a `dg.Failure`
with `allow_retries=False`, even though the asset has that policy (a retry would only loop
again). (A rejected token staying non-retryable is test_raw_asset's rejected-token test.)
The transient case invokes the asset directly; the looping case runs it in Dagster to see the
events, and waits no retry delay unless the guarantee is broken."""
from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from sales_assets.ingest.assets import raw_sales_orders
from sales_assets.ingest.landing import read_manifest
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.source import contract
from sales_assets.source.client import SourcePaginationError, SourceTransientError
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer, FaultPlan

DAY = "2026-11-20"


def invoke(server, tmp_path, **source):
    context = dg.build_asset_context(partition_key=DAY)
    return raw_sales_orders(
        context=context,
        source=SalesSourceResource(base_url=server.url, max_attempts=2, backoff_base_seconds=0.0, **source),
        lake=LocalLakeResource(root=str(tmp_path / "lake")),
    )


@pytest.mark.parametrize("plan", [FaultPlan(fail_first=[503] * 2), FaultPlan(fail_first=[429], retry_after="86400")])
def test_a_transient_failure_is_left_to_the_retry_policy(tmp_path, plan):
    policy = raw_sales_orders.op.retry_policy
    assert policy is not None and policy.max_retries >= 1 and policy.delay > 0
    with DemoSourceServer(port=0, config=DemoDataConfig(orders_per_day=5), fault_plan=plan) as server:
        with pytest.raises(SourceTransientError) as raised:
            invoke(server, tmp_path, token=server.token)
    assert not isinstance(raised.value, dg.Failure)


def test_a_looping_source_fails_once_despite_the_retry_policy_and_commits_nothing(tmp_path):
    policy = raw_sales_orders.op.retry_policy
    assert policy is not None and policy.max_retries >= 1  # a retry was possible: the asset refused it
    plan = FaultPlan(repeat_cursor_on_page=2)
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    with DemoSourceServer(port=0, config=DemoDataConfig(orders_per_day=30), fault_plan=plan) as server:
        source = SalesSourceResource(base_url=server.url, token=server.token, page_size=10)
        with pytest.raises(dg.Failure) as raised:  # direct invocation: the error the step raises
            raw_sales_orders(context=dg.build_asset_context(partition_key=DAY), source=source, lake=lake)
        assert raised.value.allow_retries is False
        assert isinstance(raised.value.__context__, SourcePaginationError)
        server.requests.clear()
        with dg.instance_for_test() as instance:
            result = dg.materialize([raw_sales_orders], partition_key=DAY, resources={"source": source, "lake": lake},
                                    instance=instance, raise_on_error=False)
            types = [event.event_type for event in result.all_events]
        orders = [r.status for r in server.requests if r.path == contract.ORDERS_PATH]
    assert not result.success
    assert types.count(dg.DagsterEventType.STEP_FAILURE) == 1
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in types
    assert dg.DagsterEventType.STEP_RESTARTED not in types
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "repeats an earlier cursor" in failure.step_failure_data.error.message
    assert orders == [200, 200]  # page 1, the looping page 2, and no second try of the day
    assert read_manifest(lake, dt.date.fromisoformat(DAY)) is None
