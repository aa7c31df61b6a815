"""Guards the reconciliation contract's reference implementation.

Risk: the Glue script is tested against `contract.expected_figures`; a wrong reason code,
a wrong first-failing rule, a wrong dedup tiebreak or float-ish money here would make the
pipeline's reconciliation checks pass on wrong numbers or fail on right ones.
"""
from __future__ import annotations

import copy
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from sales_assets.source import contract as c

DAY = date(2026, 11, 20)


def line(number=1, **overrides):
    value = {"line_number": number, "product_id": f"P-{number}", "quantity": 2,
             "unit_price": Decimal("19.99"), "discount": Decimal("0.1"), "tax_rate": Decimal("0.2")}
    value.update(overrides)
    return value


def order(order_id="SO-1", lines=None, **overrides):
    value = {
        "order_id": order_id,
        "order_timestamp": "2026-11-20T18:05:00-05:00",  # 23:05 UTC on the 20th
        "updated_at": "2026-11-20T23:10:00.000Z",
        "status": "completed",
        "channel": "web",
        "store_id": None,
        "currency": "USD",
        "customer": {"customer_id": "C-1", "name": "Ann"},
        "lines": [line(1)] if lines is None else lines,
    }
    value.update(overrides)
    return value


def without(record, *path):
    record = copy.deepcopy(record)
    target = record
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return record


def reasons(record):
    return [v.reason for v in c.validate_record(record, DAY)]


# --- every reason code, and the values just inside the rules --------------------------------

ORDER_CASES = [
    ("not an object", c.INVALID_JSON),
    (None, c.INVALID_JSON),
    ([order()], c.INVALID_JSON),
    (3, c.INVALID_JSON),
    (c.UnparseableLine("{oops"), c.INVALID_JSON),
    (without(order(), "order_id"), c.MISSING_ORDER_ID),
    (order(order_id=""), c.MISSING_ORDER_ID),
    (order(order_id=None), c.MISSING_ORDER_ID),
    (order(order_id=12), c.MISSING_ORDER_ID),
    (without(order(), "lines"), c.MISSING_LINES),
    (order(lines=[]), c.MISSING_LINES),
    (order(lines={"1": line()}), c.MISSING_LINES),
    (order(lines="n/a"), c.MISSING_LINES),
    (without(order(), "order_timestamp"), c.BAD_ORDER_TIMESTAMP),
    (order(order_timestamp=1763679900), c.BAD_ORDER_TIMESTAMP),
    (order(order_timestamp="2026-11-20T18:05:00"), c.BAD_ORDER_TIMESTAMP),  # no offset
    (order(order_timestamp="2026-11-20 18:05:00Z"), c.BAD_ORDER_TIMESTAMP),
    (order(order_timestamp="2026-11-20T24:00:00Z"), c.BAD_ORDER_TIMESTAMP),
    (order(order_timestamp="2026-02-30T10:00:00Z"), c.BAD_ORDER_TIMESTAMP),
    (order(order_timestamp="2026-11-20T10:00:00+24:00"), c.BAD_ORDER_TIMESTAMP),
    (order(order_timestamp="20/11/2026 18:05"), c.BAD_ORDER_TIMESTAMP),
    (order(order_timestamp="2026-11-20T20:00:00-05:00"), c.WRONG_ORDER_DATE),  # 01:00Z on the 21st
    (order(order_timestamp="2026-11-20T00:30:00+01:00"), c.WRONG_ORDER_DATE),  # 23:30Z on the 19th
    (without(order(), "updated_at"), c.BAD_UPDATED_AT),
    (order(updated_at="2026-11-20T23:10:00"), c.BAD_UPDATED_AT),
    (order(updated_at=None), c.BAD_UPDATED_AT),
    (order(status="shipped"), c.BAD_STATUS),
    (order(status="Completed"), c.BAD_STATUS),
    (order(status=["completed"]), c.BAD_STATUS),
    (without(order(), "status"), c.BAD_STATUS),
    (order(channel="phone"), c.BAD_CHANNEL),
    (order(channel={}), c.BAD_CHANNEL),
    (order(currency="XYZ"), c.UNKNOWN_CURRENCY),
    (order(currency="usd"), c.UNKNOWN_CURRENCY),
    (order(currency=None), c.UNKNOWN_CURRENCY),
    (order(customer=None), c.MISSING_CUSTOMER_ID),
    (order(customer="C-1"), c.MISSING_CUSTOMER_ID),
    (order(customer={}), c.MISSING_CUSTOMER_ID),
    (order(customer={"customer_id": ""}), c.MISSING_CUSTOMER_ID),
    (order(customer={"customer_id": 5}), c.MISSING_CUSTOMER_ID),
]


@pytest.mark.parametrize("record,expected", ORDER_CASES)
def test_order_level_reason_applies_to_every_unit(record, expected):
    if isinstance(record, dict) and isinstance(record.get("lines"), list) and record["lines"]:
        record = dict(record, lines=[line(1), line(2), "junk"])
    verdicts = c.validate_record(record, DAY)
    assert len(verdicts) == c.line_units(record)
    assert {v.reason for v in verdicts} == {expected}
    assert all(v.line is None for v in verdicts)


LINE_CASES = [
    ("x", c.LINE_NOT_OBJECT),
    (None, c.LINE_NOT_OBJECT),
    ([1, 2], c.LINE_NOT_OBJECT),
    (without(line(), "line_number"), c.BAD_LINE_NUMBER),
    (line(0), c.BAD_LINE_NUMBER),
    (line(-1), c.BAD_LINE_NUMBER),
    (line("one"), c.BAD_LINE_NUMBER),
    (line(Decimal("1.5")), c.BAD_LINE_NUMBER),
    (line("1.5"), c.BAD_LINE_NUMBER),
    (line(True), c.BAD_LINE_NUMBER),
    (line(None), c.BAD_LINE_NUMBER),
    (without(line(), "product_id"), c.MISSING_PRODUCT_ID),
    (line(product_id=""), c.MISSING_PRODUCT_ID),
    (line(product_id=7), c.MISSING_PRODUCT_ID),
    (without(line(), "quantity"), c.BAD_QUANTITY),
    (line(quantity=None), c.BAD_QUANTITY),
    (line(quantity=Decimal("2.5")), c.BAD_QUANTITY),
    (line(quantity=Decimal("-2.5")), c.BAD_QUANTITY),
    (line(quantity="two"), c.BAD_QUANTITY),
    (line(quantity="1e3"), c.BAD_QUANTITY),  # strings must be plain decimals
    (line(quantity=" 3"), c.BAD_QUANTITY),
    (line(quantity=True), c.BAD_QUANTITY),
    (line(quantity=1_000_001), c.BAD_QUANTITY),
    (line(quantity=c.JsonNumber("1e999999")), c.BAD_QUANTITY),
    (line(quantity=0), c.QUANTITY_BELOW_ONE),
    (line(quantity=-3), c.QUANTITY_BELOW_ONE),
    (line(quantity="0"), c.QUANTITY_BELOW_ONE),
    (without(line(), "unit_price"), c.BAD_UNIT_PRICE),
    (line(unit_price=None), c.BAD_UNIT_PRICE),
    (line(unit_price="19.99 USD"), c.BAD_UNIT_PRICE),
    (line(unit_price=Decimal("19.999")), c.BAD_UNIT_PRICE),
    (line(unit_price=Decimal("-19.999")), c.BAD_UNIT_PRICE),  # bad_unit_price is checked first
    (line(unit_price=Decimal("10000000.01")), c.BAD_UNIT_PRICE),
    (line(unit_price=True), c.BAD_UNIT_PRICE),
    (line(unit_price=Decimal("-0.01")), c.NEGATIVE_UNIT_PRICE),
    (line(unit_price="-5"), c.NEGATIVE_UNIT_PRICE),
    (line(discount=Decimal("1.5")), c.BAD_DISCOUNT),
    (line(discount=Decimal("-0.1")), c.BAD_DISCOUNT),
    (line(discount="10%"), c.BAD_DISCOUNT),
    (line(discount=Decimal("0.12345678901")), c.BAD_DISCOUNT),
    (line(discount=False), c.BAD_DISCOUNT),
    (line(tax_rate=20), c.BAD_TAX_RATE),
    (line(tax_rate="VAT"), c.BAD_TAX_RATE),
    (line(tax_rate=Decimal("-0.2")), c.BAD_TAX_RATE),
    # first failing rule wins inside a line
    (line(product_id="", quantity=0, unit_price=-1), c.MISSING_PRODUCT_ID),
    (line(quantity=0, unit_price=Decimal("-1")), c.QUANTITY_BELOW_ONE),
]


@pytest.mark.parametrize("bad_line,expected", LINE_CASES)
def test_line_level_reason_only_hits_its_line(bad_line, expected):
    verdicts = c.validate_record(order(lines=[bad_line, line(2), line(3)]), DAY)
    assert [v.reason for v in verdicts] == [expected, None, None]


def test_duplicate_line_number_keeps_the_first_even_if_it_fails_later_rules():
    record = order(lines=[line(1, quantity=0), line(1), line("2"), line(2), line(3)])
    assert reasons(record) == [c.QUANTITY_BELOW_ONE, c.DUPLICATE_LINE_NUMBER, None,
                               c.DUPLICATE_LINE_NUMBER, None]


def test_the_rule_order_is_the_specs():
    assert c.QUARANTINE_REASONS == (
        "invalid_json", "missing_order_id", "missing_lines", "bad_order_timestamp",
        "wrong_order_date", "bad_updated_at", "bad_status", "bad_channel", "unknown_currency",
        "missing_customer_id", "line_not_object", "bad_line_number", "duplicate_line_number",
        "missing_product_id", "bad_quantity", "quantity_below_one", "bad_unit_price",
        "negative_unit_price", "bad_discount", "bad_tax_rate")
    # order rules before line rules: a missing order_id hides every line fault
    assert reasons(order(order_id="", lines=["x", line(0)])) == [c.MISSING_ORDER_ID] * 2
    assert reasons(order(order_id=None, lines=None)) == [c.MISSING_ORDER_ID]


@pytest.mark.parametrize("good_line", [
    line(quantity="3"),
    line(quantity=Decimal("3.0")),
    line(quantity=c.JsonNumber("3e0")),
    line(quantity=1_000_000),
    line(unit_price="19.99"),
    line(unit_price=Decimal("19.990")),  # the value has 2 places
    line(unit_price=c.JsonNumber("1e2")),
    line(unit_price=19.99),  # a binary float reads as its shortest repr
    line(unit_price=0),
    line(unit_price=Decimal("10000000")),
    line(discount=None),
    without(line(), "discount"),
    without(line(), "tax_rate"),
    line(discount=Decimal("0.1234567890")),
    line(discount=1, tax_rate="0"),
    line("1"),
    line(1, gift_wrap=True),
])
def test_valid_lines_and_coercions(good_line):
    verdicts = c.validate_record(order(lines=[good_line]), DAY)
    assert [v.reason for v in verdicts] == [None]
    typed = verdicts[0].line
    assert isinstance(typed["quantity"], int) and not isinstance(typed["quantity"], bool)
    assert all(isinstance(typed[k], Decimal) for k in ("unit_price", "discount", "tax_rate", "net", "total"))


def test_valid_line_carries_typed_values_and_money():
    [verdict] = c.validate_record(order(lines=[line(1, quantity="3", unit_price="26.75", discount=None)]), DAY)
    assert verdict.line["order_timestamp"] == datetime(2026, 11, 20, 23, 5, tzinfo=timezone.utc)
    assert verdict.line["quantity"] == 3 and verdict.line["discount"] == 0
    assert verdict.line["gross"] == Decimal("80.25")
    assert verdict.line["net"] == Decimal("80.25")
    assert verdict.line["tax_amount"] == Decimal("16.05")
    assert verdict.line["total"] == Decimal("96.30")


@pytest.mark.parametrize("text,expected", [
    ("2026-11-20T18:05:00-05:00", datetime(2026, 11, 20, 23, 5, tzinfo=timezone.utc)),
    ("2026-11-20t18:05:00z", datetime(2026, 11, 20, 18, 5, tzinfo=timezone.utc)),
    ("2026-11-20T18:05:00.1234569+05:30", datetime(2026, 11, 20, 12, 35, 0, 123456, tzinfo=timezone.utc)),
    ("2026-11-20T18:05:00+00:00", datetime(2026, 11, 20, 18, 5, tzinfo=timezone.utc)),
    ("2026-11-20T18:05:00", None),
    ("2026-11-20T18:05Z", None),
    ("2026-11-20T18:05:00+0500", None),
    ("2026-11-20T18:05:60Z", None),
    ("２０２６-11-20T18:05:00Z", None),  # non-ASCII digits
    ("0000-01-01T00:00:00Z", None),
    (20261120, None),
])
def test_parse_rfc3339(text, expected):
    assert c.parse_rfc3339(text) == expected


def test_line_units():
    assert c.line_units("x") == 1
    assert c.line_units(None) == 1
    assert c.line_units({}) == 1
    assert c.line_units({"lines": None}) == 1
    assert c.line_units({"lines": []}) == 1
    assert c.line_units({"lines": {"a": 1}}) == 1
    assert c.line_units({"lines": [1, "x", {}]}) == 3


# --- money ---------------------------------------------------------------------------------


def test_money_rounds_half_up_per_line():
    # 2.50 * 0.05 = 0.125 -> 0.13 (banker's rounding would give 0.12)
    assert c.line_amounts(1, Decimal("2.50"), Decimal("0.05"), Decimal("0.2")) == {
        "gross": Decimal("2.50"), "discount_amount": Decimal("0.13"), "net": Decimal("2.37"),
        "tax_amount": Decimal("0.47"), "total": Decimal("2.84")}
    # 26.75 * 0.1 = 2.675 -> 2.68 (the float 2.675 rounds to 2.67)
    amounts = c.line_amounts(1, "26.75", "0.1", "0.5")
    assert amounts["discount_amount"] == Decimal("2.68")
    assert amounts["net"] == Decimal("24.07")
    assert amounts["tax_amount"] == Decimal("12.04")  # 12.035 -> 12.04
    assert amounts["total"] == Decimal("36.11")
    assert round(2.675, 2) == 2.67  # why floats are banned
    assert c.line_amounts(3, "0.33")["total"] == Decimal("0.99")
    assert c.line_amounts(1, "0.05", 0, "0.1")["tax_amount"] == Decimal("0.01")  # 0.005 -> 0.01
    assert c.line_amounts(1_000_000, "10000000.00", "0.0000000001", 1)["total"] == Decimal("19999999998000.00")
    assert all(v.as_tuple().exponent == -2 for v in c.line_amounts(2, 5).values())


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        c.line_amounts(1, 19.99)


# --- dedup and figures ---------------------------------------------------------------------


def outcomes(records):
    return [(o.record_index, o.outcome) for o in c.iter_unit_outcomes(records, DAY)]


def test_newer_updated_at_wins_wherever_it_is_listed():
    newer = order(updated_at="2026-11-21T09:00:00Z", status="returned")
    older = order(updated_at="2026-11-20T23:10:00Z", lines=[line(1), line(2)])
    assert outcomes([newer, older]) == [(0, c.CURATED), (1, c.SUPERSEDED), (1, c.SUPERSEDED)]


def test_updated_at_compares_instants_not_text():
    # 19:30-05:00 on the 20th is 00:30Z on the 21st: later than 23:00Z although it sorts lower.
    first = order(updated_at="2026-11-20T19:30:00-05:00")
    second = order(updated_at="2026-11-20T23:00:00Z")
    assert outcomes([first, second]) == [(0, c.CURATED), (1, c.SUPERSEDED)]


def test_equal_updated_at_keeps_the_later_listing_entry():
    first = order(status="pending")
    second = order(status="completed", updated_at="2026-11-20T18:10:00-05:00")  # same instant
    assert outcomes([first, second]) == [(0, c.SUPERSEDED), (1, c.CURATED)]
    line_of = {o.record_index: o.line for o in c.iter_unit_outcomes([first, second], DAY)}
    assert line_of[1]["status"] == "completed"


def test_unparseable_updated_at_sorts_lowest_and_is_superseded_not_quarantined():
    assert outcomes([order(), order(updated_at="yesterday")]) == [(0, c.CURATED), (1, c.SUPERSEDED)]
    # when every copy is unparseable, the later one survives and is quarantined
    assert outcomes([order(updated_at=None), order(updated_at="x")]) == [(0, c.SUPERSEDED), (1, c.BAD_UPDATED_AT)]


def test_superseded_copies_are_not_validated_and_records_without_id_are_not_deduped():
    records = [
        order(lines=None),  # invalid but superseded: 1 unit
        order(updated_at="2026-11-21T00:00:00Z"),
        order(order_id=""), order(order_id=""),
        {"lines": [1, 2]},
    ]
    assert outcomes(records) == [
        (0, c.SUPERSEDED), (1, c.CURATED), (2, c.MISSING_ORDER_ID), (3, c.MISSING_ORDER_ID),
        (4, c.MISSING_ORDER_ID), (4, c.MISSING_ORDER_ID)]


def test_expected_figures_for_a_hand_built_day():
    # every order-level case under its own order_id, so none supersedes another
    quarantined = [dict(record, order_id=f"Q-{i}") if c._valid_order_id(record) else record
                   for i, (record, _reason) in enumerate(ORDER_CASES)]
    line_records = [order(order_id=f"L-{i}", lines=[bad]) for i, (bad, _r) in enumerate(LINE_CASES)]
    duplicate = order(order_id="D-1", lines=[line(1), line(1)])  # 2 x 19.99, 10% off -> net 35.98
    good = order(order_id="G-1", lines=[line(1, quantity=1, unit_price="2.50", discount="0.05", tax_rate="0.2"),
                                        line(2, quantity=1, unit_price="26.75", discount="0.1", tax_rate="0.5")])
    stale = order(order_id="G-1", updated_at="2026-11-20T23:00:00Z", lines=[line(1), line(2), line(3)])
    tie_a = order(order_id="G-2", lines=[line(1)])
    tie_b = order(order_id="G-2", lines=[line(1, quantity=1, unit_price="1.00", discount=0, tax_rate=0)])
    day = quarantined + line_records + [duplicate, good, stale, tie_a, tie_b]

    figures = c.expected_figures(day, DAY)

    expected_reasons: dict[str, int] = {}
    for record, reason in ORDER_CASES:
        expected_reasons[reason] = expected_reasons.get(reason, 0) + c.line_units(record)
    for _bad, reason in LINE_CASES + [(None, c.DUPLICATE_LINE_NUMBER)]:
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert figures["quarantine_by_reason"] == {r: expected_reasons[r] for r in c.QUARANTINE_REASONS if r in expected_reasons}
    assert set(figures["quarantine_by_reason"]) == set(c.QUARANTINE_REASONS)
    assert figures["superseded_lines"] == 3 + 1
    assert figures["curated_lines"] == 1 + 2 + 1
    assert figures["net"] == Decimal("35.98") + Decimal("2.37") + Decimal("24.07") + Decimal("1.00")
    assert figures["raw_records"] == len(day)
    assert figures["raw_lines"] == sum(c.line_units(r) for r in day)
    assert figures["raw_lines"] == figures["curated_lines"] + figures["quarantine_lines"] + figures["superseded_lines"]
    # the streaming figures agree with the unit-by-unit outcomes
    units = list(c.iter_unit_outcomes(day, DAY))
    assert len(units) == figures["raw_lines"]
    assert sum(1 for u in units if u.outcome == c.SUPERSEDED) == figures["superseded_lines"]
    assert sum((u.line["net"] for u in units if u.outcome == c.CURATED), Decimal(0)) == figures["net"]


# --- exact JSON ----------------------------------------------------------------------------


def test_exact_json_round_trip_keeps_number_text():
    text = ('{"a":0.1,"b":19.99,"c":1e2,"d":19.990,"e":-0.0,"f":123456789012345678901234567890,'
            '"g":"Caf\\u00e9 \\ud83d\\ude00","h":[true,false,null],"i":1.5E-7}')
    parsed = c.loads_exact(text)
    assert parsed["c"] == 100 and isinstance(parsed["c"], Decimal)
    assert c.dumps_exact(parsed) == text
    assert c.dumps_exact({"p": Decimal("19.99"), "q": Decimal("1E+2")}) == '{"p":19.99,"q":1E+2}'
    with pytest.raises(ValueError):
        c.loads_exact('{"a": NaN}')
    with pytest.raises(ValueError):
        c.dumps_exact(Decimal("NaN"))


def test_records_from_jsonl_counts_blank_and_broken_lines_like_spark():
    data = b'{"order_id":"A"}\r\n\n{not json\n  \n[1,2]\n{"lines":[1,2,3]}'
    records = c.records_from_jsonl(data)
    assert len(records) == 4
    assert isinstance(records[1], c.UnparseableLine)
    assert [c.line_units(r) for r in records] == [1, 1, 1, 3]
