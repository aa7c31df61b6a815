"""Guards the instance config the project ships (dagster_home/dagster.yaml): Dagster must
accept it, queue runs so that at most one run per partition (and one trailing-window range)
runs at a time, and keep the warehouse pool at one writer."""

import shutil
from pathlib import Path

import dagster as dg
from dagster._core.run_coordinator import QueuedRunCoordinator

SHIPPED = Path(__file__).resolve().parents[2] / "dagster_home" / "dagster.yaml"


def test_the_shipped_instance_queues_runs_per_partition(tmp_path):
    shutil.copy(SHIPPED, tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        # The `concurrency:` block is merged over the coordinator's own settings here.
        config = instance.get_concurrency_config()
        limits = {limit["key"]: limit for limit in config.run_queue_config.tag_concurrency_limits}
        assert limits["dagster/partition"]["limit"] == 1
        assert limits["dagster/partition"]["value"] == {"applyLimitPerUniqueValue": True}
        assert limits["sales/trailing_window"]["limit"] == 1
        assert config.pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
