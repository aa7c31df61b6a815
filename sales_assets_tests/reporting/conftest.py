"""A small loaded DuckDB warehouse shared by the reporting tests."""
from __future__ import annotations

import datetime as dt

import pytest

from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.warehouse import loader
from sales_assets_tests.warehouse.curated_builders import make_line, make_quarantined, write_curated_day, write_quarantine_day

DAY_1 = dt.date(2026, 11, 20)
DAY_2 = dt.date(2026, 11, 21)


def day_lines():
    day_1 = [
        make_line("O-1", 1, DAY_1, quantity=2, unit_price="10.00", product_id="P1"),
        make_line("O-1", 2, DAY_1, quantity=1, unit_price="5.00", discount="0.2", product_id="P2"),
        make_line("O-2", 1, DAY_1, quantity=1, unit_price="100.00", customer_id="C2", product_id="P3"),
        make_line("O-3", 1, DAY_1, quantity=1, unit_price="50.00", customer_id="C3", product_id="P1"),
    ]
    day_1[3]["status"] = "returned"
    day_1[2]["channel"], day_1[2]["store_id"] = "store", "S-1"
    day_1[2]["category"] = "garden"
    day_2 = [make_line("O-4", 1, DAY_2, quantity=3, unit_price="7.00", customer_id="C2", product_id="P2")]
    eur = make_line("O-5", 1, DAY_2, quantity=1, unit_price="9.99", customer_id="C9", product_id="P9")
    eur["currency"], eur["customer_country"], eur["customer_region"] = "EUR", "DE", "Berlin"
    eur["status"] = "cancelled"
    eur2 = make_line("O-6", 1, DAY_2, quantity=2, unit_price="4.50", customer_id="C9", product_id="P9")
    eur2["currency"], eur2["customer_country"], eur2["customer_region"] = "EUR", "DE", "Berlin"
    return {DAY_1: day_1, DAY_2: day_2 + [eur, eur2]}


@pytest.fixture
def loaded_warehouse(tmp_path, lake_root):
    for day, lines in day_lines().items():
        write_curated_day(lake_root, day, lines)
    write_quarantine_day(lake_root, DAY_1, [make_quarantined("Q-1", 1, DAY_1), make_quarantined("Q-2", 1, DAY_1, "bad_status")])
    resource = DuckDBWarehouseResource(path=str(tmp_path / "wh" / "warehouse.duckdb"), lock_timeout_seconds=0)
    with resource.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1, DAY_2])
    return resource
