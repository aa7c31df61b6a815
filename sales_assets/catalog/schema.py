"""Crawler schema inference and merge rules, as pure functions over Glue/Hive type strings.

Inference
---------
Records are JSON values parsed with ``json.loads(line, parse_float=Decimal)``. Each JSON value
maps to a Hive type string, the way a Glue crawler's JSON classifier writes them:

=====================  =====================================================================
JSON value             type
=====================  =====================================================================
true / false           ``boolean``
integer                ``bigint`` (every integer, whatever its size; an integer outside the
                       signed 64-bit range is ``decimal(p,0)`` in decimal mode, else ``double``)
number with a point    ``decimal(p,s)`` keeping the written scale (the default,
or an exponent         ``number_mode="decimal"``): ``19.99`` -> ``decimal(18,2)``. The integer
                       digits are at least ``DECIMAL_MIN_INTEGER_DIGITS`` (16, so money is the
                       warehouse's ``decimal(18,2)``) and a day with a larger value or another
                       scale does not make a new table version; precision is capped at 38;
                       more than 38 significant digits, NaN or Infinity is ``double``. With
                       ``number_mode="double"`` it is ``double``, what a real Glue crawler
                       writes (use it when a Glue crawler and this crawler share a table).
string                 ``string``
object                 ``struct<a:type,b:type>`` (fields in order of first appearance)
array                  ``array<type>``, the element types merged by the lattice below
null                   ``void`` while inferring (seen only null, type unknown); see below
=====================  =====================================================================

Hive columns are always nullable, so a field that is absent or null in some records simply
keeps the type of its non-null values (:class:`InferredSchema` also lists those top-level
fields in ``nullable``). A field seen only as null (or an array seen only empty) is ``void``
in the inferred columns; :func:`merge_columns` resolves ``void`` to the type the existing
table already has, else to ``string``. Merged columns never contain ``void``. An object seen
only as ``{}`` becomes ``string`` (Hive has no empty struct).

Widening lattice (``widen(a, b)``; symmetric; never narrows)
------------------------------------------------------------
- ``void`` joined with ``t`` is ``t``; equal types stay.
- integers: ``tinyint -> smallint -> int -> bigint -> double`` (``float`` joins to ``double``);
  ``double`` with ``string`` is ``string``. In the default decimal mode a JSON integer next to a
  JSON fraction joins as a decimal (next rule), so ``double`` appears only past 38 digits.
- ``decimal(p1,s1)`` with ``decimal(p2,s2)``: ``decimal(max(p1-s1,p2-s2)+max(s1,s2), max(s1,s2))``;
  an integer type joins as a decimal of its digit count (``bigint`` = 19, scale 0); a decimal
  joined with ``float``/``double``, or wider than 38 digits, is ``double``.
- any other pair of different scalars (``boolean`` vs a number, ``date`` vs ``timestamp``, a
  number vs ``string``) is ``string``.
- ``struct`` with ``struct``: fields unioned (the left side's order, then new fields in order of
  appearance), common fields widened. Field names match case-insensitively, because Hive,
  Athena and the JSON SerDe treat them so; the first spelling seen is kept.
- ``array<a>`` with ``array<b>`` is ``array<widen(a, b)>``; ``map<k1,v1>`` with ``map<k2,v2>``
  is ``map<widen(k1,k2),widen(v1,v2)>``.
- a complex type (struct, array, map) with a scalar or another kind of complex type is
  ``string`` (the JSON SerDe then returns the value's JSON text).

Merge (Glue's safe update policy)
---------------------------------
:func:`merge_columns` adds new columns (``MergeNewColumns``), keeps columns the new data lacks
(never deletes), and widens retyped columns (never narrows). Existing columns keep their order,
spelling and extra keys (Comment, Parameters); new columns follow in order of first appearance.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Literal, Union

VOID = "void"
STRING = "string"
BIGINT = "bigint"
DOUBLE = "double"
BOOLEAN = "boolean"
MAX_DECIMAL_PRECISION = 38
# Floor of an inferred decimal's integer digits: the type is stable from day to day, and a
# two-place amount infers as the warehouse's DECIMAL(18,2).
DECIMAL_MIN_INTEGER_DIGITS = 16
NUMBER_MODES = ("double", "decimal")

# Digits an integer type can hold, so it can join a decimal without losing values.
_INTEGER_DIGITS = {"tinyint": 3, "smallint": 5, "int": 10, "integer": 10, "bigint": 19}
_INTEGER_RANK = {"tinyint": 0, "smallint": 1, "int": 2, "integer": 2, "bigint": 3}
_FLOATING = ("float", "double")
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Prim:
    """A scalar Hive type by name (``bigint``, ``string``, ``void``, ``timestamp``...)."""

    name: str


@dataclass(frozen=True)
class Dec:
    precision: int
    scale: int


@dataclass(frozen=True)
class Struct:
    fields: tuple[tuple[str, "HiveType"], ...]


@dataclass(frozen=True)
class Array:
    element: "HiveType"


@dataclass(frozen=True)
class Map:
    key: "HiveType"
    value: "HiveType"


HiveType = Union[Prim, Dec, Struct, Array, Map]
NumberMode = Literal["double", "decimal"]

_VOID = Prim(VOID)
_STRING = Prim(STRING)


# ---------------------------------------------------------------- rendering and parsing


def render(t: HiveType) -> str:
    """The Glue/Hive type string of ``t`` (no spaces, as Glue writes it)."""
    if isinstance(t, Prim):
        return t.name
    if isinstance(t, Dec):
        return f"decimal({t.precision},{t.scale})"
    if isinstance(t, Array):
        return f"array<{render(t.element)}>"
    if isinstance(t, Map):
        return f"map<{render(t.key)},{render(t.value)}>"
    return "struct<" + ",".join(f"{_render_name(n)}:{render(ft)}" for n, ft in t.fields) + ">"


def _render_name(name: str) -> str:
    # Hive accepts backtick-quoted field names; needed when a JSON key holds ':' ',' '<' etc.
    if _PLAIN_NAME.match(name):
        return name
    return "`" + name.replace("`", "``") + "`"


def parse_type(text: str) -> HiveType:
    """Parse a Glue/Hive type string (case-insensitive, spaces allowed). Raises ValueError."""
    parser = _Parser(text)
    result = parser.type_()
    parser.skip_space()
    if parser.pos != len(text):
        raise ValueError(f"unexpected text at {parser.pos} in type {text!r}")
    return result


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str) -> None:
        self.skip_space()
        if not self.text.startswith(char, self.pos):
            raise ValueError(f"expected {char!r} at {self.pos} in type {self.text!r}")
        self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def word(self) -> str:
        self.skip_space()
        match = re.compile(r"[A-Za-z0-9_]+").match(self.text, self.pos)
        if not match:
            raise ValueError(f"expected a name at {self.pos} in type {self.text!r}")
        self.pos = match.end()
        return match.group(0)

    def field_name(self) -> str:
        if self.peek() != "`":
            return self.word()
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "`":
                if self.text.startswith("``", self.pos):
                    out.append("`")
                    self.pos += 2
                    continue
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise ValueError(f"unterminated quoted name in type {self.text!r}")

    def type_(self) -> HiveType:
        name = self.word().lower()
        if name == "array":
            self.expect("<")
            element = self.type_()
            self.expect(">")
            return Array(element)
        if name == "map":
            self.expect("<")
            key = self.type_()
            self.expect(",")
            value = self.type_()
            self.expect(">")
            return Map(key, value)
        if name == "struct":
            self.expect("<")
            fields: list[tuple[str, HiveType]] = []
            if self.peek() != ">":
                while True:
                    field = self.field_name()
                    self.expect(":")
                    fields.append((field, self.type_()))
                    if self.peek() != ",":
                        break
                    self.pos += 1
            self.expect(">")
            return Struct(tuple(fields))
        if name in ("decimal", "numeric"):
            if self.peek() != "(":
                return Dec(10, 0)  # Hive's default decimal
            self.expect("(")
            precision = int(self.word())
            scale = 0
            if self.peek() == ",":
                self.pos += 1
                scale = int(self.word())
            self.expect(")")
            return Dec(precision, scale)
        if name in ("char", "varchar") and self.peek() == "(":
            self.expect("(")
            length = self.word()
            self.expect(")")
            return Prim(f"{name}({length})")
        return Prim(name)


# ---------------------------------------------------------------- the lattice


def widen(a: HiveType, b: HiveType) -> HiveType:
    """The narrowest type holding every value of ``a`` and of ``b`` (module docstring)."""
    if a == b:
        return a
    if a == _VOID:
        return b
    if b == _VOID:
        return a
    if isinstance(a, Struct) and isinstance(b, Struct):
        return _union_struct(a, b)
    if isinstance(a, Array) and isinstance(b, Array):
        return Array(widen(a.element, b.element))
    if isinstance(a, Map) and isinstance(b, Map):
        return Map(widen(a.key, b.key), widen(a.value, b.value))
    if isinstance(a, (Struct, Array, Map)) or isinstance(b, (Struct, Array, Map)):
        return _STRING
    return _widen_scalar(a, b)


def _widen_scalar(a: Prim | Dec, b: Prim | Dec) -> HiveType:
    a_int = isinstance(a, Prim) and a.name in _INTEGER_RANK
    b_int = isinstance(b, Prim) and b.name in _INTEGER_RANK
    a_float = isinstance(a, Prim) and a.name in _FLOATING
    b_float = isinstance(b, Prim) and b.name in _FLOATING
    if a_int and b_int:
        return a if _INTEGER_RANK[a.name] >= _INTEGER_RANK[b.name] else b
    if (a_int or a_float) and (b_int or b_float):
        # float cannot hold every bigint; double is the lattice's one floating type.
        return Prim(DOUBLE)
    if isinstance(a, Dec) or isinstance(b, Dec):
        if a_float or b_float:
            return Prim(DOUBLE)
        da = a if isinstance(a, Dec) else (Dec(_INTEGER_DIGITS[a.name], 0) if a_int else None)
        db = b if isinstance(b, Dec) else (Dec(_INTEGER_DIGITS[b.name], 0) if b_int else None)
        if da is None or db is None:
            return _STRING
        scale = max(da.scale, db.scale)
        precision = max(da.precision - da.scale, db.precision - db.scale) + scale
        return Dec(precision, scale) if precision <= MAX_DECIMAL_PRECISION else Prim(DOUBLE)
    return _STRING


def _union_struct(a: Struct, b: Struct) -> HiveType:
    merged: dict[str, tuple[str, HiveType]] = {n.lower(): (n, t) for n, t in a.fields}
    for name, field_type in b.fields:
        key = name.lower()
        if key in merged:
            kept_name, kept_type = merged[key]
            merged[key] = (kept_name, widen(kept_type, field_type))
        else:
            merged[key] = (name, field_type)
    return Struct(tuple(merged.values()))


def widen_type_strings(a: str, b: str) -> str:
    """:func:`widen` over type strings; returns ``a`` verbatim when it already holds ``b``."""
    pa = parse_type(a)
    result = widen(pa, parse_type(b))
    return a if result == pa else render(result)


# ---------------------------------------------------------------- inference


def infer_value_type(value: Any, number_mode: NumberMode = "decimal") -> HiveType:
    """The type of one parsed JSON value (``void`` for null)."""
    if value is None:
        return _VOID
    if isinstance(value, bool):  # before int: bool is an int subclass
        return Prim(BOOLEAN)
    if isinstance(value, int):
        if _BIGINT_MIN <= value <= _BIGINT_MAX:
            return Prim(BIGINT)
        if number_mode == "decimal" and len(str(abs(value))) <= MAX_DECIMAL_PRECISION:
            return Dec(len(str(abs(value))), 0)
        return Prim(DOUBLE)
    if isinstance(value, Decimal):
        return _decimal_type(value) if number_mode == "decimal" else Prim(DOUBLE)
    if isinstance(value, float):  # NaN/Infinity constants, or records parsed without Decimal
        return Prim(DOUBLE)
    if isinstance(value, str):
        return _STRING
    if isinstance(value, dict):
        fields: dict[str, tuple[str, HiveType]] = {}
        for name, item in value.items():
            item_type = infer_value_type(item, number_mode)
            key = str(name).lower()
            if key in fields:  # keys differing only by case: one Hive field
                fields[key] = (fields[key][0], widen(fields[key][1], item_type))
            else:
                fields[key] = (str(name), item_type)
        return Struct(tuple(fields.values()))
    if isinstance(value, list):
        element: HiveType = _VOID
        for item in value:
            element = widen(element, infer_value_type(item, number_mode))
        return Array(element)
    raise TypeError(f"not a parsed JSON value: {type(value).__name__}")


def _decimal_type(value: Decimal) -> HiveType:
    if not value.is_finite():
        return Prim(DOUBLE)
    sign_digits_exponent = value.as_tuple()
    digits = len(sign_digits_exponent.digits)
    exponent = int(sign_digits_exponent.exponent)
    if exponent >= 0:
        precision, scale = digits + exponent, 0
    else:
        scale = -exponent
        precision = max(digits, scale)
    if precision > MAX_DECIMAL_PRECISION:
        return Prim(DOUBLE)
    # The floor is on the integer digits, so values of one scale always infer the same type
    # and values of two scales join without growing: 19.99 and 1.5 are both within (18,2).
    integer_digits = max(precision - scale, DECIMAL_MIN_INTEGER_DIGITS)
    return Dec(min(integer_digits + scale, MAX_DECIMAL_PRECISION), scale)


@dataclass(frozen=True)
class InferredSchema:
    """What :func:`infer_schema` saw.

    ``columns``: Glue Column dicts ``{"Name", "Type"}`` in order of first appearance; a type may
    contain ``void`` (seen only null) until :func:`merge_columns` resolves it.
    ``nullable``: top-level names absent or null in at least one record.
    ``records``: JSON objects scanned; ``skipped``: values that were not JSON objects.
    """

    columns: list[dict]
    nullable: tuple[str, ...]
    records: int
    skipped: int


class SchemaAccumulator:
    """:func:`infer_schema` one record at a time, so one pass over a day can feed several."""

    def __init__(self, number_mode: NumberMode = "decimal"):
        if number_mode not in NUMBER_MODES:
            raise ValueError(f"number_mode must be one of {NUMBER_MODES}, got {number_mode!r}")
        self.number_mode = number_mode
        self._row: Struct = Struct(())
        self._seen_in: dict[str, int] = {}
        self._null_somewhere: set[str] = set()
        self.records = 0
        self.skipped = 0

    def add(self, record: Any) -> None:
        if not isinstance(record, dict):
            self.skipped += 1
            return
        self.records += 1
        row = widen(self._row, infer_value_type(record, self.number_mode))
        assert isinstance(row, Struct)
        self._row = row
        for name, value in record.items():
            key = str(name).lower()
            self._seen_in[key] = self._seen_in.get(key, 0) + 1
            if value is None:
                self._null_somewhere.add(key)

    def result(self) -> InferredSchema:
        columns = [{"Name": name, "Type": render(t)} for name, t in self._row.fields]
        nullable = tuple(
            name for name, _ in self._row.fields
            if self._seen_in.get(name.lower(), 0) < self.records or name.lower() in self._null_somewhere
        )
        return InferredSchema(columns=columns, nullable=nullable, records=self.records, skipped=self.skipped)


def infer_schema(records: Iterable[Any], number_mode: NumberMode = "decimal") -> InferredSchema:
    """Infer table columns from parsed JSON records; values that are not objects are skipped."""
    accumulator = SchemaAccumulator(number_mode)
    for record in records:
        accumulator.add(record)
    return accumulator.result()


def resolve_void(t: HiveType) -> HiveType:
    """Replace every still-unknown (``void``) type by ``string``, and ``struct<>`` too."""
    if t == _VOID:
        return _STRING
    if isinstance(t, Array):
        return Array(resolve_void(t.element))
    if isinstance(t, Map):
        return Map(resolve_void(t.key), resolve_void(t.value))
    if isinstance(t, Struct):
        if not t.fields:
            return _STRING
        return Struct(tuple((n, resolve_void(ft)) for n, ft in t.fields))
    return t


# ---------------------------------------------------------------- merge


def merge_columns(existing: list[dict], inferred: list[dict]) -> tuple[list[dict], dict]:
    """Merge inferred columns into a table's columns under Glue's safe policy.

    Returns ``(merged, diff)``. ``merged`` holds every existing column (order, name spelling and
    extra keys kept; the Type widened when the partition needs it, never narrowed; ``void``
    parts resolved to the existing type) followed by new columns in inferred order, with
    ``void`` resolved to ``string``. ``diff`` is ``{"added": [names], "widened": [{"name",
    "from", "to"}], "missing_in_partition": [names]}``; the schema changed iff ``added`` or
    ``widened`` is non-empty. Names match case-insensitively, as in Hive.
    """
    inferred_by_key = {c["Name"].lower(): c for c in inferred}
    existing_keys = {c["Name"].lower() for c in existing}
    merged: list[dict] = []
    added: list[str] = []
    widened: list[dict] = []
    missing: list[str] = []
    for column in existing:
        new = inferred_by_key.get(column["Name"].lower())
        if new is None:
            missing.append(column["Name"])
            merged.append(dict(column))
            continue
        old_type = parse_type(column["Type"])
        result = resolve_void(widen(old_type, parse_type(new["Type"])))
        if result == old_type:
            merged.append(dict(column))
        else:
            to = render(result)
            widened.append({"name": column["Name"], "from": column["Type"], "to": to})
            merged.append({**column, "Type": to})
    for column in inferred:
        if column["Name"].lower() in existing_keys:
            continue
        merged.append({"Name": column["Name"], "Type": render(resolve_void(parse_type(column["Type"])))})
        added.append(column["Name"])
    return merged, {"added": added, "widened": widened, "missing_in_partition": missing}


def schema_changed(diff: dict) -> bool:
    """True when a merge diff means the table needs a new version."""
    return bool(diff["added"] or diff["widened"])

