"""Guards fault 15's narrowest window: the Glue script swaps a local curated partition with two
renames (old partition -> ``_tmp_<uuid>/_replaced``, staged -> target). A process killed
between them leaves no ``order_date=D`` folder at all, and the loader reads a missing folder
as an empty day, so a warehouse load before the transform is re-run would replace a loaded day
by zero rows. Found by this suite; the fix belongs in glue_scripts/ (restore an orphaned
``_replaced`` whose target is missing before anything reads or writes the table, or a swap
that never leaves the target absent) or in the loader (refuse a missing day folder), hence
xfail(strict) until it lands."""
from __future__ import annotations

import datetime as dt
import shutil

import pytest

from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.warehouse import loader
from sales_assets_tests.warehouse.curated_builders import (
    day_folder,
    expected_figures,
    make_line,
    write_curated_day,
)

DAY = dt.date(2026, 11, 20)
TABLES = ("order_lines", "dim_customer", "dim_product")


def kill_between_the_two_renames(lake_root, table):
    """The state write_day leaves when killed after moving the old partition aside."""
    staging = lake_root / "curated" / table / "_tmp_killed0000"
    staging.mkdir(parents=True)
    shutil.move(str(day_folder(lake_root, table, DAY)), str(staging / "_replaced"))
    shutil.copytree(staging / "_replaced", staging / f"order_date={DAY}")  # the staged new copy


@pytest.mark.xfail(strict=True, reason=(
    "glue_scripts/curate_sales_orders.py write_day: a kill between its two renames leaves no curated "
    "partition, which the loader loads as an empty day (no recovery of _tmp_*/_replaced on start)"))
def test_a_kill_between_the_swap_renames_never_empties_a_loaded_day(tmp_path):
    lake_root = tmp_path / "lake"
    lines = [make_line("O-1", 1, DAY, quantity=2, unit_price="9.99"), make_line("O-2", 1, DAY)]
    write_curated_day(lake_root, DAY, lines)
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb"), lock_timeout_seconds=0)
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY])
        assert loader.fact_figures(session, [DAY])[DAY] == expected_figures(lines)

    for table in TABLES:
        kill_between_the_two_renames(lake_root, table)

    with warehouse.session() as session:
        try:
            loader.load_days(session, str(lake_root), [DAY])
        except Exception:  # noqa: BLE001 - refusing the load is an acceptable outcome too
            pass
        assert loader.fact_figures(session, [DAY])[DAY] == expected_figures(lines)
