"""The curated day the commit-window tests share: one day committed by an earlier run (OLD) and
its re-run (NEW: one order changed, one dropped, one added), staged the way Spark leaves a Glue
job's output before the script's own `commit_day` moves it in; and the script as a fixture."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sales_assets_tests.glue_scripts.conftest import load_script
from sales_assets_tests.warehouse.curated_builders import curated_frames, make_line

DAY = dt.date(2026, 11, 20)
OLD = [make_line("O-1", 1, DAY, quantity=2, unit_price="9.99"), make_line("O-2", 1, DAY)]
NEW = [make_line("O-1", 1, DAY, quantity=3, unit_price="9.99"), make_line("O-3", 1, DAY, unit_price="7.25")]
TABLES = ("order_lines", "dim_customer", "dim_product", "quarantine")


@pytest.fixture(scope="module")
def curate():
    """The Glue script, imported from its file."""
    return load_script()


def stage_day(lake_root: Path, lines: list[dict], run_id: str, tables=TABLES) -> dict[str, str]:
    """What Spark leaves in each table's staging folder of DAY before the commit (one part file
    and `_SUCCESS`): table -> staging key."""
    frames = curated_frames(lines)
    staged = {}
    for table in tables:
        key = f"curated/{table}/order_date={DAY}/_staging_{run_id}"
        folder = lake_root / key
        folder.mkdir(parents=True)
        pq.write_table(frames[table], folder / f"part-00000-{run_id}-c000.snappy.parquet")
        (folder / "_SUCCESS").write_bytes(b"")
        staged[table] = key
    return staged
