"""Test doubles for the operations tests: an ETL that records its calls instead of starting
Spark, and committed raw manifests written straight into a lake folder."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pyarrow as pa

from sales_assets.ingest.landing import manifest_key
from sales_assets.resources.etl import EtlResource
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.transform import curated_manifest
from sales_assets.transform.assets import CURATED_KEYS, RECONCILIATION_CHECK, curated_sales


class _Completed:
    def __init__(self, results):
        self._results = results

    def get_results(self):
        return self._results


class RecordingEtl(EtlResource):
    """Stands in for the Glue job: appends each call's arguments to ``calls_path`` (JSON lines),
    writes ``curated_lines``/``quarantine_lines`` parquet rows per day and reports the figures
    the real script reports. ``overrides`` (day -> figure fields) make it lie, ``fail`` raises."""

    calls_path: str
    curated_lines: int = 0
    quarantine_lines: int = 0
    overrides: dict = {}
    fail: str | None = None

    def run_script(self, context, script, arguments, **options):
        with open(self.calls_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"script": script, **arguments}) + "\n")
        if self.fail:
            raise dg.Failure(description=self.fail)
        lake = LocalLakeResource(root=arguments["lake_root"])
        first = dt.date.fromisoformat(arguments["order_date"])
        last = dt.date.fromisoformat(arguments.get("order_date_end", arguments["order_date"]))
        figures = {}
        day = first
        while day <= last:
            for table, rows in (("order_lines", self.curated_lines), ("quarantine", self.quarantine_lines)):
                # Committed like the Glue job commits (files, then the record); zero rows is a
                # schema-only file.
                frame = pa.table({"net": pa.array([1.0] * rows, pa.float64())})
                curated_manifest.commit_day(lake, table, day, [frame])
            figures[day.isoformat()] = {
                "raw_lines": self.curated_lines + self.quarantine_lines,
                "curated_lines": self.curated_lines,
                "quarantine_lines": self.quarantine_lines,
                "superseded_lines": 0,
                "net": f"{self.curated_lines:.2f}",
                **self.overrides.get(day.isoformat(), {}),
            }
            day += dt.timedelta(days=1)
        results = []
        for name, key in CURATED_KEYS.items():
            metadata = {"dagster/row_count": self.curated_lines * len(figures) if name == "order_lines" else 0}
            if name == "order_lines":
                metadata["figures_by_day"] = figures
            results.append(dg.MaterializeResult(asset_key=key, metadata=metadata))
        return _Completed(results)


def calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def write_manifests(lake_root: Path, days: list[dt.date], orders: int | dict, lines: int) -> None:
    """A committed (page-less) raw manifest per day: ``orders`` per day, or a day -> orders mapping."""
    lake = LocalLakeResource(root=str(lake_root))
    for day in days:
        count = orders[day] if isinstance(orders, dict) else orders
        manifest = {"order_date": day.isoformat(), "run_id": "test", "record_count": count, "line_count": lines, "pages": []}
        lake.write_bytes(manifest_key(day), json.dumps(manifest).encode())


def reconcile_day(lake_root: Path, etl: EtlResource, day: dt.date):
    """Run the curated step of ``day`` on ``etl`` over a lake holding the day's raw manifest
    (10 orders, 12 lines); returns the run's result and its reconciliation check's evaluation."""
    write_manifests(lake_root, [day], orders=10, lines=12)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [curated_sales], instance=instance, partition_key=day.isoformat(), raise_on_error=False,
            resources={"etl": etl, "lake": LocalLakeResource(root=str(lake_root))},
        )
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == RECONCILIATION_CHECK]
    return result, evaluation


def day_range(first: dt.date, count: int) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range(count)]
