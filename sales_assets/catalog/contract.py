"""The columns the transform needs from raw/sales_orders, and whether a day's data still has them.

The catalog never deletes a column, so the table always "has" every required column once it
was seen; what can break the transform is a day whose data no longer carries one. The rules
here therefore judge the schema inferred from one partition's records, not the table.

That schema is inferred over the *contract view* of each record (:func:`contract_view`): the
required top-level fields only, ``customer`` only when it is an object, and only the elements
of ``lines`` that are objects. A malformed value in one record (``"lines": ["n/a"]``, a customer
sent as a string) is the transform's job to quarantine line by line; without this view it
would turn the whole column into ``string`` (the object-vs-scalar widening rule) and hide
whether the well-formed records still carry the nested fields.

A required field fails when, in the partition:

- it is absent from every record, or null in every record (``missing``);
- its type is one the transform cannot read (``unreadable``): a text field (ids, timestamps,
  status, channel, currency) must be ``string``; a number field (``line_number``, ``quantity``,
  ``unit_price``) must be an integer, decimal or floating type, or ``string`` (the transform
  coerces ``"2"``); ``customer`` must be a struct and ``lines`` an array of structs.

A field that is present with a readable type passes even when some records lack it or hold a
bad value: those records are quarantined by the transform with a reason code.
"""
from __future__ import annotations

from typing import Any

from sales_assets.catalog.schema import (
    STRING,
    VOID,
    Array,
    Dec,
    HiveType,
    Prim,
    Struct,
    parse_type,
    render,
)

TEXT = "text"
NUMBER = "number"
STRUCT = "struct"
ARRAY_OF_STRUCT = "array<struct>"

# Path -> the kind of value the transform reads there ("lines[].x" is a field of each line).
REQUIRED_FIELDS: dict[str, str] = {
    "order_id": TEXT,
    "order_timestamp": TEXT,
    "updated_at": TEXT,
    "status": TEXT,
    "channel": TEXT,
    "currency": TEXT,
    "customer": STRUCT,
    "customer.customer_id": TEXT,
    "lines": ARRAY_OF_STRUCT,
    "lines[].line_number": NUMBER,
    "lines[].product_id": TEXT,
    "lines[].quantity": NUMBER,
    "lines[].unit_price": NUMBER,
}
REQUIRED_COLUMNS = tuple(p for p in REQUIRED_FIELDS if "." not in p and "[]" not in p)
_NUMBER_TYPES = ("tinyint", "smallint", "int", "integer", "bigint", "float", "double", STRING)


def contract_view(record: Any) -> Any:
    """The part of a parsed record the contract rules look at (see the module docstring)."""
    if not isinstance(record, dict):
        return record
    view = {}
    lowered = {str(k).lower(): k for k in record}
    for column in REQUIRED_COLUMNS:
        if column not in lowered:
            continue
        value = record[lowered[column]]
        if column == "customer" and not isinstance(value, dict):
            continue
        if column == "lines":
            if not isinstance(value, list):
                continue
            value = [element for element in value if isinstance(element, dict)]
        view[column] = value
    return view


def _field(t: HiveType | None, name: str) -> HiveType | None:
    if not isinstance(t, Struct):
        return None
    for field_name, field_type in t.fields:
        if field_name.lower() == name:
            return field_type
    return None


def _lookup(columns: dict[str, HiveType], path: str) -> HiveType | None:
    if path.startswith("lines[]."):
        lines = columns.get("lines")
        return _field(lines.element if isinstance(lines, Array) else None, path[len("lines[]."):])
    if "." in path:
        parent, name = path.split(".", 1)
        return _field(columns.get(parent), name)
    return columns.get(path)


def _readable(kind: str, t: HiveType) -> bool:
    if kind == TEXT:
        return t == Prim(STRING)
    if kind == NUMBER:
        return isinstance(t, Dec) or (isinstance(t, Prim) and t.name in _NUMBER_TYPES)
    if kind == STRUCT:
        return isinstance(t, Struct)
    return isinstance(t, Array) and isinstance(t.element, Struct)


def contract_problems(partition_columns: list[dict]) -> tuple[list[str], dict[str, str | None]]:
    """Check a partition's contract-view columns (Glue Column dicts, ``void`` allowed).

    Returns ``(problems, found)``: one sentence per failing field, and the type found for every
    required path (None when absent). No problems means the transform can read the day.
    """
    columns = {c["Name"].lower(): parse_type(c["Type"]) for c in partition_columns}
    problems: list[str] = []
    found: dict[str, str | None] = {}
    for path, kind in REQUIRED_FIELDS.items():
        t = _lookup(columns, path)
        found[path] = render(t) if t is not None else None
        if t is None or t == Prim(VOID) or (isinstance(t, Array) and t.element == Prim(VOID)):
            problems.append(f"{path}: missing (absent or null in every record of the partition)")
        elif not _readable(kind, t):
            problems.append(f"{path}: type {render(t)} is not readable as {kind}")
    return problems, found
