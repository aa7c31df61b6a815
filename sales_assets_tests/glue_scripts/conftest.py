"""Helpers for the Glue script tests: load the standalone script as a module, hand-build lakes."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

# Spark's Python workers must run this interpreter (pyarrow, the script's imports); set before
# the session-wide SparkSession is created, which happens after collection.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

SCRIPT_PATH = Path(__file__).resolve().parents[2] / "glue_scripts" / "curate_sales_orders.py"
MODULE_NAME = "curate_sales_orders"


def load_script():
    """The Glue script imported from its file (Glue ships it alone, so it is no package module)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    spec = importlib.util.spec_from_file_location(MODULE_NAME, SCRIPT_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def curate():
    return load_script()


def line_units(raw_line: str) -> int:
    """Line units of one raw line, counted independently of the script (spec rules)."""
    try:
        record = json.loads(raw_line)
    except ValueError:
        return 1
    if not isinstance(record, dict):
        return 1
    lines = record.get("lines")
    return len(lines) if isinstance(lines, list) and lines else 1


def write_raw_day(lake_root: Path, order_date: str, run_id: str, pages: list[list[str]]) -> dict:
    """Land pages of raw lines plus a committed manifest, as the ingest step does."""
    day_dir = lake_root / "raw" / "sales_orders" / f"order_date={order_date}"
    run_dir = day_dir / f"run_id={run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, lines in enumerate(pages, start=1):
        body = "".join(line + "\n" for line in lines).encode("utf-8")
        key = f"raw/sales_orders/order_date={order_date}/run_id={run_id}/page-{number:05d}.jsonl"
        (lake_root / key).write_bytes(body)
        entries.append({
            "page": number, "key": key, "records": len(lines),
            "lines": sum(line_units(line) for line in lines),
            "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
        })
    manifest = {
        "order_date": order_date, "run_id": run_id, "committed_at": "2026-11-21T01:02:03Z",
        "source": {"base_url": "http://127.0.0.1:1", "as_of": "2026-11-21T01:00:00Z"},
        "record_count": sum(entry["records"] for entry in entries),
        "line_count": sum(entry["lines"] for entry in entries),
        "pages": entries,
    }
    (day_dir / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def order(order_id, lines, **fields) -> dict:
    """A valid order for 2026-11-20 unless ``fields`` override it."""
    record = {
        "order_id": order_id,
        "order_timestamp": "2026-11-20T10:00:00Z",
        "updated_at": "2026-11-20T10:00:00Z",
        "status": "completed",
        "channel": "web",
        "store_id": None,
        "currency": "USD",
        "customer": {"customer_id": "C-1", "name": "Ann", "email": "ann@example.com",
                     "segment": "consumer", "country": "DE", "region": "BE", "city": "Berlin"},
        "lines": lines,
    }
    record.update(fields)
    return record


def line(number, product_id="P-9", quantity=1, unit_price=10.0, **fields) -> dict:
    """A valid order line unless ``fields`` override it."""
    record = {"line_number": number, "product_id": product_id, "sku": f"SKU-{product_id}",
              "product_name": f"Product {product_id}", "category": "tools", "brand": "Acme",
              "quantity": quantity, "unit_price": unit_price}
    record.update(fields)
    return record


def dumps(record) -> str:
    return json.dumps(record)


DAY_1 = "2026-11-20"
DAY_2 = "2026-11-21"

# Day 1, page 1 and page 2: every reason code, re-sent orders, coercible strings, extra fields.
_C2_OLD = {"customer_id": "C-2", "name": "Bo", "city": "Bonn"}
_C2_NEW = {"customer_id": "C-2", "name": "Bo", "city": "Berlin"}
DAY_1_PAGE_1 = [
    dumps(order(
        "O-1",
        [line(1, "P-1", quantity="3", unit_price="19.99", discount=0.1, tax_rate=0.0825,
              product_name="Widget v2", gift_wrap=True),
         line(2, "P-2", quantity=1, unit_price=2.01, discount=0.5)],
        order_timestamp="2026-11-21T02:00:00+05:00", updated_at="2026-11-20T21:05:00Z",
        loyalty_tier="gold",
    )),
    dumps(order("O-2", [line(1, unit_price=99.0)], updated_at="2026-11-20T10:00:00Z", customer=_C2_OLD)),
    dumps(order("O-3", [line(1), line(2), line(3)], updated_at="2026-11-20T12:00:00Z", customer=_C2_OLD)),
    dumps(order("O-4", [line(1, quantity=1, unit_price=7.5)], updated_at="2026-11-20T09:00:00Z",
                customer={"customer_id": "C-3"})),
    dumps(order("O-4", [line(1, quantity=2, unit_price=7.5)], updated_at="2026-11-20T09:00:00Z",
                customer={"customer_id": "C-3"})),
    dumps(order("O-5", [line(1, unit_price=3.0)], updated_at="2026-11-20T08:00:00Z",
                customer={"customer_id": "C-4"})),
    "[1, 2]",
    "not json {",
    '{"order_id": "O-N", "x": NaN}',
    dumps(order("", [line(1), line(2)])),
    dumps({"status": "completed"}),
    dumps(order("O-ML1", [])),
    dumps(order("O-ML2", "x")),
    dumps(order("O-TS", [line(1)], order_timestamp="2026-11-20T10:00:00")),
    dumps(order("O-WD", [line(1), line(2)], order_timestamp="2026-11-20T23:30:00-05:00")),
    dumps(order("O-UP", [line(1)], updated_at=12345)),
    dumps(order("O-ST", [line(1)], status="shipped")),
    dumps(order("O-CH", [line(1)], channel="fax")),
    dumps(order("O-CU", [line(1)], currency="usd")),
    dumps(order("O-CI", [line(1)], customer="C-9")),
    dumps(order("O-CJ", [line(1)], customer={"customer_id": ""})),
]
DAY_1_PAGE_2 = [
    dumps(order("O-2", [line(1, unit_price=10.0), line(2, unit_price=20.0)],
                updated_at="2026-11-20T11:00:00Z", customer=_C2_OLD)),
    dumps(order("O-3", [line(1, unit_price=4.0)], updated_at="2026-11-20T12:00:00Z",
                customer=_C2_NEW)),
    dumps(order("O-5", [line(1, unit_price=999.0)], updated_at="garbage",
                customer={"customer_id": "C-4"})),
    dumps(order(
        "O-L",
        [
            5,
            line(0),
            line("x"),
            line(1, "P-1", quantity=2, unit_price=5.0, product_name="Widget"),
            line(1, "P-2"),
            line(2, ""),
            line(3, quantity=2.5),
            line(4, quantity=True),
            line(5, quantity=0),
            line(6, unit_price=1.234),
            line(7, unit_price="abc"),
            line(8, unit_price=-1),
            line(9, discount=1.5),
            line(10, discount=0.12345678901),
            line(11, tax_rate="x"),
            line(12.0, "P-3", quantity=3.0, unit_price=10, discount=None),
            line(13, quantity=1000001),
            line(14, unit_price=10000000.01),
            line(15, "P-4", quantity=1, unit_price=0.1, discount=0.05, tax_rate=0.5),
        ],
        updated_at="2026-11-20T20:00:00Z", customer={"customer_id": "C-5"},
    )),
]
# Landed by a run that never committed: must never be read.
STALE_PAGE = [dumps(order("O-X", [line(1)]))]
DAY_2_PAGE_1 = [
    dumps(order("O-1", [line(1, "P-1", unit_price=1.0)], order_timestamp="2026-11-21T10:00:00Z",
                updated_at="2026-11-21T10:00:00Z")),
    dumps(order("O-6", [line(1, "P-5", unit_price=2.5)], order_timestamp="2026-11-21T11:00:00Z",
                updated_at="2026-11-21T11:00:00Z")),
]


def build_demo_lake(lake_root: Path) -> dict:
    """The two-day demo lake; returns the manifests by date."""
    manifests = {
        DAY_1: write_raw_day(lake_root, DAY_1, "20261121T010203Z-aaaaaa", [DAY_1_PAGE_1, DAY_1_PAGE_2]),
        DAY_2: write_raw_day(lake_root, DAY_2, "20261122T010203Z-bbbbbb", [DAY_2_PAGE_1]),
    }
    stale = lake_root / "raw/sales_orders" / f"order_date={DAY_1}" / "run_id=stale" / "page-00001.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text("".join(row + "\n" for row in STALE_PAGE), encoding="utf-8")
    return manifests
