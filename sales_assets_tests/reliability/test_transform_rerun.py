"""Guards faults 15 and 22: a transform that dies mid-way (by exception inside the partition
swap, or killed so hard that it leaves its ``_tmp_`` staging folders behind) must never leave a
partial curated partition where readers look, and a re-run must converge; re-running a
successful day must give identical curated rows (a content hash over sorted rows) and identical
warehouse rows and sums. Uses the session SparkSession and the hand-built demo lake."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.transform.assets import curated_prefix
from sales_assets.warehouse import loader
from sales_assets_tests.glue_scripts.conftest import DAY_1, DAY_2, build_demo_lake, load_script

DAYS = [dt.date.fromisoformat(DAY_1), dt.date.fromisoformat(DAY_2)]

pytestmark = pytest.mark.slow


def quiet(message):
    pass


@pytest.fixture(scope="module")
def curate():
    return load_script()


def curated_hash(lake: LocalLakeResource, tables) -> dict[str, str]:
    """sha256 over each curated table's sorted rows (all days), read the way readers read."""
    hashes = {}
    for table in tables:
        rows = []
        for day in DAYS:
            frame = lake.read_parquet(curated_prefix(table, day))
            rows += [json.dumps(row, default=str, sort_keys=True) for row in (frame.to_pylist() if frame else [])]
        hashes[table] = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
    return hashes


def warehouse_state(path: Path, lake_root: Path):
    """Load both days, then every warehouse row (load timestamps aside) and the day figures."""
    with DuckDBWarehouseResource(path=str(path), lock_timeout_seconds=0).session() as session:
        loader.load_days(session, str(lake_root), DAYS)
        rows = {}
        for table in loader.WAREHOUSE_TABLES:
            columns = [c for c, _ in loader.table_schemas()[table] if c != "loaded_at"]
            rows[table] = session.connection.execute(
                f"SELECT {', '.join(columns)} FROM sales.{table} ORDER BY ALL").fetchall()
        return rows, loader.fact_figures(session, DAYS)


def test_a_crashed_transform_is_invisible_and_reruns_give_identical_rows(tmp_path, spark, curate, monkeypatch):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)
    lake = LocalLakeResource(root=str(lake_root))
    warehouse_path = tmp_path / "warehouse.duckdb"

    curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=quiet)
    first_hash = curated_hash(lake, curate.TABLES)
    first_rows, first_figures = warehouse_state(warehouse_path, lake_root)
    assert first_figures[DAYS[0]][0] > 0 and first_rows["fact_sales"]

    # One re-run of the successful days that crashes by exception at its very last partition
    # swap (ENOSPC on the rename): every earlier swap already put re-run output in place, the
    # last table's previous partition is put back. Readers must see whole partitions only, and
    # re-run output identical to the first run's.
    real_rename = os.rename
    swaps = []

    def failing_rename(src, dst):
        if "_tmp_" in str(src) and str(src).endswith("order_date=" + str(dst).rsplit("order_date=", 1)[-1]):
            swaps.append(dst)
            if len(swaps) == len(curate.TABLES) * len(DAYS):
                raise OSError(28, "No space left on device (injected)")
        return real_rename(src, dst)

    monkeypatch.setattr(curate.os, "rename", failing_rename)
    with pytest.raises(OSError, match="injected"):
        curate.run(spark, str(lake_root), [DAY_1, DAY_2], log=quiet)
    monkeypatch.setattr(curate.os, "rename", real_rename)
    assert len(swaps) == len(curate.TABLES) * len(DAYS)
    assert curated_hash(lake, curate.TABLES) == first_hash  # re-run output identical, nothing partial
    assert not list(lake_root.glob("curated/*/_tmp_*"))  # the exception path removed its staging
    for table in curate.TABLES:
        for day in (DAY_1, DAY_2):
            files = list((lake_root / "curated" / table / f"order_date={day}").glob("*.parquet"))
            assert len(files) == 1
            pq.read_metadata(io.BytesIO(files[0].read_bytes()))  # a whole parquet file

    # Crash by kill: a process killed mid-swap leaves its staging folder, holding a partial copy
    # of the new partition and the moved-aside old one. Readers must not see either.
    for table in curate.TABLES:
        day_dir = lake_root / "curated" / table / f"order_date={DAY_1}"
        leftover = lake_root / "curated" / table / "_tmp_killed0000"
        shutil.copytree(day_dir, leftover / f"order_date={DAY_1}")
        shutil.copytree(day_dir, leftover / "_replaced")
        (leftover / f"order_date={DAY_1}" / "part-99999-partial.snappy.parquet").write_bytes(b"PAR1\x00torn")
    assert curated_hash(lake, curate.TABLES) == first_hash
    # The warehouse re-load of the re-run days, leftovers present: identical rows and sums.
    assert warehouse_state(warehouse_path, lake_root) == (first_rows, first_figures)
