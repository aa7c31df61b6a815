"""Guards the cross-table consistency of a curated day: the Glue job commits a day's four tables
one after the other (each with its own `_manifest.json`), all under its run id. A kill between
two tables' commits leaves a day whose order_lines come from the new run and whose quarantine
and dimensions come from the old one. Neither the warehouse loader nor the transform's blocking
reconciliation check may accept that mix: both must refuse the day with a message naming it and
telling to re-run the transform, the warehouse must keep its previous copy, and once the re-run
has committed every table the day loads normally."""
from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.transform import curated_manifest
from sales_assets.warehouse import loader
from sales_assets_tests.operations.fakes import RecordingEtl, reconcile_day
from sales_assets_tests.reliability.conftest import DAY, NEW, OLD, TABLES, stage_day
from sales_assets_tests.warehouse.curated_builders import expected_figures


def glue_commit(curate, lake_root: Path, lines: list[dict], run_id: str, tables=TABLES) -> None:
    """Commit `tables` of DAY with the Glue script's own commit_day, as job run `run_id` does."""
    lake = curate.Lake(str(lake_root))
    for table, staging in stage_day(lake_root, lines, run_id, tables).items():
        curate.commit_day(curate.LocalFiles(lake), lake, table, DAY.isoformat(), staging, run_id)


def test_the_glue_file_names_carry_the_run_and_one_record_cannot_mix_runs(curate, tmp_path):
    run = uuid.uuid4().hex
    glue_commit(curate, tmp_path, OLD, run)
    assert curated_manifest.require_one_run_per_day(str(tmp_path), [DAY], TABLES) == {DAY: run}
    assert curated_manifest.record_run_id(["part-00000-handmade.parquet"], "r") is None
    with pytest.raises(curated_manifest.CuratedRunMismatchError, match="2 transform runs"):
        curated_manifest.record_run_id([f"part-00000-{'a' * 32}.snappy.parquet", f"part-00001-{'b' * 32}.snappy.parquet"], "r")


def test_a_day_mixing_two_runs_is_refused_by_the_loader_and_the_rerun_loads(curate, tmp_path):
    lake_root = tmp_path / "lake"
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb"))
    glue_commit(curate, lake_root, OLD, uuid.uuid4().hex)
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY])
        assert loader.fact_figures(session, [DAY])[DAY] == expected_figures(OLD)

    rerun = uuid.uuid4().hex
    glue_commit(curate, lake_root, NEW, rerun, tables=("order_lines",))  # killed after its first table
    with warehouse.session() as session:
        with pytest.raises(curated_manifest.CuratedRunMismatchError,
                           match=rf"order_date={DAY} mixes .*order_lines: {rerun}.*Re-run the transform .* for {DAY}"):
            loader.load_days(session, str(lake_root), [DAY])
        assert loader.fact_figures(session, [DAY])[DAY] == expected_figures(OLD)

    glue_commit(curate, lake_root, NEW, rerun, tables=TABLES[1:])  # the re-run finishes the day
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY])
        assert loader.fact_figures(session, [DAY])[DAY] == expected_figures(NEW)


class KilledBetweenTablesEtl(RecordingEtl):
    """The fake job, except that a second run then commits order_lines only (and dies)."""

    def run_script(self, context, script, arguments, **options):
        completed = super().run_script(context, script, arguments, **options)
        lake = LocalLakeResource(root=arguments["lake_root"])
        frame = pa.table({"net": pa.array([1.0] * self.curated_lines, pa.float64())})
        curated_manifest.commit_day(lake, "order_lines", DAY, [frame], run_id=uuid.uuid4().hex)
        return completed


@pytest.mark.parametrize("etl_class, passed", [(RecordingEtl, True), (KilledBetweenTablesEtl, False)])
def test_the_reconciliation_check_fails_a_day_mixing_two_runs(tmp_path, etl_class, passed):
    etl = etl_class(calls_path=str(tmp_path / "calls.jsonl"), curated_lines=10, quarantine_lines=2)
    _, evaluation = reconcile_day(tmp_path / "lake", etl, DAY)
    assert evaluation.passed is passed
    if not passed:
        assert f"order_date={DAY} mixes the output of 2 transform runs" in evaluation.description
        assert "Re-run the transform" in evaluation.description


def test_the_data_api_load_refuses_a_mixed_day_before_writing_any_copy_manifest():
    import boto3
    from moto import mock_aws

    from sales_assets.warehouse import data_api_load
    from sales_assets.warehouse.session import COPY_MANIFEST_FOLDER
    from sales_assets_tests.warehouse.curated_builders import put_s3_day

    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake-bucket")
        # order_lines from the re-run, the other tables still from the first run.
        for table in loader.STAGES:
            run = new if table == "order_lines" else old
            put_s3_day(s3, "lake-bucket", "lake", table, DAY, {f"part-00000-{run}.snappy.parquet": b"PAR1"})
        with pytest.raises(curated_manifest.CuratedRunMismatchError, match=str(DAY)):
            data_api_load.write_day_manifests(s3, "s3://lake-bucket/lake", [DAY])
        listed = s3.list_objects_v2(Bucket="lake-bucket", Prefix=f"lake/{COPY_MANIFEST_FOLDER}").get("KeyCount", 0)
        assert listed == 0
        # Once the re-run has committed every table, the same call writes the manifests.
        for table in loader.STAGES:
            put_s3_day(s3, "lake-bucket", "lake", table, DAY, {f"part-00000-{new}.snappy.parquet": b"PAR1"})
        assert data_api_load.write_day_manifests(s3, "s3://lake-bucket/lake", [DAY]) == dict.fromkeys(loader.STAGES, 1)
