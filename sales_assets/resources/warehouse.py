"""Warehouse resources: one interface, a local DuckDB file or Amazon Redshift behind it.

`WarehouseResource.session()` opens ONE connection for a whole Dagster step (DuckDB lets one
process at a time open the file for writing) and yields a `WarehouseSession`, the only thing
the loader talks to. The sessions live in `sales_assets.warehouse.session` (no Dagster import,
so the benchmark's load stage and tools do not pay it); every name of that module is
re-exported here, so `from sales_assets.resources.warehouse import DuckDBSession` keeps working.
What a session guarantees is said there.

Callers may rely on:
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
import time
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Optional

import dagster as dg
from pydantic import Field, PrivateAttr

from sales_assets.warehouse import transpile
from sales_assets.warehouse.session import (  # noqa: F401 (re-exported: the sessions' home before)
    BULK_ROWS_RELATION,
    COPY_MANIFEST_FOLDER,
    COPY_TEMPLATE_ROLE,
    COPY_TEMPLATE_SOURCE,
    COPY_TEMPLATE_TABLE,
    CURATED_DAY_PATTERN,
    CURATED_MARKER,
    DUCKDB_CATALOG,
    DUCKDB_LOCK_MARKERS,
    IAM_ROLE_ARN_PATTERN,
    LOCK_POLL_SECONDS,
    S3_LOCATION_PATTERN,
    STAGE_TABLES,
    DuckDBLockedError,
    DuckDBSession,
    RedshiftSession,
    WarehouseLoadError,
    WarehouseSession,
    _bind,
    _s3_object,
    connect_duckdb,
    copy_statement,
    curated_day,
    duckdb_session,
    local_curated_files,
    s3_record_entries,
    write_copy_manifest,
)

LOGGER = logging.getLogger(__name__)


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
        from sales_assets.warehouse import loader  # lazy: keeps this module's import small

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
            yield DuckDBSession(connection)
        finally:
            connection.close()

    def _connect(self) -> Any:
        """`session.connect_duckdb` (time zone UTC), its lock error as the retryable Dagster one."""
        try:
            return connect_duckdb(self.path, read_only=self.read_only, lock_timeout_seconds=self.lock_timeout_seconds)
        except DuckDBLockedError as error:
            raise WarehouseLockedError(error.path, error.detail) from None


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
    def connection(self) -> Iterator[Any]:
        """A plain redshift_connector connection in autocommit mode (explicit BEGIN/COMMIT delimit
        a transaction), closed on exit; for statements that are not a load (no COPY role needed).
        Failing to connect raises ConnectionError naming the target, without any secret."""
        connection = self._connect()
        try:
            yield connection
        finally:
            connection.close()

    def redact(self, text: str) -> str:
        """`text` with the password this resource connects with masked as `***` (for messages
        built from server errors, which may echo what they were sent)."""
        return _scrub(text, [self._password(), self.password])

    @contextlib.contextmanager
    def session(self) -> Iterator[RedshiftSession]:
        with self.connection() as connection:
            yield RedshiftSession(connection, self.iam_role_arn, self._s3())

    def apply_statements(self, statements: Sequence[str], name: str = "sales") -> None:
        """One transaction on a plain connection: no COPY, so no COPY role is needed."""
        with self.connection() as connection:
            cursor = connection.cursor()
            cursor.execute("BEGIN")
            try:
                for statement in statements:
                    cursor.execute(statement)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")


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
