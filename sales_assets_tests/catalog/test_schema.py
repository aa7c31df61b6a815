"""Schema inference and merge rules.

Risk guarded: the crawled table silently narrows or drops a column when one day's data differs
(a price written as an integer, a field absent or null, a new field), which would make Athena
or Spectrum fail to read older partitions, or lose a column the pipeline needs.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sales_assets.catalog.schema import (
    infer_schema,
    merge_columns,
    parse_type,
    render,
    widen_type_strings,
)

from .fake_lake import order


def parsed(*lines: str) -> list:
    return [json.loads(line, parse_float=Decimal) for line in lines]


def types(schema) -> dict:
    return {c["Name"]: c["Type"] for c in schema.columns}


# ---------------------------------------------------------------- widening, one rule at a time


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("int", "bigint", "bigint"),
        ("tinyint", "smallint", "smallint"),
        ("bigint", "double", "double"),
        ("int", "float", "double"),
        ("double", "string", "string"),
        ("bigint", "string", "string"),
        ("boolean", "bigint", "string"),
        ("date", "timestamp", "string"),
        ("struct<a:bigint>", "bigint", "string"),
        ("array<bigint>", "string", "string"),
        ("array<bigint>", "struct<a:bigint>", "string"),
        ("struct<a:bigint,b:string>", "struct<c:double,a:double>", "struct<a:double,b:string,c:double>"),
        ("array<bigint>", "array<double>", "array<double>"),
        ("array<struct<a:bigint>>", "array<struct<b:boolean>>", "array<struct<a:bigint,b:boolean>>"),
        ("map<string,bigint>", "map<string,double>", "map<string,double>"),
        ("void", "bigint", "bigint"),
        ("decimal(4,2)", "decimal(10,4)", "decimal(10,4)"),
        ("decimal(4,2)", "decimal(6,0)", "decimal(8,2)"),
        ("decimal(4,2)", "bigint", "decimal(21,2)"),
        ("decimal(4,2)", "double", "double"),
        ("decimal(30,10)", "decimal(38,0)", "double"),
    ],
)
def test_widen_rule(a, b, expected):
    assert widen_type_strings(a, b) == expected
    # The lattice is symmetric up to struct field order.
    assert parse_type(widen_type_strings(b, a)).__class__ is parse_type(expected).__class__


def test_widen_never_narrows():
    for wide, narrow in [("double", "bigint"), ("string", "struct<a:bigint>"), ("bigint", "int")]:
        assert widen_type_strings(wide, narrow) == wide


def test_widen_keeps_the_existing_spelling_when_nothing_changes():
    assert widen_type_strings("STRUCT<a: BIGINT>", "struct<a:int>") == "STRUCT<a: BIGINT>"


def test_type_strings_round_trip_including_quoted_names():
    text = "struct<a:array<struct<`b:c`:decimal(10,2),d:map<string,bigint>>>,e:varchar(10)>"
    assert render(parse_type(text)) == text


def test_unparseable_type_is_an_error():
    with pytest.raises(ValueError):
        parse_type("struct<a:bigint")


# ---------------------------------------------------------------- inference


def test_scalar_types_default_to_decimal_keeping_scale():
    schema = infer_schema(parsed('{"b": true, "i": 3, "d": 19.99, "r": 0.0825, "s": "x", "big": 99999999999999999999}'))
    assert types(schema) == {"b": "boolean", "i": "bigint", "d": "decimal(18,2)", "r": "decimal(20,4)",
                             "s": "string", "big": "decimal(20,0)"}


def test_scalar_types_in_double_mode_match_a_glue_crawler():
    schema = infer_schema(parsed('{"i": 3, "d": 19.99, "big": 99999999999999999999}'), number_mode="double")
    assert types(schema) == {"i": "bigint", "d": "double", "big": "double"}


def test_decimal_precision_has_a_floor_so_larger_values_do_not_version_the_table():
    small = types(infer_schema(parsed('{"p": 1.99}')))
    large = types(infer_schema(parsed('{"p": 123456.99}')))
    assert small == large == {"p": "decimal(18,2)"}
    merged, diff = merge_columns([{"Name": "p", "Type": small["p"]}], [{"Name": "p", "Type": large["p"]}])
    assert diff["widened"] == []


def test_decimal_scale_is_the_written_scale():
    # 19.90 keeps two places even though the value has one significant decimal.
    assert types(infer_schema(parsed('{"p": 19.90}', '{"p": 1.5}'))) == {"p": "decimal(18,2)"}


def test_decimal_beyond_38_digits_becomes_double():
    assert types(infer_schema(parsed('{"p": 1.' + "1" * 40 + '}'))) == {"p": "double"}


def test_integer_then_fraction_widens_to_decimal_or_double_by_mode():
    records = parsed('{"p": 5}', '{"p": 5.5}')
    assert types(infer_schema(records)) == {"p": "decimal(20,1)"}
    assert types(infer_schema(records, number_mode="double")) == {"p": "double"}


def test_number_then_string_widens_to_string():
    assert types(infer_schema(parsed('{"q": 3}', '{"q": "3"}'))) == {"q": "string"}


def test_object_vs_scalar_becomes_string():
    assert types(infer_schema(parsed('{"c": {"id": "x"}}', '{"c": "x"}'))) == {"c": "string"}


def test_realistic_orders_nest_structs_and_arrays():
    records = [order("O-1"), order("O-2", coupon={"code": "X", "pct": 10})]
    schema = infer_schema(json.loads(json.dumps(r), parse_float=Decimal) for r in records)
    assert [c["Name"] for c in schema.columns] == [
        "order_id", "order_timestamp", "updated_at", "status", "channel", "store_id",
        "currency", "customer", "lines", "coupon",
    ]
    t = types(schema)
    # segment was only ever null: still void here, resolved by merge_columns.
    assert t["customer"] == "struct<customer_id:string,name:string,email:string,segment:void>"
    # element types merged across lines: sku/discount absent in one line, unit_price int vs float.
    assert t["lines"] == (
        "array<struct<line_number:bigint,product_id:string,sku:string,quantity:bigint,"
        "unit_price:decimal(21,2),discount:decimal(17,1)>>"
    )
    assert t["coupon"] == "struct<code:string,pct:bigint>"
    assert schema.nullable == ("coupon",)
    assert schema.records == 2


def test_absent_or_null_fields_are_nullable_and_keep_their_type():
    schema = infer_schema(parsed('{"a": 1, "b": null}', '{"a": null, "b": "x"}', '{"b": "y"}'))
    assert types(schema) == {"a": "bigint", "b": "string"}
    assert set(schema.nullable) == {"a", "b"}


def test_null_only_field_becomes_string_on_a_new_table():
    schema = infer_schema(parsed('{"a": null, "e": []}'))
    merged, diff = merge_columns([], schema.columns)
    assert merged == [{"Name": "a", "Type": "string"}, {"Name": "e", "Type": "array<string>"}]
    assert diff["added"] == ["a", "e"]


def test_null_only_field_keeps_the_previous_table_type():
    existing = [{"Name": "a", "Type": "bigint"}, {"Name": "c", "Type": "struct<x:double,y:string>"}]
    schema = infer_schema(parsed('{"a": null, "c": {"x": null, "z": null}}'))
    merged, diff = merge_columns(existing, schema.columns)
    assert merged[0] == {"Name": "a", "Type": "bigint"}
    assert merged[1] == {"Name": "c", "Type": "struct<x:double,y:string,z:string>"}
    assert diff["widened"] == [{"name": "c", "from": "struct<x:double,y:string>",
                                "to": "struct<x:double,y:string,z:string>"}]


def test_non_objects_are_skipped_and_counted():
    schema = infer_schema([{"a": 1}, [1, 2], "text", 5])
    assert (schema.records, schema.skipped) == (1, 3)


def test_keys_differing_only_by_case_are_one_column():
    assert types(infer_schema(parsed('{"Status": 1}', '{"status": 2.5}'))) == {"Status": "decimal(20,1)"}


def test_decimal_mode_keeps_scale_and_widens_it():
    schema = infer_schema(parsed('{"p": 19.99}', '{"p": 5}', '{"p": 0.125}'), number_mode="decimal")
    assert types(schema) == {"p": "decimal(22,3)"}


def test_unknown_number_mode_is_rejected():
    with pytest.raises(ValueError):
        infer_schema([], number_mode="float")


# ---------------------------------------------------------------- merge


def test_merge_adds_keeps_missing_and_widens_in_place():
    existing = [
        {"Name": "order_id", "Type": "string", "Comment": "business key"},
        {"Name": "legacy", "Type": "string"},
        {"Name": "quantity", "Type": "bigint"},
    ]
    inferred = [
        {"Name": "quantity", "Type": "double"},
        {"Name": "order_id", "Type": "string"},
        {"Name": "gift_wrap", "Type": "boolean"},
    ]
    merged, diff = merge_columns(existing, inferred)
    assert merged == [
        {"Name": "order_id", "Type": "string", "Comment": "business key"},
        {"Name": "legacy", "Type": "string"},
        {"Name": "quantity", "Type": "double"},
        {"Name": "gift_wrap", "Type": "boolean"},
    ]
    assert diff == {
        "added": ["gift_wrap"],
        "widened": [{"name": "quantity", "from": "bigint", "to": "double"}],
        "missing_in_partition": ["legacy"],
    }


def test_merge_never_narrows():
    existing = [{"Name": "q", "Type": "string"}, {"Name": "p", "Type": "double"}]
    merged, diff = merge_columns(existing, [{"Name": "q", "Type": "bigint"}, {"Name": "p", "Type": "bigint"}])
    assert merged == existing
    assert diff == {"added": [], "widened": [], "missing_in_partition": []}
