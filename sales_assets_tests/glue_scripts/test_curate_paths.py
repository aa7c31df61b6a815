"""Guards the two readings of an order's lines in the Glue script: the fast one (every element
typed at record level in one parse) and the per-record fallback (each element's JSON text parsed
on its own), taken when an element is not an object or a product_id's text could be a number's
or a boolean's. The same line element must get the same verdict, detail and money on either
path; a drift would quarantine or price a line differently depending on its neighbours. Also
pins the type probes that now run only on such ambiguous texts (ids given as numbers/booleans
versus strings spelling them)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sales_assets.source.contract import dumps_exact

from .conftest import line, order

DAY = "2026-11-20"

# Elements judged on both paths (at most 17 significant digits: beyond that the fallback beside a
# non-object element reads 18 places, a documented limit).
ELEMENTS = [
    line(1),
    line(1, quantity="3", unit_price="19.990", discount="0.25", tax_rate=Decimal("0.19")),
    line(1, quantity=Decimal("3.0"), unit_price=Decimal("1E+2")),
    line(1, quantity=2, unit_price=Decimal("2.01"), discount=Decimal("0.5")),
    line("1", product_id="P-1", discount=None, tax_rate=None),
    line(None),
    line(0),
    line(Decimal("1.5")),
    line(True),
    line(2**31),
    line(1, None),
    line(1, 17),
    line(1, True),
    line(1, {"id": 1}),
    line(1, ""),
    line(1, quantity=None),
    line(1, quantity="2.5"),
    line(1, quantity=1_000_001),
    line(1, quantity=False),
    line(1, quantity=-2),
    line(1, quantity="0"),
    line(1, unit_price=None),
    line(1, unit_price="1e3"),
    line(1, unit_price=Decimal("0.001")),
    line(1, unit_price=Decimal("10000000.01")),
    line(1, unit_price="-5"),
    line(1, unit_price=Decimal("1e400")),
    line(1, unit_price=Decimal("-1e400")),
    line(1, unit_price=[1]),
    line(1, discount="a"),
    line(1, discount=Decimal("1.5")),
    line(1, discount=Decimal("0.00000000001")),
    line(1, tax_rate=-1),
    line(1, tax_rate={"x": 1}),
    line(1, extra=[1, {"a": 2}]),
    {},
]
FALLBACK_NEIGHBOURS = {
    "non-object element": "text",
    "number-like product_id": line(9, "42"),
    "boolean-like product_id": line(9, "true"),
}
COMPARED = (
    "kind", "reason", "detail", "line_number", "product_id", "sku", "quantity", "unit_price",
    "discount", "tax_rate", "gross", "discount_amount", "net", "tax_amount", "total",
)
# Type probes of ids: only the JSON type decides, not what the text spells.
ID_CASES = [
    (order("O-1", [line(1, "42")]), [None]),
    (order("O-1", [line(1, 42)]), ["missing_product_id"]),
    (order("O-1", [line(1, "true")]), [None]),
    (order("O-1", [line(1, False)]), ["missing_product_id"]),
    (order("O-1", [line(1, "-7.5")]), [None]),
    (order("O-1", [line(1, Decimal("-1e999"))]), ["missing_product_id"]),
    (order("123", [line(1)]), [None]),
    (order(123, [line(1)]), ["missing_order_id"]),
    (order(Decimal("1e999"), [line(1)]), ["missing_order_id"]),
    (order("O-1", [line(1)], customer={"customer_id": "7"}), [None]),
    (order("O-1", [line(1)], customer={"customer_id": 7}), ["missing_customer_id"]),
    (order("O-1", [line(1)], customer={"customer_id": Decimal("-1e999")}), ["missing_customer_id"]),
]


def _records() -> dict[str, str]:
    records = {}
    for index, element in enumerate(ELEMENTS):
        records[f"fast-{index}"] = dumps_exact(order(f"O-{index}", [element]))
        for name, neighbour in FALLBACK_NEIGHBOURS.items():
            records[f"{name}-{index}"] = dumps_exact(order(f"O-{index}", [element, neighbour]))
    for index, (record, _) in enumerate(ID_CASES):
        records[f"id-{index}"] = dumps_exact(record)
    return records


RECORDS = _records()


@pytest.fixture(scope="module")
def units(spark, curate):
    names = list(RECORDS)
    rows = [(dt.date.fromisoformat(DAY), page, 1, "run-1", RECORDS[name], True) for page, name in enumerate(names)]
    frame = spark.createDataFrame(
        rows, "order_date date, source_page int, position int, ingest_run_id string, value string, line_ok boolean"
    )
    by_name: dict[str, list[dict]] = {}
    for row in curate.validate_lines(frame).collect():
        by_name.setdefault(names[row["source_page"]], []).append(row.asDict())
    return {name: sorted(found, key=lambda unit: unit["unit_index"]) for name, found in by_name.items()}


@pytest.mark.parametrize("index", range(len(ELEMENTS)))
@pytest.mark.parametrize("neighbour", list(FALLBACK_NEIGHBOURS))
def test_an_element_gets_the_same_verdict_on_the_fallback_path(units, index, neighbour):
    fast = units[f"fast-{index}"]
    fallback = units[f"{neighbour}-{index}"]
    assert len(fast) == 1 and len(fallback) == 2
    assert {k: fallback[0][k] for k in COMPARED} == {k: fast[0][k] for k in COMPARED}


def test_the_neighbours_themselves_are_judged(units):
    assert units["non-object element-0"][1]["reason"] == "line_not_object"
    for name in ("number-like product_id-0", "boolean-like product_id-0"):
        assert units[name][1]["reason"] is None and units[name][1]["line_number"] == 9


def test_fast_path_values_are_exact(units):
    (unit,) = units["fast-1"]
    assert unit["kind"] == "curated" and unit["quantity"] == 3
    assert (unit["unit_price"], unit["discount"], unit["tax_rate"]) == (
        Decimal("19.99"), Decimal("0.25"), Decimal("0.19"))
    assert [unit[k] for k in ("gross", "discount_amount", "net", "tax_amount", "total")] == [
        Decimal("59.97"), Decimal("14.99"), Decimal("44.98"), Decimal("8.55"), Decimal("53.53")]


@pytest.mark.parametrize("index", range(len(ID_CASES)))
def test_id_type_probes(units, index):
    assert [unit["reason"] for unit in units[f"id-{index}"]] == ID_CASES[index][1]
