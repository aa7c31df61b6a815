"""Guards the per-record rules of the Glue script's Spark expressions (all cases in one Spark job):
line units, reason codes and their precedence, coercion, exact decimal places, RFC 3339 parsing
and half-up money. These rules are the reconciliation
contract with the demo source's expected figures, so a drift here silently breaks the books."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from sales_assets.source.contract import dumps_exact

from .conftest import line, order

DAY = "2026-11-20"


def _raw(record) -> str:
    # dumps_exact writes Decimals as their exact literal (19.990 stays 19.990).
    return record if isinstance(record, str) else dumps_exact(record)


# Every record a test below explodes; all of them go through Spark in ONE job (module fixture),
# each as its own page so that no dedup applies (validate_lines skips it anyway).
RAWS: list[str] = []


def case(record):
    """Register a record for the batch and return it (used inside the parametrize lists)."""
    RAWS.append(_raw(record))
    return record


@pytest.fixture(scope="module")
def verdicts(spark, curate):
    rows = [(dt.date.fromisoformat(DAY), index, 1, "run-1", raw, True) for index, raw in enumerate(RAWS)]
    frame = spark.createDataFrame(
        rows, "order_date date, source_page int, position int, ingest_run_id string, value string, line_ok boolean"
    )
    by_page: dict[int, list[dict]] = {}
    for row in curate.validate_lines(frame).collect():
        by_page.setdefault(row["source_page"], []).append(row.asDict())
    return {RAWS[page]: sorted(units, key=lambda unit: unit["unit_index"]) for page, units in by_page.items()}


def explode(verdicts, record):
    return verdicts[_raw(record)]


def reasons(units):
    return [unit["reason"] for unit in units]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (case("[1, 2]"), ["invalid_json"]),
        (case("42"), ["invalid_json"]),
        (case("not json {"), ["invalid_json"]),
        (case(""), ["invalid_json"]),
        (case('{"order_id": "O", "lines": [{"line_number": NaN}]}'), ["invalid_json"]),
        (case(json.dumps({"lines": [1, 2]})), ["missing_order_id"] * 2),
        (case(json.dumps({"order_id": 7, "lines": []})), ["missing_order_id"]),
        (case(json.dumps({"order_id": "O"})), ["missing_lines"]),
        (case(json.dumps({"order_id": "O", "lines": None})), ["missing_lines"]),
        (case(json.dumps({"order_id": "O", "lines": {"a": 1}})), ["missing_lines"]),
        (case(json.dumps({"order_id": "O", "lines": []})), ["missing_lines"]),
    ],
)
def test_unit_count_and_first_order_rule(verdicts, raw, expected):
    units = explode(verdicts, raw)
    assert reasons(units) == expected
    assert all(unit["kind"] == "quarantine" and unit["raw_record"] == raw for unit in units)


def order_level_record(fields):
    return order("O-1", [line(1), line(2), "not an object"], **fields)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"order_timestamp": None}, "bad_order_timestamp"),
        ({"order_timestamp": 1700000000}, "bad_order_timestamp"),
        ({"order_timestamp": "2026-11-20T10:00:00"}, "bad_order_timestamp"),
        ({"order_timestamp": "2026-11-20 10:00:00Z"}, "bad_order_timestamp"),
        ({"order_timestamp": "2026-02-30T10:00:00Z"}, "bad_order_timestamp"),
        ({"order_timestamp": "2026-11-20T23:30:00-05:00"}, "wrong_order_date"),
        ({"order_timestamp": "2026-11-19T23:59:59Z"}, "wrong_order_date"),
        ({"updated_at": "yesterday"}, "bad_updated_at"),
        ({"updated_at": "2026-11-20T10:00:00"}, "bad_updated_at"),
        ({"status": "Completed"}, "bad_status"),
        ({"channel": None}, "bad_channel"),
        ({"currency": "XXX"}, "unknown_currency"),
        ({"currency": "usd"}, "unknown_currency"),
        ({"customer": None}, "missing_customer_id"),
        ({"customer": {"customer_id": 5}}, "missing_customer_id"),
        # First failing rule wins: status is checked before currency.
        ({"status": "x", "currency": "x"}, "bad_status"),
        ({"updated_at": "x", "status": "x"}, "bad_updated_at"),
    ],
)
def test_order_level_reason_applies_to_every_unit(verdicts, fields, reason):
    units = explode(verdicts, order_level_record(fields))
    assert reasons(units) == [reason] * 3
    assert [unit["line_number"] for unit in units] == [1, 2, None]
    assert {unit["order_id"] for unit in units} == {"O-1"}


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        ("text", "line_not_object"),
        (line(None), "bad_line_number"),
        (line(0), "bad_line_number"),
        (line(1.5), "bad_line_number"),
        (line(True), "bad_line_number"),
        (line(2**31), "bad_line_number"),
        (line(1, None), "missing_product_id"),
        (line(1, 17), "missing_product_id"),
        (line(1, quantity=None), "bad_quantity"),
        (line(1, quantity="2.5"), "bad_quantity"),
        (line(1, quantity=1_000_001), "bad_quantity"),
        (line(1, quantity=False), "bad_quantity"),
        (line(1, quantity=-2), "quantity_below_one"),
        (line(1, quantity="0"), "quantity_below_one"),
        (line(1, unit_price=None), "bad_unit_price"),
        (line(1, unit_price="1e3"), "bad_unit_price"),
        (line(1, unit_price=0.001), "bad_unit_price"),
        (line(1, unit_price=10_000_000.01), "bad_unit_price"),
        (line(1, unit_price=-0.001), "bad_unit_price"),
        (line(1, unit_price="-5"), "negative_unit_price"),
        (line(1, discount="a"), "bad_discount"),
        (line(1, discount=-0.1), "bad_discount"),
        (line(1, discount=True), "bad_discount"),
        (line(1, discount=0.12345678901), "bad_discount"),
        (line(1, tax_rate=2), "bad_tax_rate"),
        (line(1, discount=2, tax_rate=2), "bad_discount"),
    ],
)
def test_line_level_reasons(verdicts, element, reason):
    units = explode(verdicts, order("O-1", [element]))
    assert reasons(units) == [reason]


DUPLICATES = case(order("O-1", [line(1, None), line(1), line(2), line("2")]))


def test_duplicate_line_number_keeps_first_even_if_first_is_rejected(verdicts):
    units = explode(verdicts, DUPLICATES)
    assert reasons(units) == ["missing_product_id", "duplicate_line_number", None, "duplicate_line_number"]
    assert [unit["line_number"] for unit in units] == [1, 1, 2, 2]


COERCIBLE = case(
    '{"order_id": "O-1", "order_timestamp": "2026-11-20T10:00:00.1234567+01:00",'
    ' "updated_at": "2026-11-20T10:00:00z", "status": "completed", "channel": "store",'
    ' "store_id": 42, "currency": "EUR", "customer": {"customer_id": "C", "name": 7},'
    ' "new_field": {"x": 1}, "lines": [{"line_number": "3", "product_id": "P",'
    ' "quantity": 3.0, "unit_price": "19.990", "discount": "0.25", "tax_rate": 0.19,'
    ' "extra": [1]}]}'
)


def test_coercible_strings_and_integer_valued_numbers_are_accepted(verdicts):
    raw = (
        '{"order_id": "O-1", "order_timestamp": "2026-11-20T10:00:00.1234567+01:00",'
        ' "updated_at": "2026-11-20T10:00:00z", "status": "completed", "channel": "store",'
        ' "store_id": 42, "currency": "EUR", "customer": {"customer_id": "C", "name": 7},'
        ' "new_field": {"x": 1}, "lines": [{"line_number": "3", "product_id": "P",'
        ' "quantity": 3.0, "unit_price": "19.990", "discount": "0.25", "tax_rate": 0.19,'
        ' "extra": [1]}]}'
    )
    (unit,) = explode(verdicts, raw)
    assert unit["kind"] == "curated" and unit["reason"] is None
    assert unit["line_number"] == 3 and unit["quantity"] == 3
    assert unit["unit_price"] == Decimal("19.99") and str(unit["unit_price"]) == "19.99"
    assert unit["discount"] == Decimal("0.25") and unit["tax_rate"] == Decimal("0.19")
    assert unit["store_id"] == "42" and unit["customer_name"] == "7"
    assert unit["order_timestamp"] == dt.datetime(2026, 11, 20, 9, 0, 0, 123456)  # naive UTC
    # gross 59.97, discount 14.9925 -> 14.99, net 44.98, tax 8.5462 -> 8.55, total 53.53
    assert [unit[k] for k in ("gross", "discount_amount", "net", "tax_amount", "total")] == [
        Decimal("59.97"), Decimal("14.99"), Decimal("44.98"), Decimal("8.55"), Decimal("53.53")
    ]


def money_record(quantity, price, discount, tax):
    # Literals written as JSON numbers exactly as given (no float round trip).
    raw = json.dumps(order("O-M", [line(1, quantity=quantity, unit_price=0, discount=0, tax_rate=0)]))
    return (raw.replace('"unit_price": 0', f'"unit_price": {price}')
            .replace('"discount": 0', f'"discount": {discount}').replace('"tax_rate": 0', f'"tax_rate": {tax}'))


@pytest.mark.parametrize(
    ("quantity", "price", "discount", "tax", "expected"),
    [
        # 0.005 and 0.045 round up (banker's rounding would give 0.00 and 0.04).
        (1, "0.10", "0.05", "0.5", ("0.10", "0.01", "0.09", "0.05", "0.14")),
        # 2.01 * 0.5 = 1.005: a float computes 1.00499..., Decimal half-up gives 1.01.
        (1, "2.01", "0.5", "0", ("2.01", "1.01", "1.00", "0.00", "1.00")),
        (3, "19.99", "0.1", "0.0825", ("59.97", "6.00", "53.97", "4.45", "58.42")),
        (1_000_000, "9999999.99", "0.0000000001", "1",
         ("9999999990000.00", "1000.00", "9999999989000.00", "9999999989000.00", "19999999978000.00")),
    ],
)
def test_money_is_exact_half_up_per_line(verdicts, quantity, price, discount, tax, expected):
    (amounts,) = explode(verdicts, money_record(quantity, price, discount, tax))
    assert amounts["reason"] is None
    assert tuple(str(amounts[k]) for k in ("gross", "discount_amount", "net", "tax_amount", "total")) == expected


NULL_RATES = case(order("O-1", [line(1, quantity=2, unit_price=1.25, discount=None)]))
EXACT_PLACES = case(order("O-1", [
    line(1, unit_price="1.0000000000000000000000000000001"),  # 31 places, read from the text
    line(2, unit_price=Decimal("19.990")),  # trailing zero: 2 places
    line(3, quantity=Decimal("1E+2"), unit_price=Decimal("1E+2")),  # exponent, integral
    line(4, discount=Decimal("0.0000000000000000001")),  # digits beyond the 18th place
]))


def test_absent_or_null_rates_are_zero(verdicts):
    (unit,) = explode(verdicts, NULL_RATES)
    assert unit["discount"] == 0 and unit["tax_rate"] == 0
    assert unit["total"] == Decimal("2.50")


def test_decimal_places_are_counted_exactly(verdicts):
    units = explode(verdicts, EXACT_PLACES)
    assert reasons(units) == ["bad_unit_price", None, None, "bad_discount"]
    assert units[1]["unit_price"] == Decimal("19.99")
    assert (units[2]["quantity"], units[2]["gross"]) == (100, Decimal("10000.00"))


def test_parse_args_ignores_unknown_arguments_and_expands_ranges(curate):
    lake, dates = curate.parse_args([
        "script.py", "--job-bookmark-option", "job-bookmark-disable", "--lake_root", "s3://b/p",
        "--order_date", "2026-11-29", "--order_date_end", "2026-12-01",
        "--dagster-pipes-context", "abc", "--dagster-pipes-messages", "def",
    ])
    assert lake == "s3://b/p"
    assert dates == ["2026-11-29", "2026-11-30", "2026-12-01"]
    assert curate.parse_args(["s", "--lake_root=x", "--order_date=2026-01-02"])[1] == ["2026-01-02"]
    with pytest.raises(SystemExit):
        curate.parse_args(["s", "--lake_root", "x", "--order_date", "2026-01-02", "--order_date_end", "2026-01-01"])
    with pytest.raises(SystemExit):
        curate.parse_args(["s", "--lake_root", "x", "--order_date", "20260102"])


def test_lake_root_spellings(curate, tmp_path):
    assert curate.Lake("s3://bucket/prefix/").uri("raw/x") == "s3://bucket/prefix/raw/x"
    assert not curate.Lake("s3://bucket").is_local
    for spelling in (str(tmp_path), f"file://{tmp_path}", f"file://{tmp_path}/"):
        lake = curate.Lake(spelling)
        assert lake.local_root == str(tmp_path)
        assert lake.uri("curated/t") == f"file://{tmp_path}/curated/t"
    with pytest.raises(ValueError):
        curate.Lake("gs://bucket")


def test_pipes_metadata_is_accepted_by_dagster(curate):
    """The {raw_value, type} metadata must convert on the orchestration side, as Pipes does."""
    from dagster._core.definitions.metadata.external_metadata import metadata_map_from_external

    columns = [{"name": name, "type": kind} for name, kind in curate.ORDER_LINES_COLUMNS]
    table_info = {"row_count": 3, "rows_by_day": {DAY: 3}, "paths": ["file:///x"], "columns": columns}
    summary = {
        "tables": {table: table_info for table in curate.TABLES},
        "figures_by_day": {DAY: {"raw_lines": 4, "curated_lines": 3, "quarantine_lines": 1,
                                 "superseded_lines": 0, "net": "1.00"}},
        "quarantine_by_reason": {DAY: {"bad_status": 1}},
        "manifests": {DAY: {"run_id": "r", "record_count": 2, "line_count": 4}},
    }
    converted = metadata_map_from_external(curate.materialization_metadata(summary, "order_lines"))
    assert converted["dagster/row_count"].value == 3
    assert [c.name for c in converted["dagster/column_schema"].schema.columns][:3] == [
        "order_id", "line_number", "order_date"
    ]
    assert converted["figures_by_day"].data[DAY]["net"] == "1.00"
    quarantine = metadata_map_from_external(curate.materialization_metadata(summary, "quarantine"))
    assert quarantine["quarantine_by_reason"].data == {DAY: {"bad_status": 1}}


# Register the records the parametrized tests build, before the module fixture runs.
for _mark in test_order_level_reason_applies_to_every_unit.pytestmark:
    for _fields, _reason in _mark.args[1]:
        case(order_level_record(_fields))
for _mark in test_line_level_reasons.pytestmark:
    for _element, _reason in _mark.args[1]:
        case(order("O-1", [_element]))
for _mark in test_money_is_exact_half_up_per_line.pytestmark:
    for _params in _mark.args[1]:
        case(money_record(*_params[:4]))
