"""The warehouse SQL, written once in Redshift's dialect, and its DuckDB translation.

Callers may rely on:
- `sql_names()` lists the statement files in `sql/` (one statement per file, named for what
  it does); `redshift_sql(name)` is a file's text, `duckdb_sql(name)` its DuckDB form. Both
  are cached per file for the life of the process.
- `duckdb_sql(name)`, `placeholders(name)` and `cached(kind, name, compute)` also keep their
  results on disk (`CACHE_FOLDER`, one JSON file), keyed by a hash of every `sql/` file, this
  module's source and sqlglot's version (a caller's own derived form names its version in
  `kind`): a new process translates nothing
  (and does not import sqlglot, about 0.6 s) until one of those changes. A cache that cannot be
  read or written is ignored (the statement is translated, as without it).
- `to_duckdb(sql, source=...)` translates one Redshift statement with sqlglot and raises
  `TranspileError` naming `source` (the file) when it cannot.
- `placeholders(name)` is the set of `:name` bind parameters a file declares.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # sqlglot is imported only when something is translated (see cached)
    from sqlglot import exp

LOGGER = logging.getLogger(__name__)

READ_DIALECT = "redshift"
WRITE_DIALECT = "duckdb"
SQL_PACKAGE = "sales_assets.warehouse"
SQL_FOLDER = "sql"
# Statement names are file stems; anything else is rejected before touching the filesystem.
SQL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# Redshift physical-design properties that mean nothing to DuckDB. sqlglot drops them with a
# warning; removing them from the tree first keeps the output warning-free and lets
# unsupported_level=RAISE catch anything else that would be silently lost.
_REDSHIFT_ONLY_PROPERTIES = ("DistKeyProperty", "DistStyleProperty", "SortKeyProperty")


def _user_cache_folder() -> Optional[Path]:
    # The XDG base directory rule, as pip and most tools follow it.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "sales_assets"
    try:
        return Path.home() / ".cache" / "sales_assets"
    except (RuntimeError, KeyError):  # no home directory (some containers): no disk cache
        return None


# Translations kept between processes (per user, never a shared folder: what is read back is
# executed; see the module docstring). None: no disk cache.
CACHE_FOLDER = _user_cache_folder()
CACHE_FORMAT = 1


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
    """The DuckDB translation of `sql/<name>.sql`, computed once per file (and kept on disk)."""
    return cached("duckdb", name, lambda: to_duckdb(redshift_sql(name), source=f"{SQL_FOLDER}/{name}.sql"))


@functools.cache
def placeholders(name: str) -> frozenset[str]:
    """The `:name` bind parameters declared by `sql/<name>.sql`."""
    return frozenset(cached(
        "placeholders", name,
        lambda: sorted(placeholders_of(redshift_sql(name), source=f"{SQL_FOLDER}/{name}.sql")),
    ))


def cached(kind: str, name: str, compute: Callable[[], Any]) -> Any:
    """`compute()` (a JSON value derived from `sql/<name>.sql` alone), from the disk cache when
    held; a `TranspileError` it raised is kept and raised again."""
    redshift_sql(name)  # KeyError for an unknown statement, before any lookup
    entries, path = _cache()
    key = f"{kind}:{name}"
    if key not in entries:
        try:
            entries[key] = {"value": compute()}
        except TranspileError as error:
            entries[key] = {"error": str(error)}
        _write_cache(path, entries)
    if "error" in entries[key]:
        raise TranspileError(entries[key]["error"])
    return entries[key]["value"]


@functools.cache
def _cache() -> tuple[dict[str, Any], Optional[Path]]:
    """(entries, file) of the disk cache for the current SQL files, module and sqlglot."""
    if CACHE_FOLDER is None:
        return {}, None
    import importlib.metadata  # here, not at module level: its import alone is about 30 ms

    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{importlib.metadata.version('sqlglot')}\0".encode())
    digest.update(Path(__file__).read_bytes())
    for name in sql_names():
        digest.update(f"\0{name}\0{redshift_sql(name)}".encode())
    path = CACHE_FOLDER / f"transpile-{digest.hexdigest()[:32]}.json"
    try:
        entries = json.loads(path.read_bytes())
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError):
        entries = {}
    return entries, path


def _write_cache(path: Optional[Path], entries: dict[str, Any]) -> None:
    """Replace the cache file atomically (a concurrent reader sees the old or the new file)."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(entries, out)
        os.replace(temporary, path)
    except OSError as error:  # a read-only home: translate every time, as without a cache
        LOGGER.debug("transpile cache %s not written: %s", path, error)


def placeholders_of(sql: str, source: str = "<inline sql>") -> frozenset[str]:
    """The `:name` bind parameters of one Redshift statement."""
    from sqlglot import exp

    tree = parse_redshift(sql, source=source)
    return frozenset(p.name for p in tree.find_all(exp.Placeholder) if p.name)


def parse_redshift(sql: str, source: str = "<inline sql>") -> "exp.Expression":
    """Parse exactly one Redshift statement (TranspileError naming `source` otherwise)."""
    import sqlglot
    from sqlglot.errors import SqlglotError

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
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, SqlglotError

    tree = parse_redshift(sql, source=source)
    if isinstance(tree, exp.Copy):
        raise TranspileError(f"{source}: COPY is Redshift-only; the DuckDB session stages with read_parquet")
    tree = _strip_redshift_physical_design(tree)
    try:
        return tree.sql(dialect=WRITE_DIALECT, unsupported_level=ErrorLevel.RAISE, comments=False)
    except SqlglotError as error:
        raise TranspileError(f"{source}: does not translate to DuckDB: {error}") from error


def _strip_redshift_physical_design(tree: "exp.Expression") -> "exp.Expression":
    from sqlglot import exp

    tree = tree.copy()
    doomed: list["exp.Expression"] = []
    for constraint in tree.find_all(exp.ColumnConstraint):
        if isinstance(constraint.args.get("kind"), (exp.EncodeColumnConstraint, exp.PrimaryKeyColumnConstraint)):
            doomed.append(constraint)
    doomed.extend(tree.find_all(exp.PrimaryKey))
    doomed.extend(tree.find_all(*(getattr(exp, kind) for kind in _REDSHIFT_ONLY_PROPERTIES)))
    for node in doomed:
        node.pop()
    properties = tree.args.get("properties")
    if isinstance(properties, exp.Properties) and not properties.expressions:
        properties.pop()
    return tree
