"""Warehouse sessions: one open connection to DuckDB (local) or Redshift (aws), without Dagster.

The loader, the reporting views, the benchmark's load stage and command-line tools talk to a
`WarehouseSession`; the Dagster resources in `sales_assets.resources.warehouse` open them (and
re-export every name of this module, so imports from there keep working). Nothing here imports
Dagster: a process that only loads or reads the warehouse does not pay its import.

Statements are the Redshift files in `warehouse/sql/`, addressed by name; values are always
bound parameters (`:name`), never formatted into SQL text.

Callers may rely on:
- `session.execute(name_or_sql, params) -> list[tuple]` returns result rows ([] for
  statements without a result set); `session.execute_count(...)` returns affected rows;
  `session.executemany(name, rows)` (on DuckDB an `INSERT ... VALUES (:a, :b, ...)` of bound
  parameters only runs as ONE set insert of all rows); `session.transaction()` commits on
  success and rolls back (then re-raises) on any exception.
- `session.schema_ready` is False on a new session; `loader.ensure_schema` sets it once the
  schema exists, so one connection creates it at most once.
- `session.reset_stage(stage_table)` makes an allow-listed staging table empty (its DDL);
  `session.stage_parquet(stage_table, locations)` then fills it from the curated day folders
  given, with exactly the files each folder's commit record (`_manifest.json`, see
  `sales_assets.transform.curated_manifest`) lists, and returns the number of files (Redshift
  COPYs them in; DuckDB makes the name a temporary view over them, read by each statement
  that uses it). A folder without a record raises `CuratedRecordMissingError` (run the
  transform) and a listed file that is gone `CuratedFileMissingError`; nothing is staged then.
- `duckdb_session(path, read_only=..., lock_timeout_seconds=..., sleep=..., clock=...)` opens
  the local warehouse file (session time zone UTC); a file locked by another process for
  longer than the timeout (measured by `clock`, polled through `sleep`) raises
  `DuckDBLockedError` naming the file (the Dagster resource turns it into its
  retryable `WarehouseLockedError`). A failed Redshift COPY raises `WarehouseLoadError`
  carrying the rows of SYS_LOAD_ERROR_DETAIL.
- A DuckDB session that fails writing its file (disk full, quota, file size limit, a failed
  fsync, or DuckDB invalidating the database after such an error), on a statement or on the
  COMMIT, raises `WarehouseWriteError`: an `OSError` (errno ENOSPC for a full disk) naming the
  warehouse file and DuckDB's cause. Nothing of the failed transaction is committed, and the
  session is spent: every later statement raises `WarehouseWriteError` without touching the
  connection (close it and open a new session to retry, as a retried Dagster step does).
"""
from __future__ import annotations

import abc
import contextlib
import datetime as dt
import errno
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from sales_assets.transform import curated_manifest
from sales_assets.warehouse import transpile

LOGGER = logging.getLogger(__name__)

# Staging tables the lake may be loaded into: the only identifiers a caller may pass.
STAGE_TABLES = frozenset({"stage_order_lines", "stage_dim_customer", "stage_dim_product", "stage_quarantine"})
S3_LOCATION_PATTERN = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>[A-Za-z0-9!_.*()/=\-]+/)$")
IAM_ROLE_ARN_PATTERN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/\-]{1,512}$")
DUCKDB_LOCK_MARKERS = ("could not set lock", "conflicting lock")
LOCK_POLL_SECONDS = 0.5
DUCKDB_CATALOG = "warehouse"
# Sentinels in sql/copy_stage_parquet.sql replaced by RedshiftSession.copy_statement.
COPY_TEMPLATE_TABLE = "COPY stage_order_lines"
COPY_TEMPLATE_SOURCE = "'s3://bucket/prefix/_warehouse/copy_manifests/stage_order_lines/placeholder.manifest'"
# COPY manifests are written beside the lake's top-level folders, never inside a curated
# partition (a crawler or Athena would read them as data).
COPY_MANIFEST_FOLDER = "_warehouse/copy_manifests"
CURATED_MARKER = "/curated/"
# A day folder as the loader builds it: <root>/curated/<table>/order_date=YYYY-MM-DD/
CURATED_DAY_PATTERN = re.compile(r"^(?P<root>.*)/curated/(?P<table>[a-z_]+)/order_date=(?P<day>\d{4}-\d{2}-\d{2})/$")
COPY_TEMPLATE_ROLE = "'arn:aws:iam::000000000000:role/placeholder'"


# DuckDB's words for a failed write of the database file or its WAL (its message carries the
# OS error text), and for the invalidated database it may leave behind. Read failures (a
# staged parquet file gone) are not among them: they say nothing about the warehouse file.
DUCKDB_WRITE_FAILURE_MARKERS = (
    "could not write file",
    "could not fsync",
    "no space left on device",
    "disk quota exceeded",
    "file too large",
    "database has been invalidated",
)
# The errno a write failure is reported with, by the OS text DuckDB quotes; EIO otherwise.
WRITE_FAILURE_ERRNOS = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "file too large": errno.EFBIG,
}


class WarehouseWriteError(OSError):
    """The DuckDB warehouse file (`path`) could not be written (`cause`, DuckDB's message).

    Raised by the statement or COMMIT that failed, and by any later use of that session; the
    failed transaction committed nothing, so the file keeps its previous state.
    """

    def __init__(self, path: str, cause: str, *, earlier: bool = False):
        self.path, self.cause = path, cause
        code = next((n for text, n in WRITE_FAILURE_ERRNOS.items() if text in cause.lower()), errno.EIO)
        if earlier:
            message = (
                f"this session failed writing the DuckDB warehouse file {path} earlier ({cause}) "
                "and is not used again: open a new session"
            )
        else:
            message = (
                f"could not write the DuckDB warehouse file {path}: {cause}. Nothing of the failed "
                "transaction was committed; the file keeps its previous state. This session is not "
                "used again: free space on the warehouse's disk, then re-run with a new session"
            )
        super().__init__(code, message)

    def __reduce__(self):  # OSError pickles (errno, strerror): rebuild from our own fields
        return (type(self), (self.path, self.cause))


class WarehouseLoadError(RuntimeError):
    """A COPY into a staging table failed; `error_rows` holds Redshift's load error details."""

    def __init__(self, message: str, error_rows: Sequence[tuple] = ()):
        self.error_rows = list(error_rows)
        details = "\n".join(f"  {row}" for row in self.error_rows) or "  (no rows in sys_load_error_detail)"
        super().__init__(f"{message}\nsys_load_error_detail:\n{details}")


def _bind(name_or_sql: str, params: Optional[Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Resolve a statement to its Redshift text and the exact parameters it declares.

    A bare lowercase word is a file name in warehouse/sql/; anything else is Redshift SQL text
    (for tests and ad-hoc reads). Missing parameters are an error; parameters the statement
    does not declare are dropped, because DuckDB rejects unused named parameters.
    """
    if transpile.SQL_NAME_PATTERN.match(name_or_sql):
        wanted = transpile.placeholders(name_or_sql)
    else:
        wanted = transpile.placeholders_of(name_or_sql)
    given = dict(params or {})
    missing = wanted - given.keys()
    if missing:
        raise ValueError(f"statement {name_or_sql[:60]!r} needs parameters {sorted(missing)}")
    return name_or_sql, {k: given[k] for k in wanted}


class WarehouseSession(abc.ABC):
    """One open warehouse connection; see the module docstring for what callers may rely on."""

    engine: str = ""
    # Set by loader.ensure_schema once the schema exists on this connection (see module doc).
    schema_ready: bool = False
    in_transaction: bool = False

    @abc.abstractmethod
    def execute(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> list[tuple]:
        """Run one statement; result rows, or [] when it returns none."""

    @abc.abstractmethod
    def execute_count(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> int:
        """Run one DML statement; the number of rows it affected."""

    @abc.abstractmethod
    def executemany(self, name_or_sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement once per parameter mapping."""

    @abc.abstractmethod
    def stage_parquet(self, stage_table: str, locations: Sequence[str]) -> int:
        """Append the curated parquet files of `locations` (day folders) to `stage_table`."""

    def reset_stage(self, stage_table: str) -> None:
        """Start `stage_table` afresh: drop it and create it empty from its `sql/` DDL."""
        self._check_stage_table(stage_table)
        self.execute(f"drop_{stage_table}")
        self.execute(stage_table)

    @abc.abstractmethod
    def _begin(self) -> None: ...

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _rollback(self) -> None: ...

    @contextlib.contextmanager
    def transaction(self) -> Iterator["WarehouseSession"]:
        """BEGIN ... COMMIT; any exception rolls back and propagates."""
        self._begin()
        self.in_transaction = True
        try:
            yield self
        except BaseException:
            self.in_transaction = False
            try:
                self._rollback()
            except Exception:  # keep the original error; the server discards the txn anyway
                LOGGER.exception("ROLLBACK failed after an error inside the load transaction")
            raise
        self.in_transaction = False
        self._commit()

    @staticmethod
    def _check_stage_table(stage_table: str) -> None:
        if stage_table not in STAGE_TABLES:
            raise ValueError(f"{stage_table!r} is not a staging table (allowed: {sorted(STAGE_TABLES)})")


def curated_day(location: str) -> tuple[str, str, dt.date]:
    """(lake root, table, day) of a curated day folder location; ValueError for anything else."""
    match = CURATED_DAY_PATTERN.match(location.replace("\\", "/"))
    if not match:
        raise ValueError(f"not a curated day folder (<root>/curated/<table>/order_date=YYYY-MM-DD/): {location!r}")
    return match["root"], match["table"], dt.date.fromisoformat(match["day"])


# --------------------------------------------------------------------------------------------
# DuckDB (local)
# --------------------------------------------------------------------------------------------


def _write_guarded(method: Callable) -> Callable:
    """Turn a DuckDB write failure of `method` into `WarehouseWriteError` and spend the session.

    After such a failure DuckDB may have invalidated the database, and even when it has not,
    the connection has just failed to persist what it was asked to: nothing more runs on it.
    """

    @functools.wraps(method)
    def guarded(self: "DuckDBSession", *args: Any, **kwargs: Any) -> Any:
        if self.write_failure is not None:
            raise WarehouseWriteError(self.path, self.write_failure.cause, earlier=True)
        try:
            return method(self, *args, **kwargs)
        except WarehouseWriteError:
            raise
        except Exception as error:
            import duckdb

            if not isinstance(error, duckdb.Error) or not _is_write_failure(error):
                raise
            self.write_failure = WarehouseWriteError(self.path, str(error))
            raise self.write_failure from error

    return guarded


def _is_write_failure(error: Exception) -> bool:
    import duckdb

    message = str(error).lower()
    return isinstance(error, duckdb.FatalException) or any(marker in message for marker in DUCKDB_WRITE_FAILURE_MARKERS)


class DuckDBSession(WarehouseSession):
    """A DuckDB connection speaking the Redshift statements through `transpile`."""

    engine = "duckdb"

    def __init__(self, connection: Any, path: Optional[str] = None):
        self.connection = connection
        self.path = path or self._attached_path()
        # The WarehouseWriteError that spent this session, if any (see _write_guarded).
        self.write_failure: Optional[WarehouseWriteError] = None

    def _attached_path(self) -> str:
        """The file attached as the warehouse catalog, for error messages."""
        rows = self.connection.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = $name", {"name": DUCKDB_CATALOG}
        ).fetchall()
        return str(Path(rows[0][0]).resolve()) if rows and rows[0][0] else DUCKDB_CATALOG

    @staticmethod
    def _sql(name_or_sql: str) -> str:
        if transpile.SQL_NAME_PATTERN.match(name_or_sql):
            return transpile.duckdb_sql(name_or_sql)
        return transpile.to_duckdb(name_or_sql)

    @_write_guarded
    def execute(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> list[tuple]:
        name, bound = _bind(name_or_sql, params)
        cursor = self.connection.execute(self._sql(name), bound or None)
        return cursor.fetchall() if cursor.description else []

    def execute_count(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> int:
        rows = self.execute(name_or_sql, params)
        return int(rows[0][0]) if rows else 0

    @_write_guarded
    def executemany(self, name_or_sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        bound_rows = [_bind(name_or_sql, row)[1] for row in rows]
        bulk = _bulk_insert_sql(name_or_sql)
        if bulk is None:
            self.connection.executemany(self._sql(name_or_sql), bound_rows)
            return
        # DuckDB runs executemany row by row (about 1 ms a row); the same rows as one Arrow
        # relation are one set insert. The relation's name is fixed and unregistered at once.
        import pyarrow as pa

        self.connection.register(BULK_ROWS_RELATION, pa.Table.from_pylist(bound_rows))
        try:
            self.connection.execute(bulk)
        finally:
            self.connection.unregister(BULK_ROWS_RELATION)

    @_write_guarded
    def reset_stage(self, stage_table: str) -> None:
        """As on Redshift; a staging view left by `stage_parquet` is dropped first."""
        self._check_stage_table(stage_table)
        if self.connection.execute(
            "SELECT 1 FROM duckdb_views() WHERE temporary AND view_name = $name", {"name": stage_table}
        ).fetchall():
            self.connection.execute(f"DROP VIEW {stage_table}")  # allow-listed identifier
        super().reset_stage(stage_table)

    @_write_guarded
    def stage_parquet(self, stage_table: str, locations: Sequence[str]) -> int:
        """Stage the files the records of local day folders list, without copying them.

        The empty staging table (its DDL) is replaced by a TEMP view of the same name and
        columns over exactly those files, each column cast to the table's type: the lines are
        read once, by the statement that uses them (the day check reads `order_date` alone),
        instead of being copied into a temporary table first (that copy was a third of the
        load). Listed files are immutable (run-unique names), so every read sees the same rows;
        a file deleted in between fails the reading statement (inside the load transaction it
        rolls back). The file list is a session variable set from a bound parameter, so no
        value enters SQL text, and nothing is written to the warehouse file.
        """
        self._check_stage_table(stage_table)
        files: list[str] = []
        for location in locations:
            if location.startswith("s3://"):
                raise ValueError(
                    f"the DuckDB warehouse loads a local lake folder; got {location!r} "
                    "(use the Redshift warehouse with an s3:// lake)"
                )
            files.extend(local_curated_files(location))
        if not files:
            return 0
        file_types = self._check_column_order(stage_table, files)
        columns = self.connection.execute(f"DESCRIBE {stage_table}").fetchall()
        select = ", ".join(_staged_column(name, kind, file_types[name]) for name, kind, *_ in columns)
        variable = f"{stage_table}_files"
        self.connection.execute(f"SET VARIABLE {variable} = $files", {"files": files})
        # Identifiers from the STAGE_TABLES allow-list and the table's own DDL; no values.
        self.connection.execute(f"DROP TABLE {stage_table}")
        self.connection.execute(
            f"CREATE TEMP VIEW {stage_table} AS SELECT {select} "
            f"FROM read_parquet(getvariable('{variable}'), hive_partitioning = false)"
        )
        return len(files)

    def _check_column_order(self, stage_table: str, files: list[str]) -> dict[str, str]:
        """Refuse files whose columns differ from the staging table's, in order; the first
        file's column types by name.

        Redshift's parquet COPY maps columns by position; checking here makes a local run
        catch the layout drift that would mis-load (or fail) on Redshift.
        """
        expected = [row[0] for row in self.connection.execute(f"DESCRIBE {stage_table}").fetchall()]
        types: dict[str, str] = {}
        for path in files:
            described = self.connection.execute(
                "DESCRIBE SELECT * FROM read_parquet($file, hive_partitioning = false)", {"file": path}
            ).fetchall()
            found = [row[0] for row in described]
            if found != expected:
                raise ValueError(
                    f"{path}: parquet columns {found} do not match {stage_table} columns {expected} "
                    "(Redshift COPY maps parquet columns by position)"
                )
            types = types or {row[0]: row[1] for row in described}
        return types

    @_write_guarded
    def _begin(self) -> None:
        self.connection.execute("BEGIN TRANSACTION")

    @_write_guarded
    def _commit(self) -> None:
        self.connection.execute("COMMIT")

    def _rollback(self) -> None:
        if self.write_failure is not None:
            return  # a spent connection runs nothing; closing it discards the open transaction
        self.connection.execute("ROLLBACK")


BULK_ROWS_RELATION = "executemany_rows"
# Version of _bulk_insert_form's output in the transpile disk cache: bump when it changes.
BULK_INSERT_CACHE_KIND = "duckdb_bulk_insert_v1"


def _staged_column(name: str, kind: str, file_kind: str) -> str:
    """The select item giving staged column `name` (of the staging DDL's type `kind`) from a
    file column of type `file_kind`.

    Curated timestamps are UTC instants (TIMESTAMP WITH TIME ZONE in parquet) and the warehouse
    stores their UTC wall time: the instant's microseconds become the naive timestamp directly,
    the same value DuckDB's time-zone cast gives in a UTC session, at a fraction of its cost
    (that cast goes through ICU's calendar per value). Everything else is a plain CAST.
    """
    column = '"' + name.replace('"', '""') + '"'
    if kind == "TIMESTAMP" and file_kind == "TIMESTAMP WITH TIME ZONE":
        return f"make_timestamp(epoch_us({column})) AS {column}"
    return f"CAST({column} AS {kind}) AS {column}"


@functools.lru_cache(maxsize=256)
def _bulk_insert_sql(name_or_sql: str) -> Optional[str]:
    """DuckDB text of `INSERT INTO t (cols) SELECT <params> FROM executemany_rows` for a
    statement that is `INSERT INTO t (cols) VALUES (:a, :b, ...)` of bare parameters; None for
    anything else (run row by row). A named statement's form is kept in the transpile cache."""
    if transpile.SQL_NAME_PATTERN.match(name_or_sql):
        return transpile.cached(
            BULK_INSERT_CACHE_KIND, name_or_sql, lambda: _bulk_insert_form(transpile.redshift_sql(name_or_sql), name_or_sql)
        )
    return _bulk_insert_form(name_or_sql, name_or_sql[:60])


def _bulk_insert_form(sql: str, source: str) -> Optional[str]:
    from sqlglot import exp

    tree = transpile.parse_redshift(sql, source=source)
    values = tree.expression if isinstance(tree, exp.Insert) else None
    if not isinstance(values, exp.Values) or len(values.expressions) != 1:
        return None
    items = values.expressions[0].expressions
    if not items or not all(isinstance(item, exp.Placeholder) and item.name for item in items):
        return None
    select = exp.select(*(exp.column(item.name, quoted=True) for item in items)).from_(BULK_ROWS_RELATION)
    tree = tree.copy()
    tree.set("expression", select)
    return transpile.to_duckdb(tree.sql(dialect=transpile.READ_DIALECT), source=source)


class DuckDBLockedError(RuntimeError):
    """The DuckDB warehouse file is held by another process (`path`, `detail`); retry later."""

    def __init__(self, path: str, detail: str):
        self.path, self.detail = path, detail
        super().__init__(f"DuckDB warehouse file {path} is locked by another process ({detail})")


def connect_duckdb(
    path: str,
    read_only: bool = False,
    lock_timeout_seconds: float = 5.0,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """A DuckDB connection with the warehouse file attached as the default catalog, session
    time zone UTC; waits up to `lock_timeout_seconds` (by `clock`, trying again every
    `LOCK_POLL_SECONDS` through `sleep`; both injectable for tests) for another process's lock,
    then raises `DuckDBLockedError`. The file's parent folder is created unless `read_only`."""
    import duckdb

    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = clock() + max(lock_timeout_seconds, 0.0)
    while True:
        connection = duckdb.connect(":memory:")
        try:
            # Attached under a fixed catalog name: connecting to the file directly names the
            # catalog after the file stem, and a file called sales.duckdb would make
            # `sales.fact_sales` ambiguous (catalog sales or schema sales). The path is a
            # bound parameter, not SQL text.
            mode = " (READ_ONLY)" if read_only else ""
            connection.execute(f"ATTACH $path AS {DUCKDB_CATALOG}{mode}", {"path": str(path)})
            connection.execute(f"USE {DUCKDB_CATALOG}")
        except duckdb.Error as error:
            connection.close()
            message = str(error)
            if not any(marker in message.lower() for marker in DUCKDB_LOCK_MARKERS):
                raise
            if clock() >= deadline:
                holder = re.search(r"PID \d+", message)
                raise DuckDBLockedError(
                    str(path.resolve()), f"held by {holder.group(0)}" if holder else "lock conflict"
                ) from None
            sleep(LOCK_POLL_SECONDS)
            continue
        # Curated timestamps are UTC instants; a non-UTC session zone would shift them when
        # cast to the warehouse's TIMESTAMP (without time zone) columns.
        connection.execute("SET TimeZone = 'UTC'")
        return connection


@contextlib.contextmanager
def duckdb_session(
    path: str,
    read_only: bool = False,
    lock_timeout_seconds: float = 5.0,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[DuckDBSession]:
    """One `DuckDBSession` on the warehouse file (see `connect_duckdb`), closed on exit."""
    connection = connect_duckdb(
        path, read_only=read_only, lock_timeout_seconds=lock_timeout_seconds, sleep=sleep, clock=clock
    )
    try:
        yield DuckDBSession(connection, str(Path(path).resolve()))
    finally:
        connection.close()


# --------------------------------------------------------------------------------------------
# Redshift (aws)
# --------------------------------------------------------------------------------------------


def _s3_object(uri: str) -> dict[str, str]:
    bucket, key = uri[len("s3://"):].split("/", 1)
    return {"Bucket": bucket, "Key": key}


def local_curated_files(location: str) -> list[str]:
    """Paths of exactly the files the record of a local curated day folder lists (see
    `sales_assets.transform.curated_manifest`); its errors when the record or a file is missing."""
    root, table, day = curated_day(location)
    record = Path(location) / curated_manifest.RECORD_NAME
    try:
        body = record.read_bytes()
    except FileNotFoundError:
        raise curated_manifest.missing_record(table, day, str(record)) from None
    names = curated_manifest.listed_names(curated_manifest.parse_record(body, str(record)), table, day, root, str(record))
    files = [Path(location) / name for name in names]
    for path in files:
        if not path.is_file():
            raise curated_manifest.missing_file(table, day, path.name, str(record))
    return [str(path) for path in files]


def s3_record_entries(s3_client: Any, location: str) -> list[dict[str, Any]]:
    """The COPY manifest entries of the record of an S3 curated day folder, each checked to
    exist with the recorded `content_length`; the curated_manifest errors otherwise."""
    match = S3_LOCATION_PATTERN.match(location)
    if not match or CURATED_MARKER not in "/" + match["key"]:
        raise ValueError(f"Redshift COPY needs an s3://bucket/prefix/curated/... day folder; got {location!r}")
    root, table, day = curated_day(location)
    bucket, prefix = match["bucket"], match["key"]
    record = f"s3://{bucket}/{prefix}{curated_manifest.RECORD_NAME}"
    try:
        body = s3_client.get_object(Bucket=bucket, Key=prefix + curated_manifest.RECORD_NAME)["Body"].read()
    except s3_client.exceptions.NoSuchKey:
        raise curated_manifest.missing_record(table, day, record) from None
    entries = curated_manifest.parse_record(body, record)
    names = curated_manifest.listed_names(entries, table, day, root, record)
    sizes: dict[str, int] = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        sizes.update((obj["Key"][len(prefix):], int(obj["Size"])) for obj in page.get("Contents", []))
    for name, entry in zip(names, entries):
        if name not in sizes:
            raise curated_manifest.missing_file(table, day, name, record)
        if sizes[name] != entry.content_length:
            # Redshift would fail the COPY on it; say which file and record disagree.
            raise curated_manifest.CuratedRecordError(
                f"{record}: {name} is {sizes[name]} bytes, the record says {entry.content_length}"
            )
    return [{"url": e.url, "mandatory": True, "meta": {"content_length": e.content_length}} for e in entries]


def write_copy_manifest(
    s3_client: Any, stage_table: str, locations: Sequence[str], manifest_name: Optional[str] = None
) -> tuple[Optional[str], int]:
    """Write the COPY manifest naming exactly the files the commit records of the S3 day folders
    `locations` list (their entries, concatenated) to
    `<lake>/_warehouse/copy_manifests/<stage_table>/<manifest_name>` (default: a fresh uuid).
    Returns (its s3 URI, the number of files); (None, 0) and nothing written when `locations` is
    empty. A folder without a record raises CuratedRecordMissingError: a day is never loaded as
    empty because its transform has not run."""
    WarehouseSession._check_stage_table(stage_table)
    entries: list[dict[str, Any]] = []
    manifest_bucket = manifest_root = None
    for location in locations:
        entries.extend(s3_record_entries(s3_client, location))
        match = S3_LOCATION_PATTERN.match(location)
        manifest_bucket = match["bucket"]
        manifest_root = ("/" + match["key"]).split(CURATED_MARKER, 1)[0].strip("/")
    if not entries:
        return None, 0
    name = manifest_name or f"{uuid.uuid4().hex}.manifest"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+\.manifest", name):
        raise ValueError(f"refusing manifest name {name!r}")
    manifest_key = "/".join(part for part in (manifest_root, COPY_MANIFEST_FOLDER, stage_table, name) if part)
    s3_client.put_object(Bucket=manifest_bucket, Key=manifest_key, Body=json.dumps({"entries": entries}, indent=1).encode())
    return f"s3://{manifest_bucket}/{manifest_key}", len(entries)


def copy_statement(stage_table: str, source: str, iam_role_arn: str) -> str:
    """The COPY of one manifest into one staging table.

    A place where values enter SQL text: Redshift rejects bind parameters in COPY, so
    the manifest URI and role ARN are set as string literals on the parsed template (sqlglot
    quotes them). Both are validated first: the manifest against S3_LOCATION_PATTERN and
    the `.manifest` suffix (the session builds it from a validated lake folder and a uuid),
    the role against IAM_ROLE_ARN_PATTERN; the table name comes from the STAGE_TABLES
    allow-list.
    """
    from sqlglot import exp

    WarehouseSession._check_stage_table(stage_table)
    if not IAM_ROLE_ARN_PATTERN.match(iam_role_arn or ""):
        raise ValueError("iam_role_arn is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    if (
        not S3_LOCATION_PATTERN.match(source.rsplit("/", 1)[0] + "/")
        or "'" in source
        or not source.endswith(".manifest")
    ):
        raise ValueError(f"refusing COPY source {source!r}")

    # The template's own sentinel literals (see sql/copy_stage_parquet.sql) are swapped for
    # sqlglot-quoted literals; comment lines are dropped so sentinels match exactly once.
    template = "\n".join(
        line for line in transpile.redshift_sql("copy_stage_parquet").splitlines()
        if not line.lstrip().startswith("--")
    ).strip()
    replacements = {
        COPY_TEMPLATE_TABLE: f"COPY {stage_table}",
        COPY_TEMPLATE_SOURCE: exp.Literal.string(source).sql(dialect=transpile.READ_DIALECT),
        COPY_TEMPLATE_ROLE: exp.Literal.string(iam_role_arn).sql(dialect=transpile.READ_DIALECT),
    }
    for sentinel, value in replacements.items():
        if template.count(sentinel) != 1:
            raise transpile.TranspileError(f"sql/copy_stage_parquet.sql: sentinel {sentinel!r} must occur once")
        template = template.replace(sentinel, value)
    # Prove the result is the intended COPY and nothing else.
    tree = transpile.parse_redshift(template, source="sql/copy_stage_parquet.sql")
    files = [f.name for f in tree.args.get("files") or []]
    if not isinstance(tree, exp.Copy) or tree.this.name != stage_table or files != [source]:
        raise transpile.TranspileError(f"COPY template produced an unexpected statement: {template}")
    return template


class RedshiftSession(WarehouseSession):
    """A redshift_connector connection in autocommit mode with explicit BEGIN/COMMIT."""

    engine = "redshift"

    def __init__(self, connection: Any, iam_role_arn: str, s3_client: Any):
        if not IAM_ROLE_ARN_PATTERN.match(iam_role_arn or ""):
            raise ValueError("iam_role_arn is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        self.connection = connection
        self.iam_role_arn = iam_role_arn
        self.s3_client = s3_client

    def _cursor(self) -> Any:
        cursor = self.connection.cursor()
        cursor.paramstyle = "named"
        return cursor

    def _run(self, sql: str, params: Optional[Mapping[str, Any]]) -> Any:
        cursor = self._cursor()
        cursor.execute(sql, dict(params) if params else None)
        return cursor

    def execute(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> list[tuple]:
        name, bound = _bind(name_or_sql, params)
        sql = transpile.redshift_sql(name) if transpile.SQL_NAME_PATTERN.match(name) else name
        cursor = self._run(sql, bound)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    def execute_count(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> int:
        name, bound = _bind(name_or_sql, params)
        sql = transpile.redshift_sql(name) if transpile.SQL_NAME_PATTERN.match(name) else name
        return max(int(self._run(sql, bound).rowcount or 0), 0)

    def executemany(self, name_or_sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        sql = transpile.redshift_sql(name_or_sql) if transpile.SQL_NAME_PATTERN.match(name_or_sql) else name_or_sql
        self._cursor().executemany(sql, [_bind(name_or_sql, row)[1] for row in rows])

    def stage_parquet(self, stage_table: str, locations: Sequence[str]) -> int:
        """ONE COPY of the files the day folders' commit records list, through one manifest.

        Each day's record (itself a COPY manifest) is read and its files checked to exist with
        their recorded size; the entries of all days go into one COPY manifest (`mandatory:
        true`), so what is loaded is exactly what was committed, and a file vanishing in between
        fails the COPY instead of silently loading less. The manifest is deleted after a
        successful COPY and kept on failure for diagnosis (its URI is in the error).
        """
        manifest, count = write_copy_manifest(self.s3_client, stage_table, locations)
        if manifest is None:
            return 0
        self._copy(stage_table, manifest)
        self.s3_client.delete_object(**_s3_object(manifest))
        return count

    def copy_statement(self, stage_table: str, source: str) -> str:
        """The COPY of one manifest into one staging table (see `copy_statement`)."""
        return copy_statement(stage_table, source, self.iam_role_arn)

    def _copy(self, stage_table: str, source: str) -> None:
        sql = self.copy_statement(stage_table, source)
        try:
            self._run(sql, None)
        except Exception as error:  # redshift_connector raises ProgrammingError/DatabaseError
            try:
                rows = self.execute("load_error_detail")
            except Exception as detail_error:  # keep the COPY error even if the lookup fails
                rows = [("could not read sys_load_error_detail", repr(detail_error))]
            raise WarehouseLoadError(f"COPY into {stage_table} from {source} failed: {error}", rows) from error

    def _begin(self) -> None:
        self._run("BEGIN", None)

    def _commit(self) -> None:
        self._run("COMMIT", None)

    def _rollback(self) -> None:
        self._run("ROLLBACK", None)


