"""Guards the curated step's reconciliation check against the lake as readers see it: it counts
exactly the rows the day's commit records list (a crashed run's file beside them changes
nothing), and a day the job did not commit (no record) fails the blocking check with a message
naming the day and the missing record, instead of being counted as zero rows or crashing."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.transform import curated_manifest
from sales_assets_tests.operations.fakes import RecordingEtl, reconcile_day

DAY = dt.date(2025, 3, 4)


class UncommittedQuarantineEtl(RecordingEtl):
    """The fake job, except that it dies before committing curated/quarantine for the day."""

    def run_script(self, context, script, arguments, **options):
        completed = super().run_script(context, script, arguments, **options)
        LocalLakeResource(root=arguments["lake_root"]).delete_key(curated_manifest.record_key("quarantine", DAY))
        return completed


def test_the_check_counts_committed_rows_only(tmp_path):
    class WithStaleFile(RecordingEtl):
        def run_script(self, context, script, arguments, **options):
            completed = super().run_script(context, script, arguments, **options)
            stale = tmp_path / "lake" / curated_manifest.day_prefix("order_lines", DAY) / "part-00000-crashed.snappy.parquet"
            pq.write_table(pa.table({"net": [1.0] * 5}), stale)
            return completed

    etl = WithStaleFile(calls_path=str(tmp_path / "calls.jsonl"), curated_lines=11, quarantine_lines=1)
    result, evaluation = reconcile_day(tmp_path / "lake", etl, DAY)
    assert result.success and evaluation.passed
    assert evaluation.metadata["by_day"].value[DAY.isoformat()]["curated_rows_in_lake"] == 11


def test_a_day_without_a_record_fails_the_check_by_name(tmp_path):
    etl = UncommittedQuarantineEtl(calls_path=str(tmp_path / "calls.jsonl"), curated_lines=11, quarantine_lines=1)
    result, evaluation = reconcile_day(tmp_path / "lake", etl, DAY)
    assert not result.success and not evaluation.passed
    (problem,) = evaluation.metadata["problems"].value
    assert "curated/quarantine order_date=2025-03-04 has no committed record" in problem
