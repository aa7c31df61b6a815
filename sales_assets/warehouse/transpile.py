"""The warehouse SQL, written once in Redshift's dialect, and its DuckDB translation.

Callers may rely on:
- `sql_names()` lists the statement files in `sql/` (one statement per file, named for what
  it does); `redshift_sql(name)` is a file's text, `duckdb_sql(name)` its DuckDB form. Both
  are cached per file for the life of the process.
- `to_duckdb(sql, source=...)` translates one Redshift statement with sqlglot and raises
  `TranspileError` naming `source` (the file) when it cannot.
- `placeholders(name)` is the set of `:name` bind parameters a file declares.
"""
from __future__ import annotations

import functools
import importlib.resources
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

READ_DIALECT = "redshift"
WRITE_DIALECT = "duckdb"
SQL_PACKAGE = "sales_assets.warehouse"
SQL_FOLDER = "sql"
# Statement names are file stems; anything else is rejected before touching the filesystem.
SQL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# Redshift physical-design properties that mean nothing to DuckDB. sqlglot drops them with a
# warning; removing them from the tree first keeps the output warning-free and lets
# unsupported_level=RAISE catch anything else that would be silently lost.
_REDSHIFT_ONLY_PROPERTIES = (
    exp.DistKeyProperty,
    exp.DistStyleProperty,
    exp.SortKeyProperty,
)


class TranspileError(ValueError):
    """A warehouse statement could not be parsed or translated; the message names its file."""


@functools.cache
def sql_names() -> tuple[str, ...]:
    """Stems of every `sql/*.sql` file, sorted."""
    folder = importlib.resources.files(SQL_PACKAGE).joinpath(SQL_FOLDER)
    return tuple(sorted(p.name[: -len(".sql")] for p in folder.iterdir() if p.name.endswith(".sql")))


@functools.cache
def redshift_sql(name: str) -> str:
    """The Redshift text of `sql/<name>.sql` (KeyError for an unknown name)."""
    if not SQL_NAME_PATTERN.match(name) or name not in sql_names():
        raise KeyError(f"no warehouse statement named {name!r} in {SQL_PACKAGE}/{SQL_FOLDER}/")
    path = importlib.resources.files(SQL_PACKAGE).joinpath(SQL_FOLDER, f"{name}.sql")
    return path.read_text(encoding="utf-8")


@functools.cache
def duckdb_sql(name: str) -> str:
    """The DuckDB translation of `sql/<name>.sql`, computed once per file."""
    return to_duckdb(redshift_sql(name), source=f"{SQL_FOLDER}/{name}.sql")


@functools.cache
def placeholders(name: str) -> frozenset[str]:
    """The `:name` bind parameters declared by `sql/<name>.sql`."""
    return placeholders_of(redshift_sql(name), source=f"{SQL_FOLDER}/{name}.sql")


def placeholders_of(sql: str, source: str = "<inline sql>") -> frozenset[str]:
    """The `:name` bind parameters of one Redshift statement."""
    tree = parse_redshift(sql, source=source)
    return frozenset(p.name for p in tree.find_all(exp.Placeholder) if p.name)


def parse_redshift(sql: str, source: str = "<inline sql>") -> exp.Expression:
    """Parse exactly one Redshift statement (TranspileError naming `source` otherwise)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=READ_DIALECT) if s is not None]
    except SqlglotError as error:
        raise TranspileError(f"{source}: not valid Redshift SQL: {error}") from error
    if len(statements) != 1:
        raise TranspileError(f"{source}: expected exactly one statement, found {len(statements)}")
    return statements[0]


def to_duckdb(sql: str, source: str = "<inline sql>") -> str:
    """Translate one Redshift statement to DuckDB.

    On the parsed tree: column `ENCODE` is removed (sqlglot keeps it and DuckDB rejects it),
    DISTSTYLE/DISTKEY/SORTKEY are removed, and PRIMARY KEY constraints are removed because
    Redshift does not enforce them: both engines then accept the same rows, and the
    duplicate-key check proves uniqueness on both. COPY is refused: it is Redshift's
    S3 loader, replaced locally by read_parquet in the DuckDB session.
    """
    tree = parse_redshift(sql, source=source)
    if isinstance(tree, exp.Copy):
        raise TranspileError(f"{source}: COPY is Redshift-only; the DuckDB session stages with read_parquet")
    tree = _strip_redshift_physical_design(tree)
    try:
        return tree.sql(dialect=WRITE_DIALECT, unsupported_level=ErrorLevel.RAISE, comments=False)
    except SqlglotError as error:
        raise TranspileError(f"{source}: does not translate to DuckDB: {error}") from error


def _strip_redshift_physical_design(tree: exp.Expression) -> exp.Expression:
    tree = tree.copy()
    doomed: list[exp.Expression] = []
    for constraint in tree.find_all(exp.ColumnConstraint):
        if isinstance(constraint.args.get("kind"), (exp.EncodeColumnConstraint, exp.PrimaryKeyColumnConstraint)):
            doomed.append(constraint)
    doomed.extend(tree.find_all(exp.PrimaryKey))
    doomed.extend(node for node in tree.find_all(*_REDSHIFT_ONLY_PROPERTIES))
    for node in doomed:
        node.pop()
    properties = tree.args.get("properties")
    if isinstance(properties, exp.Properties) and not properties.expressions:
        properties.pop()
    return tree
