"""Guards memory in a long-lived SparkSession (tests, a Dagster code server, a Glue session):
the job materializes its units once with a lineage-cutting checkpoint, and a run must leave
none of those blocks (nor its cached dimension frames) behind."""
from __future__ import annotations

from .conftest import DAY_1, DAY_2, build_demo_lake


def _persistent_rdds(spark) -> int:
    return spark.sparkContext._jsc.sc().getPersistentRDDs().size()


def test_run_leaves_no_persisted_blocks(tmp_path, spark, curate):
    lake_root = tmp_path / "lake"
    lake_root.mkdir()
    build_demo_lake(lake_root)
    before = _persistent_rdds(spark)
    summary = curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=lambda message: None)
    assert summary["figures_by_day"][DAY_1]["raw_lines"] == 49
    assert _persistent_rdds(spark) == before


def test_release_frees_a_checkpoint(spark, curate):
    units = curate._materialize(spark.range(10).selectExpr("id AS n"))
    before = _persistent_rdds(spark)
    assert before >= 1
    curate._release(units)
    assert _persistent_rdds(spark) == before - 1
