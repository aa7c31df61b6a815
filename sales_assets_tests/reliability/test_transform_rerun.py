"""Guards faults 15 and 22 (and the transform half of D): a transform that dies mid-way (by
an exception such as ENOSPC while committing, or killed so hard that it leaves its staging
folders and moved files behind) must never change what readers see of a curated day: they
read exactly the files its committed record lists, and a day it left with tables of two runs
is refused by the warehouse load (fault C) until the re-run. The re-run must converge (one record, its
files, nothing else), and re-running a successful day must give identical curated rows (a
content hash over sorted rows) and identical warehouse rows and sums. Uses the session
SparkSession and the hand-built demo lake."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.transform import curated_manifest
from sales_assets.warehouse import loader
from sales_assets_tests.glue_scripts.conftest import DAY_1, DAY_2, build_demo_lake
from sales_assets_tests.reliability.warehouse_state import table_rows

DAYS = [dt.date.fromisoformat(DAY_1), dt.date.fromisoformat(DAY_2)]

pytestmark = pytest.mark.slow


def quiet(message):
    pass


def curated_hash(lake: LocalLakeResource, tables) -> dict[str, str]:
    """sha256 over each curated table's sorted rows (all days), read the way readers read."""
    hashes = {}
    for table in tables:
        rows = []
        for day in DAYS:
            frame = lake.read_curated(table, day)
            rows += [json.dumps(row, default=str, sort_keys=True) for row in frame.to_pylist()]
        hashes[table] = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
    return hashes


def assert_converged(lake_root: Path, lake: LocalLakeResource, tables) -> None:
    """Each day folder holds its record and exactly the files it lists; no staging anywhere."""
    for table in tables:
        assert sorted(p.name for p in (lake_root / "curated" / table).iterdir()) == [f"order_date={d}" for d in DAYS]
        for day in DAYS:
            listed = [key.rsplit("/", 1)[1] for key in lake.curated_files(table, day)]
            folder = lake_root / "curated" / table / f"order_date={day}"
            assert sorted(p.name for p in folder.iterdir()) == sorted(listed + ["_manifest.json"])
            for name in listed:
                pq.read_metadata(io.BytesIO((folder / name).read_bytes()))  # a whole parquet file


def warehouse_state(path: Path, lake_root: Path):
    """Load both days, then every warehouse row (load timestamps aside) and the day figures."""
    with DuckDBWarehouseResource(path=str(path), lock_timeout_seconds=0).session() as session:
        loader.load_days(session, str(lake_root), DAYS)
        return table_rows(session.connection, ignoring=("loaded_at",)), loader.fact_figures(session, DAYS)


def test_a_crashed_transform_is_invisible_and_reruns_give_identical_rows(tmp_path, spark, curate, monkeypatch):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)
    lake = LocalLakeResource(root=str(lake_root))
    warehouse_path = tmp_path / "warehouse.duckdb"

    curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=quiet)
    first_hash = curated_hash(lake, curate.TABLES)
    first_rows, first_figures = warehouse_state(warehouse_path, lake_root)
    assert first_figures[DAYS[0]][0] > 0 and first_rows["fact_sales"]

    # One re-run of the successful days that fails by exception (ENOSPC) writing its very last
    # commit record: every earlier table-day is committed with re-run output, the last one keeps
    # its previous record, next to the re-run's moved (unlisted) file. Readers must see whole
    # days only, and re-run output identical to the first run's.
    real_write = curate.LocalFiles.write_atomic
    records = []

    def failing_write(self, key, data):
        records.append(key)
        if len(records) == len(curate.TABLES) * len(DAYS):
            raise OSError(28, "No space left on device (injected)")
        return real_write(self, key, data)

    monkeypatch.setattr(curate.LocalFiles, "write_atomic", failing_write)
    with pytest.raises(OSError, match="injected"):
        curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=quiet)
    monkeypatch.setattr(curate.LocalFiles, "write_atomic", real_write)
    assert len(records) == len(curate.TABLES) * len(DAYS)
    assert curated_hash(lake, curate.TABLES) == first_hash  # re-run output identical, nothing partial
    assert not list(lake_root.glob("curated/*/*/_staging_*"))  # the exception path removed its staging
    failed_folder = (lake_root / records[-1]).parent
    assert len(list(failed_folder.glob("part-*.parquet"))) == 2  # the old, listed file + the unlisted new one

    # Crash by kill: a process killed mid-commit leaves its staging folder (a partial file in
    # it), files it had moved in but not listed, and (from before records) a legacy _tmp_ folder.
    for table in curate.TABLES:
        day_dir = lake_root / "curated" / table / f"order_date={DAY_1}"
        staging = day_dir / "_staging_killed0000"
        staging.mkdir()
        (staging / "part-00000-partial.snappy.parquet").write_bytes(b"PAR1\x00torn")
        (day_dir / "part-00000-killed0000.snappy.parquet").write_bytes(b"PAR1\x00torn")
        shutil.copytree(day_dir, lake_root / "curated" / table / "_tmp_killed0000" / "_replaced",
                        ignore=shutil.ignore_patterns("_staging_*"))
    assert curated_hash(lake, curate.TABLES) == first_hash
    # The failed re-run committed every other table of the last day but not this one: the day
    # mixes two runs, so the load refuses it (naming it) and the warehouse keeps its rows.
    mixed_day = failed_folder.name.split("=", 1)[1]
    with pytest.raises(curated_manifest.CuratedRunMismatchError,
                       match=rf"order_date={mixed_day} mixes the output of 2 transform runs.*Re-run the transform"):
        warehouse_state(warehouse_path, lake_root)
    with DuckDBWarehouseResource(path=str(warehouse_path), lock_timeout_seconds=0).session() as session:
        assert loader.fact_figures(session, DAYS) == first_figures

    # The re-run after the failure (space freed) converges and removes every leftover.
    curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=quiet)
    assert curated_hash(lake, curate.TABLES) == first_hash
    assert_converged(lake_root, lake, curate.TABLES)
    assert warehouse_state(warehouse_path, lake_root) == (first_rows, first_figures)
