"""Guards launching a partition-range backfill the way the UI's "Materialize" dialog does:
GraphQL `launchPartitionBackfill` with `partitionNames` plus an `assetSelection`. Dagster
builds that target by walking the graph from the selection's roots, and dagster-graphql then
rejects the launch unless every key of a non-subsettable multi-asset (curated_sales,
warehouse_tables) targets an identical subset, compared with `!=`. In Dagster 1.13 that `!=`
is the tuple comparison of TimeWindowPartitionsSubset, which also compares its lazily cached
partition count: a spec reached through two partitioned parents (a union, count not cached)
differs from a sibling reached through one (count cached) even when both hold the same days.
So the specs of one multi-asset must be reached the same way, which these tests pin down on
the project's own asset graph, and once through the real GraphQL mutation (no Spark, no run).
"""

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.asset_backfill import AssetBackfillData
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from sales_assets.definitions import build_definitions
from sales_assets.settings import load_settings

WORKSPACE = str(Path(__file__).resolve().parents[2] / "workspace.yaml")
DAYS = ["2025-06-01", "2025-06-02", "2025-06-03"]

BACKFILL_TARGET = """
query($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { assetBackfillData { rootTargetedPartitions { partitionKeys ranges { start end } } } }
  }
}
"""


@pytest.fixture(scope="module")
def asset_graph():
    return build_definitions(load_settings({})).resolve_asset_graph()


def _keys(asset_graph, prefixes):
    return [k for k in asset_graph.get_all_asset_keys() if k.path[0] in prefixes]


def _execution_set_mismatches(asset_graph, target):
    """The keys dagster-graphql's assert_valid_asset_partition_backfill would reject, compared
    exactly as it compares them (`!=` on the partitions subsets)."""
    subsets = target.partitions_subsets_by_asset_key
    mismatches = []
    for key in target.asset_keys:
        for sibling in asset_graph.get(key).execution_set_asset_keys:
            if sibling != key and (sibling not in subsets or subsets[key] != subsets[sibling]):
                mismatches.append((key.to_user_string(), sibling.to_user_string()))
    return sorted(mismatches)


@pytest.mark.parametrize(
    "layers",
    [
        ("raw", "catalog", "curated", "warehouse", "reporting"),  # "Materialize all"
        ("curated", "warehouse", "reporting"),
        ("curated", "warehouse"),
        ("warehouse", "reporting"),
        ("warehouse",),
    ],
)
def test_partition_names_with_an_asset_selection_target_each_multi_asset_uniformly(asset_graph, layers):
    selection = _keys(asset_graph, layers)
    with dg.instance_for_test() as instance:
        data = AssetBackfillData.from_asset_partitions(
            asset_graph=asset_graph,
            partition_names=DAYS,
            asset_selection=selection,
            dynamic_partitions_store=instance,
            backfill_start_timestamp=time.time(),
            all_partitions=False,
        )
    target = data.target_subset
    assert set(target.asset_keys) == set(selection)
    for key in selection:
        assert sorted(target.partitions_subsets_by_asset_key[key].get_partition_keys()) == DAYS, key
    assert _execution_set_mismatches(asset_graph, target) == []


def test_every_spec_of_a_multi_asset_has_the_same_number_of_partitioned_parents(asset_graph):
    # The structural rule behind the test above, readable as a rule: a spec with two parents
    # beside a sibling with one is what made the UI launch fail.
    by_execution_set = {}
    for key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(key)
        parents = [p for p in node.parent_keys if asset_graph.get(p).is_partitioned]
        by_execution_set.setdefault(frozenset(node.execution_set_asset_keys), {})[key.to_user_string()] = len(parents)
    for counts in by_execution_set.values():
        assert len(set(counts.values())) == 1, counts


def test_the_ui_launch_with_partition_names_and_an_asset_selection_succeeds(monkeypatch, tmp_path):
    # The code server reads these at start-up; nothing runs (no daemon), so no Spark.
    monkeypatch.setenv("SALES_PIPELINE_ENV", "local")
    monkeypatch.setenv("SALES_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("SALES_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    from .test_ui_path import ASSET_NODES, LAUNCH_BACKFILL

    with dg.instance_for_test() as instance, define_out_of_process_context(WORKSPACE, None, instance) as context:
        nodes = execute_dagster_graphql(context, ASSET_NODES).data["assetNodes"]
        all_keys = [node["assetKey"]["path"] for node in nodes]
        launched = execute_dagster_graphql(
            context,
            LAUNCH_BACKFILL,
            variables={"backfillParams": {"partitionNames": DAYS, "assetSelection": [{"path": p} for p in all_keys]}},
        )
        assert launched.errors is None, launched.errors
        outcome = launched.data["launchPartitionBackfill"]
        assert outcome["__typename"] == "LaunchBackfillSuccess", outcome
        backfill = instance.get_backfill(outcome["backfillId"])
        target = backfill.asset_backfill_data.target_subset
        assert {k.to_user_string() for k in target.asset_keys} == {"/".join(p) for p in all_keys}
        for key in target.asset_keys:
            assert sorted(target.partitions_subsets_by_asset_key[key].get_partition_keys()) == DAYS, key
