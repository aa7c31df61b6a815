"""The required-columns rules the blocking catalog check applies to one partition's data.

Risk guarded: a day whose data lost a column the transform needs (or sends it in a shape the
transform cannot read) passing the check, or one malformed record blocking a whole day that
the transform would simply quarantine line by line.
"""
from __future__ import annotations

import json
from decimal import Decimal

from sales_assets.catalog.contract import REQUIRED_FIELDS, contract_problems, contract_view
from sales_assets.catalog.schema import infer_schema

from .fake_lake import order


def problems_of(records):
    parsed = [json.loads(json.dumps(r), parse_float=Decimal) for r in records]
    return contract_problems(infer_schema(contract_view(r) for r in parsed).columns)


def test_contract_clean_orders_pass_and_every_path_is_reported():
    problems, found = problems_of([order("O-1"), order("O-2")])
    assert problems == []
    assert set(found) == set(REQUIRED_FIELDS)
    assert found["lines[].unit_price"] == "decimal(21,2)"
    assert found["customer.customer_id"] == "string"


def test_column_absent_from_every_record_fails():
    records = [order("O-1"), order("O-2")]
    for r in records:
        del r["currency"]
    problems, found = problems_of(records)
    assert problems == ["currency: missing (absent or null in every record of the partition)"]
    assert found["currency"] is None


def test_column_null_in_every_record_fails_but_absent_in_some_passes():
    nulls = [order("O-1", status=None), order("O-2", status=None)]
    assert problems_of(nulls)[0] == ["status: missing (absent or null in every record of the partition)"]
    some = [order("O-1"), order("O-2")]
    del some[1]["status"]
    assert problems_of(some)[0] == []


def test_nested_field_gone_from_every_line_fails():
    records = [order("O-1")]
    for line in records[0]["lines"]:
        del line["quantity"]
    assert problems_of(records)[0] == ["lines[].quantity: missing (absent or null in every record of the partition)"]


def test_nested_customer_id_gone_fails():
    records = [order("O-1")]
    del records[0]["customer"]["customer_id"]
    assert problems_of(records)[0] == [
        "customer.customer_id: missing (absent or null in every record of the partition)"]


def test_numbers_as_strings_are_readable():
    records = [order("O-1")]
    records[0]["lines"][0]["quantity"] = "2"
    records[0]["lines"][0]["unit_price"] = "19.99"
    problems, found = problems_of(records)
    assert problems == []
    assert found["lines[].quantity"] == "string"


def test_unreadable_types_fail():
    records = [order(7, customer="C-1")]
    records[0]["lines"][0]["quantity"] = True
    records[0]["lines"][1]["quantity"] = False
    problems, _ = problems_of(records)
    assert "order_id: type bigint is not readable as text" in problems
    assert "lines[].quantity: type boolean is not readable as number" in problems
    # A customer that is never an object: no struct, so it and its customer_id are missing.
    assert "customer: missing (absent or null in every record of the partition)" in problems


def test_a_malformed_value_in_one_record_does_not_hide_the_others():
    # "n/a" as a line and a customer sent as a string would widen those columns to string;
    # the contract view ignores them (the transform quarantines them) and judges the rest.
    bad = order("O-2", customer="C-9")
    bad["lines"].append("n/a")
    problems, found = problems_of([order("O-1"), bad])
    assert problems == []
    assert found["lines"].startswith("array<struct<")
    assert found["customer"].startswith("struct<")


def test_mixed_text_and_number_ids_widen_to_string_and_pass():
    assert problems_of([order("O-1"), order(918273)])[0] == []
