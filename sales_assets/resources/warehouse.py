"""Warehouse resources: one interface, a local DuckDB file or Amazon Redshift behind it.

`WarehouseResource.session()` opens ONE connection for a whole Dagster step (DuckDB lets one
process at a time open the file for writing) and yields a `WarehouseSession`, the only thing
the loader talks to. Statements are the Redshift files in `warehouse/sql/`, addressed by name;
values are always bound parameters (`:name`), never formatted into SQL text.

Callers may rely on:
- `session.execute(name_or_sql, params) -> list[tuple]` returns result rows ([] for
  statements without a result set); `session.execute_count(...)` returns affected rows;
  `session.executemany(name, rows)`; `session.transaction()` commits on success and rolls
  back (then re-raises) on any exception.
- `session.stage_parquet(stage_table, locations)` fills an allow-listed staging table from the
  curated day folders given, reading exactly the files each folder's commit record
  (`_manifest.json`, see `sales_assets.transform.curated_manifest`) lists, and returns the
  number of files read. A folder without a record raises `CuratedRecordMissingError` (run the
  transform) and a listed file that is gone `CuratedFileMissingError`; nothing is staged then.
- A DuckDB file locked by another process raises `WarehouseLockedError` (a `dg.Failure` that
  respects retry policies) naming the file. A failed Redshift COPY raises `WarehouseLoadError`
  carrying the rows of SYS_LOAD_ERROR_DETAIL.
"""
from __future__ import annotations

import abc
import contextlib
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlglot import exp

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


class WarehouseLockedError(dg.Failure):
    """The DuckDB warehouse file is held by another process; retrying later is safe."""

    def __init__(self, path: str, detail: str):
        self.path = path
        super().__init__(
            description=(
                f"DuckDB warehouse file {path} is locked by another process ({detail}). "
                "Only one process may write it at a time: another step is loading or reading it. "
                "Nothing was loaded; retry once that step has finished."
            ),
            metadata={"warehouse_path": path, "retryable": True},
            allow_retries=True,
        )


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
        try:
            yield self
        except BaseException:
            try:
                self._rollback()
            except Exception:  # keep the original error; the server discards the txn anyway
                LOGGER.exception("ROLLBACK failed after an error inside the load transaction")
            raise
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


class DuckDBSession(WarehouseSession):
    """A DuckDB connection speaking the Redshift statements through `transpile`."""

    engine = "duckdb"

    def __init__(self, connection: Any):
        self.connection = connection

    @staticmethod
    def _sql(name_or_sql: str) -> str:
        if transpile.SQL_NAME_PATTERN.match(name_or_sql):
            return transpile.duckdb_sql(name_or_sql)
        return transpile.to_duckdb(name_or_sql)

    def execute(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> list[tuple]:
        name, bound = _bind(name_or_sql, params)
        cursor = self.connection.execute(self._sql(name), bound or None)
        return cursor.fetchall() if cursor.description else []

    def execute_count(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> int:
        rows = self.execute(name_or_sql, params)
        return int(rows[0][0]) if rows else 0

    def executemany(self, name_or_sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        bound_rows = [_bind(name_or_sql, row)[1] for row in rows]
        self.connection.executemany(self._sql(name_or_sql), bound_rows)

    def stage_parquet(self, stage_table: str, locations: Sequence[str]) -> int:
        """Read the files the records of local day folders list; the file list is a bound parameter."""
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
        self._check_column_order(stage_table, files)
        # Identifier from the STAGE_TABLES allow-list; the file list is bound, not formatted.
        self.connection.execute(
            f"INSERT INTO {stage_table} BY NAME "
            "SELECT * FROM read_parquet($files, hive_partitioning = false)",
            {"files": files},
        )
        return len(files)

    def _check_column_order(self, stage_table: str, files: list[str]) -> None:
        """Refuse files whose columns differ from the staging table's, in order.

        Redshift's parquet COPY maps columns by position; checking here makes a local run
        catch the layout drift that would mis-load (or fail) on Redshift.
        """
        expected = [row[0] for row in self.connection.execute(f"DESCRIBE {stage_table}").fetchall()]
        for path in files:
            found = [
                row[0]
                for row in self.connection.execute(
                    "DESCRIBE SELECT * FROM read_parquet($file, hive_partitioning = false)", {"file": path}
                ).fetchall()
            ]
            if found != expected:
                raise ValueError(
                    f"{path}: parquet columns {found} do not match {stage_table} columns {expected} "
                    "(Redshift COPY maps parquet columns by position)"
                )

    def _begin(self) -> None:
        self.connection.execute("BEGIN TRANSACTION")

    def _commit(self) -> None:
        self.connection.execute("COMMIT")

    def _rollback(self) -> None:
        self.connection.execute("ROLLBACK")


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


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------


class WarehouseResource(dg.ConfigurableResource, abc.ABC):
    """A warehouse the loader can write; `session()` yields one connection for a whole step."""

    @abc.abstractmethod
    @contextlib.contextmanager
    def session(self) -> Iterator[WarehouseSession]:
        """One connection, closed on exit."""

    def load_days(self, session: WarehouseSession, lake_root: str, days: Sequence[dt.date]) -> Any:
        """Replace `days` with their curated parquet; a `loader.LoadReport` (see loader.load_days).

        The Data API warehouse overrides this (its report is a `DataApiLoadReport`).
        """
        from sales_assets.warehouse import loader  # loader imports this module

        loader.ensure_schema(session)
        return loader.load_days(session, lake_root, days)

    def apply_statements(self, statements: Sequence[str], name: str = "sales") -> None:
        """Run Redshift `statements` (no parameters) as ONE transaction: all or nothing."""
        with self.session() as session, session.transaction():
            for statement in statements:
                session.execute(statement)


class DuckDBWarehouseResource(WarehouseResource):
    """The local warehouse: one DuckDB file (its parent folder is created on demand)."""

    path: str = Field(description="DuckDB database file, e.g. ./.sales_data/warehouse.duckdb")
    read_only: bool = Field(default=False, description="Open for reading only (asset checks after the load).")
    lock_timeout_seconds: float = Field(
        default=5.0, description="How long to wait for another process's lock before failing (retryable)."
    )

    @contextlib.contextmanager
    def session(self) -> Iterator[DuckDBSession]:
        connection = self._connect()
        try:
            # Curated timestamps are UTC instants; a non-UTC session zone would shift them
            # when cast to the warehouse's TIMESTAMP (without time zone) columns.
            connection.execute("SET TimeZone = 'UTC'")
            yield DuckDBSession(connection)
        finally:
            connection.close()

    def _connect(self) -> Any:
        import duckdb

        path = Path(self.path)
        if not self.read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + max(self.lock_timeout_seconds, 0.0)
        while True:
            connection = duckdb.connect(":memory:")
            try:
                # Attached under a fixed catalog name: connecting to the file directly names the
                # catalog after the file stem, and a file called sales.duckdb would make
                # `sales.fact_sales` ambiguous (catalog sales or schema sales). The path is a
                # bound parameter, not SQL text.
                mode = " (READ_ONLY)" if self.read_only else ""
                connection.execute(f"ATTACH $path AS {DUCKDB_CATALOG}{mode}", {"path": str(path)})
                connection.execute(f"USE {DUCKDB_CATALOG}")
                return connection
            except duckdb.Error as error:
                connection.close()
                message = str(error)
                if not any(marker in message.lower() for marker in DUCKDB_LOCK_MARKERS):
                    raise
                if time.monotonic() >= deadline:
                    holder = re.search(r"PID \d+", message)
                    raise WarehouseLockedError(
                        str(path.resolve()), f"held by {holder.group(0)}" if holder else "lock conflict"
                    ) from None
                time.sleep(LOCK_POLL_SECONDS)


class RedshiftSecretError(RuntimeError):
    """The Secrets Manager secret holding the Redshift credentials cannot be used.

    The message names the secret (its ARN) and what is wrong, never a value from it.
    """


def read_redshift_secret(secrets_client: Any, secret_arn: str) -> dict[str, Any]:
    """`username`, `password` (and `host`/`port` when present) of a Redshift secret.

    The secret is the JSON Secrets Manager stores for Redshift (`{"username": ...,
    "password": ..., "host": ..., "port": ...}`). Errors name the secret and the missing
    keys; the secret's text never enters an exception (not even as a chained cause).
    """
    response, failure = None, None
    try:
        response = secrets_client.get_secret_value(SecretId=secret_arn)
    except Exception as error:  # botocore ClientError: its message names the secret, not its value
        failure = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
    if failure is not None:
        # Raised outside the except block: no __context__ chain to the original either.
        raise RedshiftSecretError(f"could not read Redshift secret {secret_arn}: {failure}")
    text = response.get("SecretString")
    try:
        values = json.loads(text) if text else None
    except ValueError:
        values = None  # json's error carries the document: drop it
    if not isinstance(values, dict):
        raise RedshiftSecretError(
            f"Redshift secret {secret_arn} is not a JSON object with username and password (SecretString)"
        )
    missing = [key for key in ("username", "password") if not values.get(key)]
    if missing:
        raise RedshiftSecretError(f"Redshift secret {secret_arn} has no {' or '.join(missing)}")
    out = {"user": str(values["username"]), "password": str(values["password"])}
    if values.get("host"):
        out["host"] = str(values["host"])
    if values.get("port"):
        out["port"] = int(values["port"])
    return out


def _scrub(text: str, secrets: Sequence[Optional[str]]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class RedshiftWarehouseResource(WarehouseResource):
    """Amazon Redshift (provisioned or serverless) through redshift_connector.

    Where: `host` (a cluster or Serverless workgroup endpoint), or with IAM auth just the
    `cluster_identifier` (provisioned) or `workgroup` (Serverless).
    Authentication, first that applies: `password` (use dg.EnvVar) with `user`;
    `secret_arn`, a Secrets Manager secret whose JSON holds username and password (read at
    each connect, its host/port used when `host` is unset); otherwise IAM
    (redshift_connector `iam=True`) with `cluster_identifier` + `user` as db_user, or
    `workgroup`. The password, whichever its source, never appears in repr, logs, metadata
    or errors.
    """

    host: Optional[str] = Field(default=None, description="Endpoint host; optional with IAM auth.")
    port: int = 5439
    database: str = "dev"
    user: Optional[str] = Field(default=None, description="Database user (db_user with IAM auth).")
    password: Optional[str] = Field(default=None, repr=False, description="Use dg.EnvVar; never logged.")
    secret_arn: Optional[str] = Field(
        default=None, description="Secrets Manager secret (JSON username/password) to connect with."
    )
    iam_role_arn: str = Field(description="Role Redshift assumes to COPY from S3.")
    region: str = "us-east-1"
    workgroup: Optional[str] = Field(default=None, description="Redshift Serverless workgroup (IAM auth).")
    cluster_identifier: Optional[str] = Field(default=None, description="Provisioned cluster id (IAM auth).")

    _s3_client: Any = PrivateAttr(default=None)
    _secrets_client: Any = PrivateAttr(default=None)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redshift_connector.connect (contains the password: do not log).

        With `secret_arn` this reads the secret (RedshiftSecretError when it is unusable).
        """
        if self.password and self.secret_arn:
            raise ValueError("give the Redshift warehouse a password or a secret_arn, not both")
        if self.workgroup and self.cluster_identifier:
            raise ValueError("give the Redshift warehouse a workgroup or a cluster_identifier, not both")
        kwargs: dict[str, Any] = {"database": self.database, "port": self.port, "region": self.region}
        if self.host:
            kwargs["host"] = self.host
        if self.password or self.secret_arn:
            if self.password:
                kwargs.update(user=self.user, password=self._password())
            else:
                credentials = read_redshift_secret(self._secrets(), self.secret_arn)
                kwargs.update(user=credentials["user"], password=credentials["password"])
                if not self.host and "host" in credentials:
                    kwargs.update(host=credentials["host"], port=credentials.get("port", self.port))
            if not kwargs.get("user") or not kwargs.get("host"):
                raise ValueError("password authentication needs a user and a host (the cluster or workgroup endpoint)")
        elif self.workgroup:
            kwargs.update(iam=True, is_serverless=True, serverless_work_group=self.workgroup)
            if self.user:
                kwargs["db_user"] = self.user
        elif self.cluster_identifier:
            kwargs.update(iam=True, cluster_identifier=self.cluster_identifier, db_user=self.user)
        else:
            raise ValueError(
                "Redshift warehouse needs a password, a secret_arn, a workgroup or a cluster_identifier"
            )
        return kwargs

    def _password(self) -> Optional[str]:
        # Dagster resolves an EnvVar when it initializes the resource for a run; used outside a
        # run (the CLI's `bi-grants --apply`) the field still holds the EnvVar, i.e. its name.
        if isinstance(self.password, dg.EnvVar):
            return self.password.get_value()
        return self.password

    def _s3(self) -> Any:
        if self._s3_client is None:
            import boto3

            self._s3_client = boto3.client("s3", region_name=self.region)
        return self._s3_client

    def _secrets(self) -> Any:
        if self._secrets_client is None:
            import boto3

            self._secrets_client = boto3.client("secretsmanager", region_name=self.region)
        return self._secrets_client

    def _connect(self) -> Any:
        """An autocommit redshift_connector connection; ConnectionError without any secret."""
        import redshift_connector

        target = f"{self.host or self.workgroup or self.cluster_identifier}:{self.port}/{self.database}"
        password, failure = self.password, None
        try:
            kwargs = self.connect_kwargs()
            password = kwargs.get("password")
            connection = redshift_connector.connect(**kwargs)
        except Exception as error:
            # Re-raised below, outside this block, without the connect arguments and with no
            # cause or context chained, so no secret reaches logs or the UI; the message is
            # scrubbed in case a driver ever echoes the password.
            failure = _scrub(f"{type(error).__name__}: {error}", [password, self.password])
        if failure is not None:
            raise ConnectionError(f"could not connect to Redshift {target}: {failure}")
        auth = "password" if self.password else "secret" if self.secret_arn else "iam"
        LOGGER.info("connected to Redshift %s as %s (%s)", target, kwargs.get("user") or self.user or "<iam>", auth)
        # Explicit BEGIN/COMMIT delimit a transaction; the load's staging COPYs and its checks
        # run outside it.
        connection.autocommit = True
        return connection

    @contextlib.contextmanager
    def session(self) -> Iterator[RedshiftSession]:
        connection = self._connect()
        try:
            yield RedshiftSession(connection, self.iam_role_arn, self._s3())
        finally:
            connection.close()

    def apply_statements(self, statements: Sequence[str], name: str = "sales") -> None:
        """One transaction on a plain connection: no COPY, so no COPY role is needed."""
        connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute("BEGIN")
            try:
                for statement in statements:
                    cursor.execute(statement)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
        finally:
            connection.close()


# --------------------------------------------------------------------------------------------
# Redshift Data API (aws, where a connection is impractical)
# --------------------------------------------------------------------------------------------

DATA_API_DONE = frozenset({"FINISHED", "FAILED", "ABORTED"})
# BatchExecuteStatement accepts at most this many SQL statements.
DATA_API_MAX_BATCH = 40


class RedshiftDataApiError(RuntimeError):
    """A Data API statement ended FAILED or ABORTED, or did not finish in time."""

    def __init__(self, statement_id: str, status: str, error: str):
        self.statement_id, self.status, self.error = statement_id, status, error
        super().__init__(f"Redshift Data API statement {statement_id} {status}: {error}")


def _data_api_value(value: Any) -> str:
    """A bound value as the Data API wants it: a string Redshift casts to the column type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, int, Decimal, str)):
        return str(value.isoformat() if isinstance(value, dt.date) else value)
    raise TypeError(f"cannot bind {type(value).__name__} through the Data API")


_DATA_API_PARSERS = {
    "numeric": Decimal,
    "decimal": Decimal,
    "date": dt.date.fromisoformat,
    "timestamp": dt.datetime.fromisoformat,
    "timestamptz": dt.datetime.fromisoformat,
}


def _typed(value: Any, type_name: str) -> Any:
    """A Data API string value as the Python type of its Redshift column (else unchanged)."""
    parse = _DATA_API_PARSERS.get(type_name)
    if parse is None or not isinstance(value, str):
        return value
    try:
        return parse(value)
    except (ValueError, ArithmeticError):
        return value


class RedshiftDataApiResource(dg.ConfigurableResource):
    """Amazon Redshift through the Data API (boto3 `redshift-data`): no connection, no driver.

    For callers without network access to the cluster (a Lambda, a Step Functions task, an
    operator's laptop applying `bi-grants`). `execute_batch` runs its statements as ONE
    transaction (BatchExecuteStatement) and polls DescribeStatement until FINISHED, FAILED
    or ABORTED; `query` runs one statement and returns its rows. Values are bound parameters
    (`:name` in the SQL, `Parameters` in the request), never formatted into SQL text.
    Authentication: `secret_arn` (Secrets Manager), else IAM with `db_user` (provisioned) or
    the caller's identity (serverless).
    """

    database: str = "dev"
    workgroup: Optional[str] = Field(default=None, description="Redshift Serverless workgroup.")
    cluster_identifier: Optional[str] = Field(default=None, description="Provisioned cluster id.")
    db_user: Optional[str] = Field(default=None, description="Database user for IAM auth (provisioned).")
    secret_arn: Optional[str] = Field(default=None, description="Secrets Manager secret with the credentials.")
    region: str = "us-east-1"
    poll_seconds: float = 1.0
    timeout_seconds: float = 900.0

    _client: Any = PrivateAttr(default=None)
    _sleep: Any = PrivateAttr(default=time.sleep)

    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("redshift-data", region_name=self.region)
        return self._client

    def target(self) -> dict[str, str]:
        """The request fields naming the database and how to authenticate."""
        if bool(self.workgroup) == bool(self.cluster_identifier):
            raise ValueError("the Data API needs exactly one of workgroup or cluster_identifier")
        fields = {"Database": self.database}
        fields.update({"WorkgroupName": self.workgroup} if self.workgroup else {"ClusterIdentifier": self.cluster_identifier})
        if self.secret_arn:
            fields["SecretArn"] = self.secret_arn
        elif self.db_user and self.cluster_identifier:
            fields["DbUser"] = self.db_user
        return fields

    @staticmethod
    def parameters(sqls: Sequence[str], params: Optional[Mapping[str, Any]]) -> list[dict[str, str]]:
        """The Data API parameter list: exactly the `:names` the statements declare."""
        wanted: set[str] = set()
        for sql in sqls:
            wanted |= transpile.placeholders_of(sql, source="<data api statement>")
        given = dict(params or {})
        missing = wanted - given.keys()
        if missing:
            raise ValueError(f"Data API statements need parameters {sorted(missing)}")
        return [{"name": name, "value": _data_api_value(given[name])} for name in sorted(wanted)]

    def execute_batch(self, sqls: Sequence[str], params: Optional[Mapping[str, Any]] = None, name: str = "sales") -> dict:
        """Run `sqls` as one transaction; the final DescribeStatement response (FINISHED)."""
        sqls = list(sqls)
        if not 1 <= len(sqls) <= DATA_API_MAX_BATCH:
            raise ValueError(f"a Data API batch holds 1 to {DATA_API_MAX_BATCH} statements, got {len(sqls)}")
        request: dict[str, Any] = {**self.target(), "Sqls": sqls, "StatementName": name}
        bound = self.parameters(sqls, params)
        if bound:
            request["Parameters"] = bound
        return self.wait(self.client().batch_execute_statement(**request)["Id"])

    def run(self, sql: str, params: Optional[Mapping[str, Any]] = None) -> dict:
        """Run one statement (its own transaction); the final DescribeStatement response
        (`ResultRows`: rows affected by DML, `HasResultSet`)."""
        request: dict[str, Any] = {**self.target(), "Sql": sql}
        bound = self.parameters([sql], params)
        if bound:
            request["Parameters"] = bound
        return self.wait(self.client().execute_statement(**request)["Id"])

    def query(self, sql: str, params: Optional[Mapping[str, Any]] = None) -> list[tuple]:
        """Run one statement; its rows, [] without a result set.

        Values come back as redshift_connector would return them where the column type says
        so (numeric -> Decimal, date -> date, timestamp -> datetime; the Data API sends these
        as strings), so the same reading code works on either path.
        """
        description = self.run(sql, params)
        if not description.get("HasResultSet"):
            return []
        rows: list[tuple] = []
        token = None
        while True:
            page = self.client().get_statement_result(Id=description["Id"], **({"NextToken": token} if token else {}))
            types = [str(c.get("typeName") or "").lower() for c in page.get("ColumnMetadata") or []]
            for record in page.get("Records", []):
                values = [self._field(f) for f in record]
                rows.append(tuple(_typed(v, types[i] if i < len(types) else "") for i, v in enumerate(values)))
            token = page.get("NextToken")
            if not token:
                return rows

    def wait(self, statement_id: str) -> dict:
        """Poll DescribeStatement until FINISHED; RedshiftDataApiError on FAILED/ABORTED/timeout."""
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            description = self.client().describe_statement(Id=statement_id)
            status = description.get("Status", "")
            if status == "FINISHED":
                return description
            if status in DATA_API_DONE:
                raise RedshiftDataApiError(statement_id, status, description.get("Error") or "no error message")
            if time.monotonic() >= deadline:
                raise RedshiftDataApiError(statement_id, status, f"not finished after {self.timeout_seconds}s")
            self._sleep(self.poll_seconds)

    @staticmethod
    def _field(field: Mapping[str, Any]) -> Any:
        if field.get("isNull"):
            return None
        for kind in ("stringValue", "longValue", "doubleValue", "booleanValue", "blobValue"):
            if kind in field:
                return field[kind]
        return None


class DataApiSession(WarehouseSession):
    """Reads (and single auto-committed statements) through the Data API, for the checks,
    the reporting views and the dashboard.

    Each Data API statement runs in its own database session, so nothing that needs a
    session across statements is offered: no staging (temporary tables would vanish) and no
    multi-statement transaction; the day load goes through `load_days_with_data_api`
    (`RedshiftDataApiWarehouseResource.load_days`), whose batches are transactions.
    """

    engine = "redshift_data_api"

    def __init__(self, data_api: RedshiftDataApiResource):
        self.data_api = data_api

    @staticmethod
    def _sql(name: str) -> str:
        return transpile.redshift_sql(name) if transpile.SQL_NAME_PATTERN.match(name) else name

    def execute(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> list[tuple]:
        name, bound = _bind(name_or_sql, params)
        return self.data_api.query(self._sql(name), bound)

    def execute_count(self, name_or_sql: str, params: Optional[Mapping[str, Any]] = None) -> int:
        name, bound = _bind(name_or_sql, params)
        return max(int(self.data_api.run(self._sql(name), bound).get("ResultRows") or 0), 0)

    def executemany(self, name_or_sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.execute_count(name_or_sql, row)

    def stage_parquet(self, stage_table: str, locations: Sequence[str]) -> int:
        raise NotImplementedError(
            "the Data API cannot stage: its temporary tables end with each statement; "
            "load days with RedshiftDataApiWarehouseResource.load_days (one batch per day range)"
        )

    def _unsupported(self) -> None:
        raise NotImplementedError(
            "the Data API runs no transaction across calls; use RedshiftDataApiResource.execute_batch"
        )

    def _begin(self) -> None:
        self._unsupported()

    def _commit(self) -> None:
        self._unsupported()

    def _rollback(self) -> None:
        self._unsupported()


class RedshiftDataApiWarehouseResource(WarehouseResource):
    """The aws warehouse through the Redshift Data API: no network path to the cluster needed.

    `load_days` replaces the days with `warehouse.data_api_load.load_days_with_data_api`
    (one BatchExecuteStatement, i.e. one transaction, per run of days); `session()` yields a
    `DataApiSession` for the reads after it (asset checks, reporting views, dashboard), which
    return the same Python types as the connection path. `apply_statements` is one batch.
    Authentication is the `data_api` resource's: a Secrets Manager secret ARN, or IAM.
    """

    data_api: RedshiftDataApiResource
    iam_role_arn: str = Field(description="Role Redshift assumes to COPY from S3.")

    _s3_client: Any = PrivateAttr(default=None)

    def _s3(self) -> Any:
        if self._s3_client is None:
            import boto3

            self._s3_client = boto3.client("s3", region_name=self.data_api.region)
        return self._s3_client

    @contextlib.contextmanager
    def session(self) -> Iterator[DataApiSession]:
        self.data_api.target()  # a misconfiguration fails before any work
        yield DataApiSession(self.data_api)

    def load_days(self, session: WarehouseSession, lake_root: str, days: Sequence[dt.date]) -> Any:
        """Replace `days` through Data API batches; a `data_api_load.DataApiLoadReport`."""
        from sales_assets.warehouse.data_api_load import load_days_with_data_api  # imports this module

        return load_days_with_data_api(self.data_api, self._s3(), lake_root, days, self.iam_role_arn)

    def apply_statements(self, statements: Sequence[str], name: str = "sales") -> None:
        self.data_api.execute_batch(list(statements), name=name)
