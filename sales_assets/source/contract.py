"""The Sales Source API contract and the reconciliation rules, as plain Python.

This module is the executable form of `contracts/sales-source-api.openapi.yaml` plus the
line-unit, dedup, quarantine and money rules of the shared spec. It is the reference the
Glue PySpark script is tested against, so every rule here is written to be read next to
the spec, in the spec's order. No I/O, no Dagster.

What a caller may rely on:
- `line_units`, `validate_record`, `iter_unit_outcomes` and `expected_figures` never raise
  on any JSON value (a record may be anything a JSON line can hold).
- Numbers are compared as exact decimals. Parse raw JSON with `loads_exact` (or
  `json.loads(..., parse_float=Decimal)`); a binary float is read as its shortest repr,
  which is the JSON literal for every literal of up to 17 significant digits.
- Timestamps are RFC 3339 with an offset (`RFC3339_PATTERN`), compared as UTC instants
  truncated to microseconds (what a Spark TIMESTAMP holds).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Iterable, Iterator, NamedTuple

# --- API surface -------------------------------------------------------------------------

API_PREFIX = "/v1"
HEALTH_PATH = "/v1/health"
ORDERS_PATH = "/v1/orders"
DEFAULT_PAGE_SIZE = 1000
MIN_PAGE_SIZE = 1
MAX_PAGE_SIZE = 10000

STATUSES = ("completed", "pending", "cancelled", "returned")
CHANNELS = ("web", "store", "mobile", "marketplace")
KNOWN_CURRENCIES = (
    "USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "NOK", "DKK",
    "PLN", "CZK", "NZD", "SGD", "HKD", "MXN", "BRL", "INR", "CNY", "ZAR",
)
_STATUS_SET = frozenset(STATUSES)
_CHANNEL_SET = frozenset(CHANNELS)
_CURRENCY_SET = frozenset(KNOWN_CURRENCIES)

# Required fields per the OpenAPI schemas (Order, Customer, OrderLine).
ORDER_REQUIRED_FIELDS = (
    "order_id", "order_timestamp", "updated_at", "status", "channel", "currency", "customer", "lines",
)
CUSTOMER_REQUIRED_FIELDS = ("customer_id",)
LINE_REQUIRED_FIELDS = ("line_number", "product_id", "quantity", "unit_price")

# --- Limits of the validation rules ----------------------------------------------------------

MAX_QUANTITY = 1_000_000
MAX_UNIT_PRICE = Decimal(10_000_000)
UNIT_PRICE_MAX_DECIMALS = 2
RATE_MAX_DECIMALS = 10  # discount and tax_rate
MONEY_QUANTUM = Decimal("0.01")

# --- Reason codes, in rule order (first failing rule wins) -----------------------------------

INVALID_JSON = "invalid_json"
MISSING_ORDER_ID = "missing_order_id"
MISSING_LINES = "missing_lines"
BAD_ORDER_TIMESTAMP = "bad_order_timestamp"
WRONG_ORDER_DATE = "wrong_order_date"
BAD_UPDATED_AT = "bad_updated_at"
BAD_STATUS = "bad_status"
BAD_CHANNEL = "bad_channel"
UNKNOWN_CURRENCY = "unknown_currency"
MISSING_CUSTOMER_ID = "missing_customer_id"
LINE_NOT_OBJECT = "line_not_object"
BAD_LINE_NUMBER = "bad_line_number"
DUPLICATE_LINE_NUMBER = "duplicate_line_number"
MISSING_PRODUCT_ID = "missing_product_id"
BAD_QUANTITY = "bad_quantity"
QUANTITY_BELOW_ONE = "quantity_below_one"
BAD_UNIT_PRICE = "bad_unit_price"
NEGATIVE_UNIT_PRICE = "negative_unit_price"
BAD_DISCOUNT = "bad_discount"
BAD_TAX_RATE = "bad_tax_rate"

ORDER_REASONS = (
    INVALID_JSON, MISSING_ORDER_ID, MISSING_LINES, BAD_ORDER_TIMESTAMP, WRONG_ORDER_DATE,
    BAD_UPDATED_AT, BAD_STATUS, BAD_CHANNEL, UNKNOWN_CURRENCY, MISSING_CUSTOMER_ID,
)
LINE_REASONS = (
    LINE_NOT_OBJECT, BAD_LINE_NUMBER, DUPLICATE_LINE_NUMBER, MISSING_PRODUCT_ID, BAD_QUANTITY,
    QUANTITY_BELOW_ONE, BAD_UNIT_PRICE, NEGATIVE_UNIT_PRICE, BAD_DISCOUNT, BAD_TAX_RATE,
)
QUARANTINE_REASONS = ORDER_REASONS + LINE_REASONS

# Outcomes of a line unit that is not quarantined.
CURATED = "curated"
SUPERSEDED = "superseded"

# --- Textual formats (shared with the Glue script, hence plain ASCII regexes) ---------------

# RFC 3339 date-time with a mandatory offset; "T"/"Z" may be lower case (RFC 3339 5.6 note).
RFC3339_PATTERN = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))$"
)
# A JSON string accepted as a number ("coercible type change"): optional minus, digits,
# optional fraction. No exponent, no plus sign, no surrounding blanks.
PLAIN_DECIMAL_PATTERN = r"^-?[0-9]+(?:\.[0-9]+)?$"

_RFC3339_RE = re.compile(RFC3339_PATTERN)
_PLAIN_DECIMAL_RE = re.compile(PLAIN_DECIMAL_PATTERN)


# --- Exact JSON ------------------------------------------------------------------------------


class JsonNumber(Decimal):
    """A JSON number literal with a fraction or exponent, kept as an exact Decimal.

    `text` is the literal exactly as received ("1e2", "19.990"), so `dumps_exact` can write
    it back unchanged. Arithmetic on it returns plain Decimals.
    """

    __slots__ = ("text",)

    def __new__(cls, text: str) -> "JsonNumber":
        number = super().__new__(cls, text)
        number.text = text
        return number


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); a line holding them is not valid JSON.
    raise ValueError(f"non-standard JSON constant {name}")


EXACT_DECODER = json.JSONDecoder(parse_float=JsonNumber, parse_constant=_reject_constant)


def loads_exact(text: str | bytes) -> Any:
    """Parse one JSON text strictly; numbers with a fraction/exponent become `JsonNumber`.

    Raises ValueError (json.JSONDecodeError or UnicodeDecodeError) when it is not JSON.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    return EXACT_DECODER.decode(text)


_encode_string = json.encoder.encode_basestring_ascii


def dumps_exact(value: Any) -> str:
    """Compact ASCII JSON with Decimals written as exact literals (never via float).

    A `JsonNumber` is written as its original text; another Decimal as `str(d)`, which is
    a valid JSON number holding exactly that value ("19.99", "1E+2"). Raises ValueError for
    NaN/Infinity and TypeError for values JSON cannot hold.
    """
    parts: list[str] = []
    _dump(value, parts)
    return "".join(parts)


def _dump(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(_encode_string(value))
    elif kind is dict:
        out.append("{")
        first = True
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(_encode_string(key))
            out.append(":")
            _dump(item, out)
        out.append("}")
    elif kind is list or kind is tuple:
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _dump(item, out)
        out.append("]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        out.append(value.text if kind is JsonNumber else str(value))
    elif kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value} is not a JSON number")
        out.append(float.__repr__(value))
    else:
        raise TypeError(f"{kind.__name__} is not JSON serializable")


# --- Value coercion ----------------------------------------------------------------------------


def to_decimal(value: Any) -> Decimal | None:
    """The exact number a JSON value stands for, or None when it is not a number.

    Accepts ints, finite Decimals, finite floats (by shortest repr) and strings matching
    `PLAIN_DECIMAL_PATTERN`. Booleans are never numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str) and _PLAIN_DECIMAL_RE.fullmatch(value):
        return Decimal(value)
    return None


def decimal_places(number: Decimal) -> int:
    """Decimal places of the VALUE (1.50 -> 1, 1E+2 -> 0), computed without rounding."""
    _sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    # Strip trailing zeros of the coefficient: they do not add places to the value.
    trailing = 0
    for digit in reversed(digits):
        if digit != 0 or trailing == -exponent:
            break
        trailing += 1
    if all(digit == 0 for digit in digits):
        return 0
    return -exponent - trailing


def parse_rfc3339(value: Any) -> datetime | None:
    """The UTC instant of an RFC 3339 date-time with an offset, truncated to microseconds.

    None when the value is not a string, does not match `RFC3339_PATTERN`, names an
    impossible date/time/offset, or falls outside datetime's range.
    """
    if not isinstance(value, str):
        return None
    match = _RFC3339_RE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        if zulu:
            offset = timedelta(0)
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                return None
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if sign == "-":
                offset = -offset
        microsecond = int((fraction or "0")[:6].ljust(6, "0"))
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                         microsecond, tzinfo=timezone(offset))
        return local.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        raise TypeError("order_date must be a date, not a datetime")
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _valid_order_id(record: Any) -> str | None:
    if isinstance(record, dict):
        order_id = record.get("order_id")
        if isinstance(order_id, str) and order_id:
            return order_id
    return None


def _non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _brief(value: Any, limit: int = 60) -> str:
    try:
        text = dumps_exact(value)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- Line units ------------------------------------------------------------------------------


def line_units(record: Any) -> int:
    """How many line units one raw record (one JSONL line) counts for.

    Not a JSON object -> 1; `lines` missing, null, not a list or empty -> 1; else len(lines).
    """
    if not isinstance(record, dict):
        return 1
    lines = record.get("lines")
    if not isinstance(lines, list) or not lines:
        return 1
    return len(lines)


# --- Money ----------------------------------------------------------------------------------


def round_money(amount: Decimal) -> Decimal:
    """Round to cents, half away from zero (ROUND_HALF_UP), as Spark's HALF_UP does."""
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)


def _money_input(value: Any, name: str) -> Decimal:
    if isinstance(value, float) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, Decimal or decimal string, never a float/bool")
    return Decimal(value)


def line_amounts(quantity: Any, unit_price: Any, discount: Any = 0, tax_rate: Any = 0) -> dict[str, Decimal]:
    """The money of one order line, exactly as the spec defines it.

    Returns {"gross", "discount_amount", "net", "tax_amount", "total"}, each a Decimal with
    2 places. Inputs are ints, Decimals or decimal strings; floats raise TypeError.
    """
    quantity_d = _money_input(quantity, "quantity")
    price_d = _money_input(unit_price, "unit_price")
    discount_d = _money_input(0 if discount is None else discount, "discount")
    tax_d = _money_input(0 if tax_rate is None else tax_rate, "tax_rate")
    # Enough precision that no intermediate product is rounded by the context.
    with localcontext() as context:
        context.prec = 100
        gross = round_money(quantity_d * price_d)
        discount_amount = round_money(gross * discount_d)
        net = gross - discount_amount
        tax_amount = round_money(net * tax_d)
        total = net + tax_amount
    return {"gross": gross, "discount_amount": discount_amount, "net": net,
            "tax_amount": tax_amount, "total": total}


# --- Validation -------------------------------------------------------------------------------


class UnitVerdict(NamedTuple):
    """The verdict on one line unit of a record.

    `line` is the typed line (see `validate_record`) when the unit is valid, else None;
    `reason` is None when valid, else a code from QUARANTINE_REASONS. `line_number` is the
    element's integer line_number when it has one (informational only), `detail` a short
    human explanation of the reason.
    """

    line: dict[str, Any] | None
    reason: str | None
    line_number: int | None = None
    detail: str | None = None


@dataclass(frozen=True)
class _OrderHeader:
    order_id: str
    order_timestamp: datetime
    updated_at: datetime
    customer_id: str


def _check_order(record: Any, order_date: date) -> tuple[str, str] | _OrderHeader:
    """Order-level rules in spec order: (reason, detail) of the first failure, or the header."""
    if not isinstance(record, dict):
        return INVALID_JSON, f"line holds {type(record).__name__}, not a JSON object"
    order_id = record.get("order_id")
    if not _non_empty_string(order_id):
        return MISSING_ORDER_ID, f"order_id is {_brief(order_id)}"
    lines = record.get("lines")
    if not isinstance(lines, list) or not lines:
        return MISSING_LINES, f"lines is {_brief(lines)}"
    order_timestamp = parse_rfc3339(record.get("order_timestamp"))
    if order_timestamp is None:
        raw = _brief(record.get("order_timestamp"))
        return BAD_ORDER_TIMESTAMP, f"order_timestamp {raw} is not RFC 3339 with an offset"
    if order_timestamp.date() != order_date:
        utc_day = order_timestamp.date().isoformat()
        return WRONG_ORDER_DATE, f"order_timestamp is on {utc_day} UTC, not {order_date.isoformat()}"
    updated_at = parse_rfc3339(record.get("updated_at"))
    if updated_at is None:
        return BAD_UPDATED_AT, f"updated_at {_brief(record.get('updated_at'))} is not RFC 3339 with an offset"
    status = record.get("status")
    if not (isinstance(status, str) and status in _STATUS_SET):
        return BAD_STATUS, f"status {_brief(status)} is not one of {', '.join(STATUSES)}"
    channel = record.get("channel")
    if not (isinstance(channel, str) and channel in _CHANNEL_SET):
        return BAD_CHANNEL, f"channel {_brief(channel)} is not one of {', '.join(CHANNELS)}"
    currency = record.get("currency")
    if not (isinstance(currency, str) and currency in _CURRENCY_SET):
        return UNKNOWN_CURRENCY, f"currency {_brief(currency)} is not a known ISO 4217 code"
    customer = record.get("customer")
    customer_id = customer.get("customer_id") if isinstance(customer, dict) else None
    if not _non_empty_string(customer_id):
        if not isinstance(customer, dict):
            return MISSING_CUSTOMER_ID, "customer is not an object"
        return MISSING_CUSTOMER_ID, f"customer_id is {_brief(customer_id)}"
    return _OrderHeader(order_id, order_timestamp, updated_at, customer_id)


def _integer_value(value: Any) -> Decimal | None:
    """The number as an integral Decimal, or None when it is not an integer value."""
    number = to_decimal(value)
    if number is None or decimal_places(number) != 0:
        return None
    return number


def _small_int(number: Decimal) -> int | None:
    # int() of a huge exponent (1e999999) takes seconds; such a value is never a usable key.
    return int(number) if number.adjusted() < 19 else None


def _check_rate(value: Any) -> Decimal | None:
    """discount / tax_rate: absent or null -> 0; a number in [0, 1] with <= 10 places; else None."""
    if value is None:
        return Decimal(0)
    rate = to_decimal(value)
    if rate is None or rate < 0 or rate > 1 or decimal_places(rate) > RATE_MAX_DECIMALS:
        return None
    return rate


def _check_line(element: Any, seen_line_numbers: set[Decimal]) -> UnitVerdict:
    """Line-level rules in spec order; registers the element's line_number in `seen_line_numbers`."""
    if not isinstance(element, dict):
        return UnitVerdict(None, LINE_NOT_OBJECT, None, f"line holds {_brief(element)}")
    raw_line_number = element.get("line_number")
    line_number = _integer_value(raw_line_number)
    if line_number is None or line_number < 1:
        return UnitVerdict(None, BAD_LINE_NUMBER, None, f"line_number is {_brief(raw_line_number)}")
    number = _small_int(line_number)
    # The first element with a given line_number is kept, whatever its other faults.
    if line_number in seen_line_numbers:
        detail = f"line_number {_brief(raw_line_number)} repeats an earlier line"
        return UnitVerdict(None, DUPLICATE_LINE_NUMBER, number, detail)
    seen_line_numbers.add(line_number)

    product_id = element.get("product_id")
    if not _non_empty_string(product_id):
        return UnitVerdict(None, MISSING_PRODUCT_ID, number, f"product_id is {_brief(product_id)}")

    raw_quantity = element.get("quantity")
    quantity = _integer_value(raw_quantity)
    if quantity is None or quantity > MAX_QUANTITY:
        return UnitVerdict(None, BAD_QUANTITY, number, f"quantity is {_brief(raw_quantity)}")
    if quantity < 1:
        return UnitVerdict(None, QUANTITY_BELOW_ONE, number, f"quantity is {_brief(raw_quantity)}")

    raw_price = element.get("unit_price")
    unit_price = to_decimal(raw_price)
    if unit_price is None or unit_price > MAX_UNIT_PRICE or decimal_places(unit_price) > UNIT_PRICE_MAX_DECIMALS:
        return UnitVerdict(None, BAD_UNIT_PRICE, number, f"unit_price is {_brief(raw_price)}")
    if unit_price < 0:
        return UnitVerdict(None, NEGATIVE_UNIT_PRICE, number, f"unit_price is {_brief(raw_price)}")

    discount = _check_rate(element.get("discount"))
    if discount is None:
        return UnitVerdict(None, BAD_DISCOUNT, number, f"discount is {_brief(element.get('discount'))}")
    tax_rate = _check_rate(element.get("tax_rate"))
    if tax_rate is None:
        return UnitVerdict(None, BAD_TAX_RATE, number, f"tax_rate is {_brief(element.get('tax_rate'))}")

    quantity_int = int(quantity)
    line = {
        "line_number": number,
        "product_id": product_id,
        "quantity": quantity_int,
        "unit_price": unit_price,
        "discount": discount,
        "tax_rate": tax_rate,
    }
    line.update(line_amounts(quantity_int, unit_price, discount, tax_rate))
    return UnitVerdict(line, None, number, None)


def _line_number_hint(record: Any, index: int) -> int | None:
    if not isinstance(record, dict):
        return None
    lines = record.get("lines")
    if not isinstance(lines, list) or index >= len(lines) or not isinstance(lines[index], dict):
        return None
    number = _integer_value(lines[index].get("line_number"))
    return _small_int(number) if number is not None and number >= 1 else None


def validate_record(record: Any, order_date: date | str) -> list[UnitVerdict]:
    """Validate one (surviving) record: one `UnitVerdict` per line unit, in line order.

    An order-level failure gives every unit that reason. For a valid unit, `line` holds:
    order_id, order_timestamp, updated_at (UTC datetimes), customer_id, status, channel,
    currency, store_id (as received), line_number, product_id, quantity (int), unit_price,
    discount, tax_rate (Decimals) and gross, discount_amount, net, tax_amount, total.
    Dedup is not applied here (see `iter_unit_outcomes`).
    """
    order_date = _as_date(order_date)
    header = _check_order(record, order_date)
    if not isinstance(header, _OrderHeader):
        reason, detail = header
        return [UnitVerdict(None, reason, _line_number_hint(record, index), detail)
                for index in range(line_units(record))]

    order_fields = {
        "order_id": header.order_id,
        "order_timestamp": header.order_timestamp,
        "updated_at": header.updated_at,
        "customer_id": header.customer_id,
        "status": record["status"],
        "channel": record["channel"],
        "currency": record["currency"],
        "store_id": record.get("store_id"),
    }
    seen: set[Decimal] = set()
    verdicts = []
    for element in record["lines"]:
        verdict = _check_line(element, seen)
        if verdict.line is not None:
            verdict = verdict._replace(line={**order_fields, **verdict.line})
        verdicts.append(verdict)
    return verdicts


# --- Dedup and the day's figures -------------------------------------------------------------------


_NO_INSTANT = (0,)


def dedup_rank(record: Any) -> tuple:
    """Sort key of a record's updated_at: unparseable/missing sorts lowest."""
    updated_at = parse_rfc3339(record.get("updated_at")) if isinstance(record, dict) else None
    return _NO_INSTANT if updated_at is None else (1, updated_at)


class UnitOutcome(NamedTuple):
    """What became of one line unit: `outcome` is CURATED, SUPERSEDED or a reason code."""

    record_index: int
    unit_index: int
    order_id: str | None
    line_number: int | None
    outcome: str
    detail: str | None
    line: dict[str, Any] | None


def _winners(records: list[Any]) -> dict[str, int]:
    best: dict[str, tuple[tuple, int]] = {}
    for index, record in enumerate(records):
        order_id = _valid_order_id(record)
        if order_id is None:
            continue
        # (updated_at, page, position) == (updated_at, index) for records in listing order.
        key = (dedup_rank(record), index)
        if order_id not in best or key > best[order_id]:
            best[order_id] = key
    return {order_id: key[1] for order_id, key in best.items()}


def iter_unit_outcomes(records_in_page_order: Iterable[Any], order_date: date | str) -> Iterator[UnitOutcome]:
    """Every line unit of the day with its outcome, records in listing order.

    `records_in_page_order` are the parsed records of all pages, page 1 first, each page in
    file order, so a record's index orders exactly like (page number, position in page).
    """
    order_date = _as_date(order_date)
    records = list(records_in_page_order)
    winners = _winners(records)
    for index, record in enumerate(records):
        order_id = _valid_order_id(record)
        if order_id is not None and winners[order_id] != index:
            for unit in range(line_units(record)):
                yield UnitOutcome(index, unit, order_id, _line_number_hint(record, unit), SUPERSEDED,
                                  "a newer copy of this order was received", None)
            continue
        for unit, verdict in enumerate(validate_record(record, order_date)):
            yield UnitOutcome(index, unit, order_id, verdict.line_number,
                              verdict.reason or CURATED, verdict.detail, verdict.line)


def expected_figures(records_in_page_order: Iterable[Any], order_date: date | str) -> dict[str, Any]:
    """The reconciliation figures of one day of raw records (listing order, see above).

    Returns {"raw_records", "raw_lines", "curated_lines", "quarantine_lines",
    "superseded_lines", "net", "quarantine_by_reason"}; line counts are line units,
    `net` is the Decimal sum of curated lines' net, `quarantine_by_reason` maps each reason
    that occurs to its units, in rule order. raw_lines == curated + quarantine + superseded.
    Streams: memory holds one small summary per order_id, not the records.
    """
    order_date = _as_date(order_date)
    raw_records = raw_lines = superseded = 0
    # Summary of a record's validation: (units, curated units, net, reason counter).
    open_summaries: list[tuple[int, int, Decimal, Counter]] = []
    best: dict[str, tuple[tuple, tuple[int, int, Decimal, Counter]]] = {}
    for index, record in enumerate(records_in_page_order):
        raw_records += 1
        units = line_units(record)
        raw_lines += units
        verdicts = validate_record(record, order_date)
        curated = [v.line for v in verdicts if v.line is not None]
        summary = (units, len(curated), sum((line["net"] for line in curated), Decimal("0.00")),
                   Counter(v.reason for v in verdicts if v.reason is not None))
        order_id = _valid_order_id(record)
        if order_id is None:
            open_summaries.append(summary)
            continue
        key = (dedup_rank(record), index)
        previous = best.get(order_id)
        if previous is None:
            best[order_id] = (key, summary)
        elif key > previous[0]:
            superseded += previous[1][0]
            best[order_id] = (key, summary)
        else:
            superseded += units

    curated_lines = 0
    net = Decimal("0.00")
    reasons: Counter = Counter()
    for _units, curated_count, curated_net, counter in open_summaries + [s for _k, s in best.values()]:
        curated_lines += curated_count
        net += curated_net
        reasons.update(counter)
    quarantine_lines = sum(reasons.values())
    return {
        "raw_records": raw_records,
        "raw_lines": raw_lines,
        "curated_lines": curated_lines,
        "quarantine_lines": quarantine_lines,
        "superseded_lines": superseded,
        "net": net,
        "quarantine_by_reason": {reason: reasons[reason] for reason in QUARANTINE_REASONS if reasons[reason]},
    }


def parse_jsonl_line(line: str | bytes) -> Any:
    """A raw landing line as a record for the functions above.

    Valid JSON comes back parsed (numbers exact); text that is not JSON comes back as an
    `UnparseableLine`, which, like any non-object, is one `invalid_json` unit.
    """
    try:
        return loads_exact(line)
    except ValueError:
        return UnparseableLine(line if isinstance(line, str) else bytes(line).decode("utf-8", "replace"))


@dataclass(frozen=True)
class UnparseableLine:
    """A raw line that is not JSON at all (kept so callers can report it)."""

    text: str


def records_from_jsonl(data: bytes) -> list[Any]:
    """The records of one landed page file, in file order; blank lines are not records.

    Splits on \\n, \\r and \\r\\n only, as Spark's JSON reader does.
    """
    return [parse_jsonl_line(line) for line in data.splitlines() if line.strip(b" \t")]
