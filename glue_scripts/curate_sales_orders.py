"""Glue job: curate one or more committed days of raw sales orders into typed parquet tables.

Reads ``raw/sales_orders/order_date=D/_manifest.json`` and exactly the page files it lists,
explodes every raw JSON line into line units, deduplicates re-sent orders, validates, and
writes four curated tables per day (order_date column inside each file):

    curated/order_lines/order_date=D/   curated/quarantine/order_date=D/
    curated/dim_customer/order_date=D/  curated/dim_product/order_date=D/

Runs unchanged as an AWS Glue 5 job (PySpark 3.5, ``awsglue`` present), as a Dagster Pipes
subprocess, or by hand::

    python glue_scripts/curate_sales_orders.py --lake_root ./.sales_data/lake \\
        --order_date 2026-11-20 [--order_date_end 2026-11-22]

Standalone by design: Glue ships one file, so nothing from ``sales_assets`` is imported. The
per-record rules are plain top-level functions (``explode_record`` and helpers) so they can be
unit-tested without Spark; ``run(spark, lake_root, dates)`` is the whole Spark job and returns
the summary that ``main`` reports through Pipes and prints on stdout as one JSON line.

Pipes on Glue: dagster-aws ``PipesGlueClient`` passes ``--dagster-pipes-context`` /
``--dagster-pipes-messages`` job arguments. The context may be inline (``PipesEnvContextInjector``)
or on S3 (``PipesS3ContextInjector``, needs ``s3:GetObject`` for the job role); messages go to
stdout for the default ``PipesCloudWatchMessageReader`` (needs continuous CloudWatch logging on
the job) or to S3 for ``PipesS3MessageReader`` (needs ``s3:PutObject``). Both are handled here.
"""
from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import re
import shutil
import sys
import uuid
from contextlib import contextmanager, nullcontext
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import unquote, urlparse

# --------------------------------------------------------------------------------------
# Rules (the reconciliation contract shared with the demo source's expected figures)
# --------------------------------------------------------------------------------------

RAW_PREFIX = "raw/sales_orders"
CURATED_PREFIX = "curated"
MANIFEST_NAME = "_manifest.json"

TABLE_ORDER_LINES = "order_lines"
TABLE_QUARANTINE = "quarantine"
TABLE_DIM_CUSTOMER = "dim_customer"
TABLE_DIM_PRODUCT = "dim_product"
TABLES = (TABLE_ORDER_LINES, TABLE_QUARANTINE, TABLE_DIM_CUSTOMER, TABLE_DIM_PRODUCT)

VALID_STATUSES = frozenset({"completed", "pending", "cancelled", "returned"})
VALID_CHANNELS = frozenset({"web", "store", "mobile", "marketplace"})
KNOWN_CURRENCIES = frozenset(
    "USD EUR GBP CAD AUD JPY CHF SEK NOK DKK PLN CZK NZD SGD HKD MXN BRL INR CNY ZAR".split()
)

MAX_QUANTITY = 1_000_000
MAX_UNIT_PRICE = Decimal(10_000_000)
UNIT_PRICE_MAX_PLACES = 2
RATE_MAX_PLACES = 10
# line_number lands in a 32-bit int column; anything larger cannot be stored.
MAX_LINE_NUMBER = 2**31 - 1

KIND_CURATED = "curated"
KIND_QUARANTINE = "quarantine"

# Reason codes (exact strings, first failing rule wins).
R_INVALID_JSON = "invalid_json"
R_MISSING_ORDER_ID = "missing_order_id"
R_MISSING_LINES = "missing_lines"
R_BAD_ORDER_TIMESTAMP = "bad_order_timestamp"
R_WRONG_ORDER_DATE = "wrong_order_date"
R_BAD_UPDATED_AT = "bad_updated_at"
R_BAD_STATUS = "bad_status"
R_BAD_CHANNEL = "bad_channel"
R_UNKNOWN_CURRENCY = "unknown_currency"
R_MISSING_CUSTOMER_ID = "missing_customer_id"
R_LINE_NOT_OBJECT = "line_not_object"
R_BAD_LINE_NUMBER = "bad_line_number"
R_DUPLICATE_LINE_NUMBER = "duplicate_line_number"
R_MISSING_PRODUCT_ID = "missing_product_id"
R_BAD_QUANTITY = "bad_quantity"
R_QUANTITY_BELOW_ONE = "quantity_below_one"
R_BAD_UNIT_PRICE = "bad_unit_price"
R_NEGATIVE_UNIT_PRICE = "negative_unit_price"
R_BAD_DISCOUNT = "bad_discount"
R_BAD_TAX_RATE = "bad_tax_rate"
REASON_CODES = (
    R_INVALID_JSON, R_MISSING_ORDER_ID, R_MISSING_LINES, R_BAD_ORDER_TIMESTAMP,
    R_WRONG_ORDER_DATE, R_BAD_UPDATED_AT, R_BAD_STATUS, R_BAD_CHANNEL, R_UNKNOWN_CURRENCY,
    R_MISSING_CUSTOMER_ID, R_LINE_NOT_OBJECT, R_BAD_LINE_NUMBER, R_DUPLICATE_LINE_NUMBER,
    R_MISSING_PRODUCT_ID, R_BAD_QUANTITY, R_QUANTITY_BELOW_ONE, R_BAD_UNIT_PRICE,
    R_NEGATIVE_UNIT_PRICE, R_BAD_DISCOUNT, R_BAD_TAX_RATE,
)

CENT = Decimal("0.01")
ZERO = Decimal(0)
# Enough digits that quantity * price * rate is always exact before the explicit rounding.
MONEY_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_UP)
DETAIL_MAX_CHARS = 200

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
# "Plain decimal number" strings that are coerced: optional minus, digits, optional fraction.
_PLAIN_DECIMAL = re.compile(r"^-?\d+(?:\.\d+)?$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class _RejectConstant(ValueError):
    """NaN / Infinity are not JSON; such a line is invalid_json."""


def _reject_constant(name: str) -> Any:
    raise _RejectConstant(name)


def parse_json_line(raw_line: str) -> Any:
    """Parse one raw line exactly: floats become Decimal, NaN/Infinity raise ValueError."""
    return json.loads(raw_line, parse_float=Decimal, parse_constant=_reject_constant)


def parse_rfc3339_utc(value: Any) -> dt.datetime | None:
    """Return the UTC instant of an RFC 3339 timestamp with an explicit offset, else None.

    None for non-strings, timestamps without ``Z``/``±HH:MM``, and impossible dates. Fractions
    beyond microseconds are truncated (Spark timestamps are microseconds).
    """
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    try:
        if zulu:
            tz = dt.timezone.utc
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                return None
            offset = dt.timedelta(hours=int(off_h), minutes=int(off_m))
            tz = dt.timezone(-offset if sign == "-" else offset)
        micros = int((frac or "0")[:6].ljust(6, "0"))
        local = dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz
        )
    except ValueError:
        return None
    return local.astimezone(dt.timezone.utc)


def epoch_micros(instant: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime (the dedup sort key)."""
    return (instant - _EPOCH) // dt.timedelta(microseconds=1)


def coerce_number(value: Any) -> Decimal | None:
    """The exact numeric value of a JSON value, or None when it is not a number.

    ints and (Decimal-parsed) floats are numbers; a string holding a plain decimal number
    ("3", "19.99", "-1") is coerced; booleans are never numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):  # only when a caller parsed without parse_float=Decimal
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str) and _PLAIN_DECIMAL.match(value):
        return Decimal(value)
    return None


def coerce_integer(value: Any) -> int | None:
    """The integer value of a number (3, 3.0, "3") or None when it is not integer-valued."""
    number = coerce_number(value)
    if number is None or number != number.to_integral_value():
        return None
    return int(number)


def decimal_places(value: Decimal) -> int:
    """Significant decimal places of a value: 19.990 -> 2, 5 -> 0 (exact, no context rounding)."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0 or not any(digits):
        return 0
    places = -exponent
    trailing = 0
    for digit in reversed(digits):
        if digit != 0 or trailing >= places:
            break
        trailing += 1
    return places - trailing


def round2(value: Decimal) -> Decimal:
    """Round half-up to cents."""
    return value.quantize(CENT, rounding=decimal.ROUND_HALF_UP, context=MONEY_CONTEXT)


def line_amounts(quantity: int, unit_price: Decimal, discount: Decimal, tax_rate: Decimal) -> dict:
    """The money columns of one valid line, each a Decimal with 2 places (ROUND_HALF_UP)."""
    ctx = MONEY_CONTEXT
    gross = round2(ctx.multiply(Decimal(quantity), unit_price))
    discount_amount = round2(ctx.multiply(gross, discount))
    net = ctx.subtract(gross, discount_amount)
    tax_amount = round2(ctx.multiply(net, tax_rate))
    total = ctx.add(net, tax_amount)
    return {
        "gross": gross,
        "discount_amount": discount_amount,
        "net": round2(net),
        "tax_amount": tax_amount,
        "total": round2(total),
    }


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= DETAIL_MAX_CHARS else text[: DETAIL_MAX_CHARS - 3] + "..."


def _opt_text(value: Any) -> str | None:
    """Descriptive attributes are kept as text whatever JSON type they arrived in."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    return json.dumps(value, default=str, sort_keys=True)


def _non_empty_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _check_rate(record_line: dict, field: str) -> tuple[Decimal | None, str | None]:
    """(value, error detail) of discount / tax_rate; absent or null means 0."""
    raw = record_line.get(field)
    if raw is None:
        return ZERO, None
    number = coerce_number(raw)
    if number is None:
        return None, f"{field} {_short(raw)} is not a number"
    if number < 0 or number > 1:
        return None, f"{field} {number} outside [0, 1]"
    if decimal_places(number) > RATE_MAX_PLACES:
        return None, f"{field} {number} has more than {RATE_MAX_PLACES} decimal places"
    return number, None


def _order_level_error(record: dict, order_date: dt.date) -> tuple[str, str] | None:
    """First failing order-level rule after order_id and lines, as (reason, detail)."""
    order_ts = parse_rfc3339_utc(record.get("order_timestamp"))
    if order_ts is None:
        return R_BAD_ORDER_TIMESTAMP, f"order_timestamp {_short(record.get('order_timestamp'))}"
    if order_ts.date() != order_date:
        return R_WRONG_ORDER_DATE, (
            f"order_timestamp {record['order_timestamp']} is UTC day {order_ts.date()}, "
            f"partition is {order_date}"
        )
    if parse_rfc3339_utc(record.get("updated_at")) is None:
        return R_BAD_UPDATED_AT, f"updated_at {_short(record.get('updated_at'))}"
    status = record.get("status")
    if not isinstance(status, str) or status not in VALID_STATUSES:
        return R_BAD_STATUS, f"status {_short(status)}"
    channel = record.get("channel")
    if not isinstance(channel, str) or channel not in VALID_CHANNELS:
        return R_BAD_CHANNEL, f"channel {_short(channel)}"
    currency = record.get("currency")
    if not isinstance(currency, str) or currency not in KNOWN_CURRENCIES:
        return R_UNKNOWN_CURRENCY, f"currency {_short(currency)}"
    customer = record.get("customer")
    if not isinstance(customer, dict) or _non_empty_str(customer.get("customer_id")) is None:
        detail = (
            "customer is not an object" if not isinstance(customer, dict)
            else f"customer_id {_short(customer.get('customer_id'))}"
        )
        return R_MISSING_CUSTOMER_ID, detail
    return None


def _line_level_error(
    element: Any, seen_line_numbers: set[int]
) -> tuple[str, str, int | None, dict | None]:
    """Validate one element of ``lines``.

    Returns (reason, detail, line_number, values); reason is None for a valid line, whose
    values hold quantity, unit_price, discount and tax_rate. A valid line_number is added to
    ``seen_line_numbers`` whatever happens later, so only its first occurrence can be kept.
    """
    if not isinstance(element, dict):
        return R_LINE_NOT_OBJECT, f"line is {type(element).__name__}", None, None
    line_number = coerce_integer(element.get("line_number"))
    if line_number is None or line_number < 1 or line_number > MAX_LINE_NUMBER:
        return R_BAD_LINE_NUMBER, f"line_number {_short(element.get('line_number'))}", None, None
    if line_number in seen_line_numbers:
        return (
            R_DUPLICATE_LINE_NUMBER, f"line_number {line_number} seen earlier in the order",
            line_number, None,
        )
    seen_line_numbers.add(line_number)
    if _non_empty_str(element.get("product_id")) is None:
        return (
            R_MISSING_PRODUCT_ID, f"product_id {_short(element.get('product_id'))}",
            line_number, None,
        )
    raw_quantity = element.get("quantity")
    quantity = coerce_integer(raw_quantity)
    if quantity is None or quantity > MAX_QUANTITY:
        return R_BAD_QUANTITY, f"quantity {_short(raw_quantity)}", line_number, None
    if quantity < 1:
        return R_QUANTITY_BELOW_ONE, f"quantity {quantity}", line_number, None
    raw_price = element.get("unit_price")
    unit_price = coerce_number(raw_price)
    if (
        unit_price is None
        or unit_price > MAX_UNIT_PRICE
        or decimal_places(unit_price) > UNIT_PRICE_MAX_PLACES
    ):
        return R_BAD_UNIT_PRICE, f"unit_price {_short(raw_price)}", line_number, None
    if unit_price < 0:
        return R_NEGATIVE_UNIT_PRICE, f"unit_price {unit_price}", line_number, None
    discount, detail = _check_rate(element, "discount")
    if detail is not None:
        return R_BAD_DISCOUNT, detail, line_number, None
    tax_rate, detail = _check_rate(element, "tax_rate")
    if detail is not None:
        return R_BAD_TAX_RATE, detail, line_number, None
    values = {"quantity": quantity, "unit_price": unit_price, "discount": discount, "tax_rate": tax_rate}
    return None, None, line_number, values


def _as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def explode_record(
    raw_line: str,
    order_date: dt.date | str,
    page: int,
    position: int,
    run_id: str | None = None,
) -> list[dict]:
    """Turn one raw JSONL line into its line units (never raises on bad input).

    Each unit is a dict with every key of ``UNIT_COLUMNS``: ``kind`` is "curated" or
    "quarantine" (with ``reason``, ``detail`` and ``raw_record``); ``dedup_order_id`` and
    ``updated_key`` (UTC epoch microseconds, None when unparseable) are the dedup key, shared
    by all units of the record. Deduplication itself happens across records, in Spark.
    """
    order_date = _as_date(order_date)
    base = dict.fromkeys(UNIT_COLUMNS)
    base.update(order_date=order_date, source_page=page, position=position, ingest_run_id=run_id)

    def quarantine(reason: str, detail: str, unit_index: int, **extra: Any) -> dict:
        unit = dict(base, kind=KIND_QUARANTINE, reason=reason, detail=detail,
                    raw_record=raw_line, unit_index=unit_index)
        unit.update(extra)
        return unit

    try:
        record = parse_json_line(raw_line)
    except (ValueError, RecursionError) as exc:
        return [quarantine(R_INVALID_JSON, f"not JSON: {_short(str(exc))}", 0)]
    if not isinstance(record, dict):
        return [quarantine(R_INVALID_JSON, f"JSON {type(record).__name__}, not an object", 0)]

    order_id = _non_empty_str(record.get("order_id"))
    lines = record.get("lines")
    has_lines = isinstance(lines, list) and len(lines) > 0
    updated = parse_rfc3339_utc(record.get("updated_at"))
    base.update(
        order_id=order_id,
        dedup_order_id=order_id,
        updated_key=epoch_micros(updated) if updated is not None else None,
    )

    if order_id is None:
        order_error = (R_MISSING_ORDER_ID, f"order_id {_short(record.get('order_id'))}")
    elif not has_lines:
        order_error = (R_MISSING_LINES, f"lines {_short(lines) if 'lines' in record else 'absent'}")
    else:
        order_error = _order_level_error(record, order_date)

    if order_error is not None:
        if not has_lines:
            return [quarantine(*order_error, 0)]
        units = []
        for index, element in enumerate(lines):
            number = coerce_integer(element.get("line_number")) if isinstance(element, dict) else None
            if number is not None and not 1 <= number <= MAX_LINE_NUMBER:
                number = None
            units.append(quarantine(*order_error, index, line_number=number))
        return units

    customer = record["customer"]
    order_fields = {
        "order_timestamp": parse_rfc3339_utc(record["order_timestamp"]),
        "updated_at": updated,
        "customer_id": customer["customer_id"],
        "channel": record["channel"],
        "store_id": _opt_text(record.get("store_id")),
        "status": record["status"],
        "currency": record["currency"],
        "customer_name": _opt_text(customer.get("name")),
        "customer_email": _opt_text(customer.get("email")),
        "customer_segment": _opt_text(customer.get("segment")),
        "customer_country": _opt_text(customer.get("country")),
        "customer_region": _opt_text(customer.get("region")),
        "customer_city": _opt_text(customer.get("city")),
    }
    units = []
    seen: set[int] = set()
    for index, element in enumerate(lines):
        reason, detail, line_number, values = _line_level_error(element, seen)
        if reason is not None:
            units.append(quarantine(reason, detail, index, line_number=line_number))
            continue
        unit = dict(base, kind=KIND_CURATED, unit_index=index, line_number=line_number)
        unit.update(order_fields)
        unit.update(
            product_id=element["product_id"],
            sku=_opt_text(element.get("sku")),
            product_name=_opt_text(element.get("product_name")),
            category=_opt_text(element.get("category")),
            brand=_opt_text(element.get("brand")),
            quantity=values["quantity"],
            unit_price=values["unit_price"].quantize(CENT, context=MONEY_CONTEXT),
            discount=values["discount"],
            tax_rate=values["tax_rate"],
        )
        unit.update(line_amounts(**values))
        units.append(unit)
    return units


def split_page_text(text: str) -> list[str]:
    """The JSONL lines of one page file; a final newline does not make an extra line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def explode_page(text: str, order_date: dt.date | str, page: int, run_id: str | None) -> Iterator[dict]:
    """All line units of one page file, positions counted from 1 in file order."""
    for position, raw_line in enumerate(split_page_text(text), start=1):
        yield from explode_record(raw_line, order_date, page, position, run_id)


# --------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------

# (name, Spark SQL type) in the curated column order of the spec.
ORDER_LINES_COLUMNS = (
    ("order_id", "string"), ("line_number", "int"), ("order_date", "date"),
    ("order_timestamp", "timestamp"), ("updated_at", "timestamp"), ("customer_id", "string"),
    ("product_id", "string"), ("channel", "string"), ("store_id", "string"), ("status", "string"),
    ("currency", "string"), ("quantity", "int"), ("unit_price", "decimal(18,2)"),
    ("discount", "decimal(12,10)"), ("tax_rate", "decimal(12,10)"), ("gross", "decimal(18,2)"),
    ("discount_amount", "decimal(18,2)"), ("net", "decimal(18,2)"), ("tax_amount", "decimal(18,2)"),
    ("total", "decimal(18,2)"), ("customer_name", "string"), ("customer_email", "string"),
    ("customer_segment", "string"), ("customer_country", "string"), ("customer_region", "string"),
    ("customer_city", "string"), ("sku", "string"), ("product_name", "string"),
    ("category", "string"), ("brand", "string"), ("source_page", "int"), ("ingest_run_id", "string"),
)
QUARANTINE_COLUMNS = (
    ("order_date", "date"), ("order_id", "string"), ("line_number", "int"), ("reason", "string"),
    ("detail", "string"), ("raw_record", "string"), ("source_page", "int"),
    ("ingest_run_id", "string"),
)
DIM_CUSTOMER_COLUMNS = (
    ("customer_id", "string"), ("customer_name", "string"), ("email", "string"),
    ("segment", "string"), ("country", "string"), ("region", "string"), ("city", "string"),
    ("updated_at", "timestamp"), ("order_date", "date"),
)
DIM_PRODUCT_COLUMNS = (
    ("product_id", "string"), ("sku", "string"), ("product_name", "string"),
    ("category", "string"), ("brand", "string"), ("updated_at", "timestamp"),
    ("order_date", "date"),
)
TABLE_COLUMNS = {
    TABLE_ORDER_LINES: ORDER_LINES_COLUMNS,
    TABLE_QUARANTINE: QUARANTINE_COLUMNS,
    TABLE_DIM_CUSTOMER: DIM_CUSTOMER_COLUMNS,
    TABLE_DIM_PRODUCT: DIM_PRODUCT_COLUMNS,
}
# Internal columns carried between the Python explode and the Spark dedup.
_INTERNAL_COLUMNS = (
    ("kind", "string"), ("dedup_order_id", "string"), ("updated_key", "bigint"),
    ("position", "int"), ("unit_index", "int"), ("reason", "string"), ("detail", "string"),
    ("raw_record", "string"),
)
_UNIT_SCHEMA_COLUMNS = _INTERNAL_COLUMNS + ORDER_LINES_COLUMNS
UNIT_COLUMNS = tuple(name for name, _ in _UNIT_SCHEMA_COLUMNS)


def _spark_type(sql_type: str):
    from pyspark.sql import types as T

    simple = {
        "string": T.StringType(), "int": T.IntegerType(), "bigint": T.LongType(),
        "date": T.DateType(), "timestamp": T.TimestampType(),
    }
    if sql_type in simple:
        return simple[sql_type]
    precision, scale = re.match(r"decimal\((\d+),(\d+)\)", sql_type).groups()
    return T.DecimalType(int(precision), int(scale))


def _struct(columns: Iterable[tuple[str, str]]):
    from pyspark.sql import types as T

    return T.StructType([T.StructField(name, _spark_type(kind), True) for name, kind in columns])


# --------------------------------------------------------------------------------------
# Lake paths: a local folder (renames for a safe swap) or s3:// (direct overwrite)
# --------------------------------------------------------------------------------------


class Lake:
    """Where the lake lives, and the path spellings Spark and the local filesystem need."""

    def __init__(self, lake_root: str):
        root = str(lake_root)
        parsed = urlparse(root)
        if parsed.scheme in ("s3", "s3a", "s3n"):
            self.local_root = None
            self.uri_root = root.rstrip("/")
        elif parsed.scheme == "file":
            self.local_root = os.path.abspath(unquote(parsed.path))
            self.uri_root = "file://" + self.local_root
        elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
            self.local_root = os.path.abspath(os.path.expanduser(root))
            self.uri_root = "file://" + self.local_root
        else:
            raise ValueError(f"lake_root {root!r}: expected a folder, file:// URI or s3://bucket/prefix")

    @property
    def is_local(self) -> bool:
        return self.local_root is not None

    def uri(self, key: str) -> str:
        return f"{self.uri_root}/{key.lstrip('/')}"

    def local(self, key: str) -> str:
        return os.path.join(self.local_root, *key.strip("/").split("/"))


class ManifestMissingError(RuntimeError):
    """The raw partition of a day was never committed (no _manifest.json)."""


def manifest_key(order_date: str) -> str:
    return f"{RAW_PREFIX}/order_date={order_date}/{MANIFEST_NAME}"


def curated_key(table: str, order_date: str) -> str:
    return f"{CURATED_PREFIX}/{table}/order_date={order_date}"


def _missing_manifest(order_date: str, where: str) -> ManifestMissingError:
    return ManifestMissingError(
        f"order_date={order_date}: no {MANIFEST_NAME} at {where}; the raw partition for "
        f"{order_date} was never committed (land it first)"
    )


def read_small_file(spark, uri: str) -> bytes | None:
    """The bytes of one small file through Spark's Hadoop FileSystem, None when it is absent.

    Spark's file readers silently skip names starting with ``_`` (``_manifest.json`` too), so
    this goes through the FileSystem API instead: S3 on Glue (EMRFS), local paths elsewhere.
    """
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return None
    buffer = jvm.java.io.ByteArrayOutputStream()
    # copyBytes(..., close=True) closes both streams.
    jvm.org.apache.hadoop.io.IOUtils.copyBytes(fs.open(path), buffer, 65536, True)
    return bytes(buffer.toByteArray())


def read_manifests(spark, lake: Lake, dates: Sequence[str]) -> dict[str, dict]:
    """The parsed manifest of each date; ManifestMissingError names the first uncommitted one."""
    manifests: dict[str, dict] = {}
    for day in dates:
        uri = lake.uri(manifest_key(day))
        body = read_small_file(spark, uri)
        if body is None:
            raise _missing_manifest(day, uri)
        manifest = json.loads(body.decode("utf-8"))
        if str(manifest.get("order_date")) != day:
            raise ValueError(f"{uri} is for order_date {manifest.get('order_date')!r}, not {day}")
        manifests[day] = manifest
    return manifests


# --------------------------------------------------------------------------------------
# Spark stages
# --------------------------------------------------------------------------------------


def _register_for_workers() -> None:
    """Ship this module's functions to Python workers by value.

    As ``__main__`` (Glue, subprocess) cloudpickle already does; when imported under another
    name (tests load the file with importlib) the workers could not import it by name.
    """
    module = sys.modules.get(__name__)
    if __name__ != "__main__" and module is not None:
        from pyspark import cloudpickle

        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:
            pass


def _page_index(lake: Lake, manifests: dict[str, dict]) -> dict[str, tuple[str, int, str]]:
    """Page key -> (order_date, page number, run_id) for every page the manifests list."""
    index = {}
    for day, manifest in manifests.items():
        for page in manifest.get("pages") or []:
            index[page["key"].lstrip("/")] = (day, int(page["page"]), manifest.get("run_id"))
    return index


def _units_of_pages(page_index: dict[str, tuple[str, int, str]]) -> Callable:
    def page_key(file_uri: str) -> str | None:
        # Keys start with raw/sales_orders/; the last occurrence is the key's own start.
        for candidate in (file_uri, unquote(file_uri)):
            key = candidate[candidate.rfind(RAW_PREFIX + "/"):]
            if key in page_index:
                return key
        return None

    def explode_partition(rows: Iterable) -> Iterator[tuple]:
        for text, file_uri in rows:
            key = page_key(file_uri)
            if key is None:
                raise RuntimeError(f"{file_uri} is not a page listed in a manifest")
            day, page, run_id = page_index[key]
            for unit in explode_page(text, day, page, run_id):
                yield tuple(unit[name] for name in UNIT_COLUMNS)

    return explode_partition


def read_units(spark, lake: Lake, manifests: dict[str, dict]):
    """DataFrame of every line unit of the listed pages, with a ``superseded`` flag.

    Dedup is per order_date and order_id: the record with the greatest (updated_at, page,
    position) survives, unparseable updated_at sorting lowest; units without a valid
    order_id are never superseded.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    page_index = _page_index(lake, manifests)
    schema = _struct(_UNIT_SCHEMA_COLUMNS)
    if not page_index:
        units = spark.createDataFrame([], schema)
    else:
        _register_for_workers()
        paths = [lake.uri(key) for key in sorted(page_index)]
        pages = spark.read.text(paths, wholetext=True).select("value", F.input_file_name().alias("file"))
        units = spark.createDataFrame(
            pages.rdd.mapPartitions(_units_of_pages(page_index)), schema, verifySchema=False
        )
    newest_first = Window.partitionBy("order_date", "dedup_order_id").orderBy(
        F.col("updated_key").desc_nulls_last(), F.col("source_page").desc(), F.col("position").desc()
    )
    rank = F.when(F.col("dedup_order_id").isNull(), F.lit(1)).otherwise(F.dense_rank().over(newest_first))
    return units.withColumn("superseded", rank > 1)


def _latest_per_key(lines, key: str, columns: Sequence[tuple[str, Any]]):
    """One row per (order_date, key): attributes of the line with greatest (updated_at, order_id)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    latest = Window.partitionBy("order_date", key).orderBy(
        F.col("updated_at").desc(), F.col("order_id").desc(), F.col("line_number").desc()
    )
    return (
        lines.withColumn("_rank", F.row_number().over(latest))
        .filter(F.col("_rank") == 1)
        .select(*[F.col(source).alias(name) for name, source in columns])
    )


def build_tables(units) -> dict[str, Any]:
    """The four curated DataFrames (all days) from the deduplicated units."""
    from pyspark.sql import functions as F

    live = units.filter(~F.col("superseded"))
    lines = live.filter(F.col("kind") == KIND_CURATED).select(
        *[F.col(name).cast(kind) for name, kind in ORDER_LINES_COLUMNS]
    )
    quarantine = live.filter(F.col("kind") == KIND_QUARANTINE).select(
        *[F.col(name).cast(kind) for name, kind in QUARANTINE_COLUMNS],
        "position", "unit_index",
    )
    dim_customer = _latest_per_key(lines, "customer_id", [
        ("customer_id", "customer_id"), ("customer_name", "customer_name"),
        ("email", "customer_email"), ("segment", "customer_segment"),
        ("country", "customer_country"), ("region", "customer_region"),
        ("city", "customer_city"), ("updated_at", "updated_at"), ("order_date", "order_date"),
    ])
    dim_product = _latest_per_key(lines, "product_id", [
        ("product_id", "product_id"), ("sku", "sku"), ("product_name", "product_name"),
        ("category", "category"), ("brand", "brand"), ("updated_at", "updated_at"),
        ("order_date", "order_date"),
    ])
    return {
        TABLE_ORDER_LINES: lines,
        TABLE_QUARANTINE: quarantine,
        TABLE_DIM_CUSTOMER: dim_customer,
        TABLE_DIM_PRODUCT: dim_product,
    }


# Deterministic row order inside each file, so a re-run writes identical data.
_SORT_KEYS = {
    TABLE_ORDER_LINES: ("order_id", "line_number"),
    TABLE_QUARANTINE: ("source_page", "position", "unit_index"),
    TABLE_DIM_CUSTOMER: ("customer_id",),
    TABLE_DIM_PRODUCT: ("product_id",),
}


def write_day(spark, lake: Lake, table: str, frame, order_date: str) -> str:
    """Replace ``curated/<table>/order_date=D/`` with this day's rows; returns its URI.

    Local: written to ``curated/<table>/_tmp_<uuid>/order_date=D`` first, then swapped in by
    rename, so a crash never leaves a half-written partition in place. S3: overwritten
    directly (Glue's committer writes the files, S3 has no rename).
    """
    from pyspark.sql import functions as F

    names = [name for name, _ in TABLE_COLUMNS[table]]
    day = (
        frame.filter(F.col("order_date") == F.lit(order_date).cast("date"))
        .coalesce(1)
        .sortWithinPartitions(*_SORT_KEYS[table])
        .select(*names)
    )
    target_key = curated_key(table, order_date)
    if not lake.is_local:
        day.write.mode("overwrite").parquet(lake.uri(target_key))
        return lake.uri(target_key)

    tmp_key = f"{CURATED_PREFIX}/{table}/_tmp_{uuid.uuid4().hex}"
    staged_key = f"{tmp_key}/order_date={order_date}"
    tmp_dir, staged_dir, target_dir = lake.local(tmp_key), lake.local(staged_key), lake.local(target_key)
    replaced_dir = os.path.join(tmp_dir, "_replaced")
    try:
        day.write.mode("overwrite").parquet(lake.uri(staged_key))
        # The old partition moves inside the temp folder and is deleted with it.
        had_old = os.path.exists(target_dir)
        if had_old:
            os.rename(target_dir, replaced_dir)
        try:
            os.rename(staged_dir, target_dir)
        except OSError:
            if had_old:  # put the previous partition back rather than leave none
                os.rename(replaced_dir, target_dir)
            raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return lake.uri(target_key)


def _column_schema(table: str) -> list[dict]:
    return [{"name": name, "type": kind} for name, kind in TABLE_COLUMNS[table]]


def run(
    spark,
    lake_root: str,
    dates: Sequence[dt.date | str],
    log: Callable[[str], None] | None = None,
) -> dict:
    """Curate every date in ``dates`` and return the summary (JSON-serialisable).

    Summary keys callers may rely on: ``lake_root``, ``order_dates``, ``tables`` (per table:
    ``row_count``, ``rows_by_day``, ``paths``, ``columns``), ``figures_by_day`` (per date:
    raw_lines, curated_lines, quarantine_lines, superseded_lines, net as a decimal string),
    ``quarantine_by_reason`` (per date: reason -> lines) and ``manifests`` (per date: run_id,
    record_count, line_count as the manifest states them). Raises ManifestMissingError when a
    date was never committed; nothing is written for any date in that case.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    log = log or (lambda message: print(message, file=sys.stderr))
    days = sorted({_as_date(day).isoformat() for day in dates})
    lake = Lake(lake_root)
    manifests = read_manifests(spark, lake, days)
    log(f"read {len(manifests)} manifest(s): "
        + ", ".join(f"{d} run_id={m.get('run_id')} pages={len(m.get('pages') or [])}" for d, m in manifests.items()))

    units = read_units(spark, lake, manifests).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        figures = {
            day: {"raw_lines": 0, "curated_lines": 0, "quarantine_lines": 0,
                  "superseded_lines": 0, "net": "0.00"}
            for day in days
        }
        reasons: dict[str, dict[str, int]] = {day: {} for day in days}
        counts = (
            units.groupBy("order_date", "kind", "superseded", "reason")
            .agg(F.count(F.lit(1)).alias("n"), F.sum("net").alias("net"))
            .collect()
        )
        for row in counts:
            figure = figures[row["order_date"].isoformat()]
            figure["raw_lines"] += row["n"]
            if row["superseded"]:
                figure["superseded_lines"] += row["n"]
            elif row["kind"] == KIND_CURATED:
                figure["curated_lines"] += row["n"]
                figure["net"] = str(round2(Decimal(figure["net"]) + (row["net"] or ZERO)))
            else:
                figure["quarantine_lines"] += row["n"]
                by_reason = reasons[row["order_date"].isoformat()]
                by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + row["n"]
        for day in days:
            reasons[day] = dict(sorted(reasons[day].items()))
            log(f"order_date={day}: {json.dumps(figures[day])}")

        tables = build_tables(units)
        summary_tables = {}
        for table in TABLES:
            frame = tables[table]
            if table in (TABLE_DIM_CUSTOMER, TABLE_DIM_PRODUCT):
                frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
                rows_by_day = {
                    row["order_date"].isoformat(): row["count"]
                    for row in frame.groupBy("order_date").count().collect()
                }
            else:
                key = "curated_lines" if table == TABLE_ORDER_LINES else "quarantine_lines"
                rows_by_day = {day: figures[day][key] for day in days}
            rows_by_day = {day: rows_by_day.get(day, 0) for day in days}
            paths = [write_day(spark, lake, table, frame, day) for day in days]
            if frame.is_cached:
                frame.unpersist()
            log(f"wrote {table}: {sum(rows_by_day.values())} row(s) in {len(paths)} partition(s)")
            summary_tables[table] = {
                "row_count": sum(rows_by_day.values()),
                "rows_by_day": rows_by_day,
                "paths": paths,
                "columns": _column_schema(table),
            }
    finally:
        units.unpersist()

    return {
        "lake_root": lake.uri_root,
        "order_dates": days,
        "tables": summary_tables,
        "figures_by_day": figures,
        "quarantine_by_reason": reasons,
        "manifests": {
            day: {
                "run_id": manifest.get("run_id"),
                "record_count": manifest.get("record_count"),
                "line_count": manifest.get("line_count"),
            }
            for day, manifest in manifests.items()
        },
    }


# --------------------------------------------------------------------------------------
# Dagster Pipes (optional) and the entry point
# --------------------------------------------------------------------------------------

ASSET_KEYS = {table: f"{CURATED_PREFIX}/{table}" for table in TABLES}
PIPES_CONTEXT_ARG = "--dagster-pipes-context"


def materialization_metadata(summary: dict, table: str) -> dict:
    """Pipes metadata for one curated table, in dagster_pipes' {raw_value, type} form."""
    info = summary["tables"][table]
    metadata = {
        "dagster/row_count": {"raw_value": int(info["row_count"]), "type": "int"},
        "dagster/column_schema": {"raw_value": {"columns": info["columns"]}, "type": "table_schema"},
        "paths": {"raw_value": info["paths"], "type": "json"},
        "rows_by_day": {"raw_value": info["rows_by_day"], "type": "json"},
    }
    if table == TABLE_ORDER_LINES:
        metadata["figures_by_day"] = {"raw_value": summary["figures_by_day"], "type": "json"}
        metadata["manifest_by_day"] = {"raw_value": summary["manifests"], "type": "json"}
    if table == TABLE_QUARANTINE:
        metadata["quarantine_by_reason"] = {"raw_value": summary["quarantine_by_reason"], "type": "json"}
    return metadata


def report_to_pipes(pipes, summary: dict) -> None:
    """Report one materialization per curated asset key the Pipes step targets."""
    try:
        in_scope = set(pipes.asset_keys)
    except Exception:  # no asset keys in the context: report all four
        in_scope = set(ASSET_KEYS.values())
    for table in TABLES:
        asset_key = ASSET_KEYS[table]
        if asset_key not in in_scope:
            pipes.log.warning(f"{asset_key} is not targeted by this step; not reported")
            continue
        pipes.report_asset_materialization(
            asset_key=asset_key, metadata=materialization_metadata(summary, table)
        )


def open_pipes():
    """A PipesContext when launched by Dagster Pipes, else None (standalone run).

    CLI-argument params (Glue via PipesGlueClient) when ``--dagster-pipes-context`` is in
    argv, environment params (PipesSubprocessClient) otherwise. Context and messages may
    each be inline/file/stdio or on S3; boto3 is imported only for S3.
    """
    try:
        import dagster_pipes as dp
    except ImportError:
        return None
    params_loader = (
        dp.PipesCliArgsParamsLoader() if PIPES_CONTEXT_ARG in sys.argv else dp.PipesEnvVarParamsLoader()
    )
    if not params_loader.is_dagster_pipes_process():
        return None

    class AnyContextLoader(dp.PipesContextLoader):
        @contextmanager
        def load_context(self, params):
            if "bucket" in params:
                import boto3

                loader = dp.PipesS3ContextLoader(boto3.client("s3"))
            else:
                loader = dp.PipesDefaultContextLoader()
            with loader.load_context(params) as data:
                yield data

    class AnyMessageWriter(dp.PipesMessageWriter):
        @contextmanager
        def open(self, params):
            if "bucket" in params:
                import boto3

                writer = dp.PipesS3MessageWriter(boto3.client("s3"))
            else:
                writer = dp.PipesDefaultMessageWriter()
            with writer.open(params) as channel:
                yield channel

    return dp.open_dagster_pipes(
        params_loader=params_loader,
        context_loader=AnyContextLoader(),
        message_writer=AnyMessageWriter(),
    )


def _parse_date(value: str) -> dt.date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"invalid date {value!r}: expected YYYY-MM-DD") from None


def parse_args(argv: Sequence[str]) -> tuple[str, list[str]]:
    """(lake_root, dates) from job arguments; unknown arguments (Glue's, Pipes') are ignored."""
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        getResolvedOptions = None
    if getResolvedOptions is not None:
        options = getResolvedOptions(list(argv), ["lake_root", "order_date"])
        if "--order_date_end" in argv:
            options.update(getResolvedOptions(list(argv), ["order_date_end"]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--lake_root", required=True)
        parser.add_argument("--order_date", required=True)
        parser.add_argument("--order_date_end", default=None)
        options = vars(parser.parse_known_args(list(argv[1:]))[0])
    start = _parse_date(options["order_date"])
    end = _parse_date(options.get("order_date_end") or options["order_date"])
    if end < start:
        raise SystemExit(f"--order_date_end {end} is before --order_date {start}")
    dates = [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    return options["lake_root"], dates


def get_spark():
    """The job's SparkSession: Glue's when running on Glue, else a small local one (UTC)."""
    try:
        from awsglue.context import GlueContext
    except ImportError:
        GlueContext = None
    if GlueContext is not None:
        from pyspark.context import SparkContext

        spark = GlueContext(SparkContext.getOrCreate()).spark_session
    else:
        from pyspark.sql import SparkSession

        # Workers must run the same interpreter (with pyarrow etc.) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = (
            SparkSession.builder.master("local[*]")
            .appName("curate_sales_orders")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
    # Runtime SQL settings, applied on Glue too: UTC days and microsecond timestamps.
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    return spark


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse arguments, run, report through Pipes when present, print the summary JSON."""
    argv = list(sys.argv if argv is None else argv)
    lake_root, dates = parse_args(argv)
    pipes = open_pipes()

    def log(message: str) -> None:
        if pipes is not None:
            pipes.log.info(message)
        print(message, file=sys.stderr, flush=True)

    with pipes if pipes is not None else nullcontext():
        log(f"curating order_date {dates[0]}..{dates[-1]} in {lake_root}")
        spark = get_spark()
        summary = run(spark, lake_root, dates, log=log)
        if pipes is not None:
            report_to_pipes(pipes, summary)
    if pipes is None:
        # Run by hand: the summary is the output. Under Pipes it travels as metadata instead.
        print(json.dumps(summary, sort_keys=True), flush=True)
    return summary


if __name__ == "__main__":
    main()
