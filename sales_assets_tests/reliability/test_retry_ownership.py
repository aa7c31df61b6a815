"""Guards faults 2 and 4's "Dagster's retry policy owns the reschedule": a transient source
failure (5xx past the client's attempts, a Retry-After above the bound) must leave the raw
asset's step as an ordinary error its RetryPolicy retries, never as a `dg.Failure` with
`allow_retries=False` (which would end the day at the first blip), and the policy must exist.
(A permanent failure staying non-retryable is test_raw_asset's rejected-token test.) Direct
invocation of the asset: no retry delay is waited."""
from __future__ import annotations

import dagster as dg
import pytest

from sales_assets.ingest.assets import raw_sales_orders
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets.source.client import SourceTransientError
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

