"""Catalog resources: the Glue Data Catalog, or a local SQLite file holding the same records.

Both implementations speak the Glue API's shapes, so the crawler (and a reader such as Athena
or a test) sees one structure:

- a table is Glue's ``Table``: the ``TableInput`` keys plus ``DatabaseName``, ``CreateTime``,
  ``UpdateTime`` and ``VersionId`` (a decimal string; each ``update_table`` makes the next one);
- a partition is Glue's ``Partition``: ``Values``, ``DatabaseName``, ``TableName``,
  ``StorageDescriptor`` (with its own ``Location``), ``Parameters``, ``CreationTime``.

Timestamps are ``datetime`` objects from Glue (boto3) and ISO-8601 UTC strings from the local
file; callers should not compare them across implementations.

Concurrency: daily partitions run in parallel processes. ``update_table`` takes the version the
caller read (``expected_version``) and raises :class:`CatalogConflictError` when another writer
got there first, so a read-merge-write caller can re-read and retry instead of losing columns.
"""
from __future__ import annotations

import abc
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import dagster as dg
from pydantic import Field, PrivateAttr

# Keys of Glue's TableInput; anything else in a Table (VersionId, CreateTime...) is Glue-owned.
TABLE_INPUT_KEYS = (
    "Name", "Description", "Owner", "LastAccessTime", "LastAnalyzedTime", "Retention",
    "StorageDescriptor", "PartitionKeys", "ViewOriginalText", "ViewExpandedText", "TableType",
    "Parameters", "TargetTable", "ViewDefinition",
)
SQLITE_BUSY_TIMEOUT_SECONDS = 60.0
CRAWLER_FAILED_STATUSES = ("FAILED", "CANCELLED")
# BatchCreatePartition and BatchUpdatePartition take at most 100 partitions a call.
GLUE_PARTITION_BATCH_SIZE = 100


class CatalogConflictError(RuntimeError):
    """Another writer changed the table (or created it) since the caller read it; re-read, retry."""


class CrawlerRunError(RuntimeError):
    """A Glue crawler run ended FAILED or CANCELLED; the message carries Glue's error text."""


class CrawlerTimeoutError(CrawlerRunError, TimeoutError):
    """The crawler did not get back to READY within the timeout."""


class PartitionWriteError(RuntimeError):
    """Glue refused some partitions of a batch for a reason other than "already exists"."""


def table_input_from(table: dict) -> dict:
    """The ``TableInput`` part of a Glue ``Table`` dict (drops Glue-owned keys)."""
    return {k: v for k, v in table.items() if k in TABLE_INPUT_KEYS}


class CatalogResource(dg.ConfigurableResource, abc.ABC):
    """A Glue-shaped data catalog: databases, versioned tables, partitions with own locations."""

    @abc.abstractmethod
    def ensure_database(self, name: str) -> None:
        """Create the database unless it exists."""

    @abc.abstractmethod
    def get_table(self, database: str, name: str) -> dict | None:
        """Glue's ``Table`` (current version, with ``VersionId``), or None when absent."""

    @abc.abstractmethod
    def create_table(self, database: str, table_input: dict) -> str:
        """Create the table; returns its ``VersionId``. Raises CatalogConflictError if it exists."""

    @abc.abstractmethod
    def update_table(self, database: str, table_input: dict, expected_version: str | None = None) -> str:
        """Store ``table_input`` as a new table version and return its ``VersionId``.

        With ``expected_version``, raise CatalogConflictError unless that is the current version.
        """

    @abc.abstractmethod
    def get_table_versions(self, database: str, name: str) -> list[dict]:
        """Glue's ``TableVersions``: ``[{"Table": {...}, "VersionId": "n"}]``, oldest first."""

    @abc.abstractmethod
    def upsert_partition(
        self, database: str, table: str, values: list[str], storage_descriptor: dict,
        parameters: dict | None = None,
    ) -> None:
        """Create the partition, or replace its storage descriptor and parameters."""

    def upsert_partitions(self, database: str, table: str, partition_inputs: list[dict]) -> None:
        """Create or replace several partitions, each a Glue ``PartitionInput`` dict
        (``Values``, ``StorageDescriptor``, optional ``Parameters``)."""
        for p in partition_inputs:
            self.upsert_partition(database, table, p["Values"], p["StorageDescriptor"], p.get("Parameters"))

    def configured_crawler(self) -> str | None:
        """Name of a real Glue crawler that should crawl instead of the project's crawler, if any."""
        return None

    def start_crawler_and_wait(self, name: str, **kwargs: Any) -> dict:
        """Run a Glue crawler to completion; only the Glue catalog has crawlers."""
        raise NotImplementedError(f"{type(self).__name__} has no Glue crawlers (asked to run {name!r})")

    @abc.abstractmethod
    def get_partition(self, database: str, table: str, values: list[str]) -> dict | None:
        """Glue's ``Partition``, or None when absent."""

    @abc.abstractmethod
    def get_partitions(self, database: str, table: str) -> list[dict]:
        """Every partition of the table, sorted by ``Values``."""


# ---------------------------------------------------------------- local SQLite file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS databases (
    name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tables (
    database TEXT NOT NULL, name TEXT NOT NULL, current_version INTEGER NOT NULL,
    PRIMARY KEY (database, name));
CREATE TABLE IF NOT EXISTS table_versions (
    database TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (database, name, version));
CREATE TABLE IF NOT EXISTS partitions (
    database TEXT NOT NULL, table_name TEXT NOT NULL, partition_values TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (database, table_name, partition_values));
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class LocalCatalogResource(CatalogResource):
    """The catalog as a SQLite file at ``path`` storing Glue API JSON structures.

    Each call opens its own connection and runs in one transaction (``BEGIN IMMEDIATE`` for
    writes, with a busy timeout), so several processes may crawl different days at once.
    Names are stored as given; Glue lowercases database and table names, so use lowercase.
    """

    path: str = Field(description="SQLite file holding the catalog; created on first use.")

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        # isolation_level=None: transactions are explicit, so BEGIN IMMEDIATE takes the write
        # lock before the read in a read-modify-write, and two writers cannot interleave.
        conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def ensure_database(self, name: str) -> None:
        body = {"Name": name, "CreateTime": _now()}
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO databases (name, body) VALUES (?, ?)", (name, json.dumps(body))
            )

    def get_database(self, name: str) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT body FROM databases WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    @staticmethod
    def _read_table(conn: sqlite3.Connection, database: str, name: str) -> dict | None:
        row = conn.execute(
            "SELECT v.body FROM tables t JOIN table_versions v ON v.database = t.database "
            "AND v.name = t.name AND v.version = t.current_version "
            "WHERE t.database = ? AND t.name = ?",
            (database, name),
        ).fetchone()
        return json.loads(row[0]) if row else None

    @staticmethod
    def _require_database(conn: sqlite3.Connection, database: str) -> None:
        if not conn.execute("SELECT 1 FROM databases WHERE name = ?", (database,)).fetchone():
            raise LookupError(f"database {database!r} does not exist")

    def get_table(self, database: str, name: str) -> dict | None:
        with self._connect() as conn:
            return self._read_table(conn, database, name)

    def create_table(self, database: str, table_input: dict) -> str:
        name = table_input["Name"]
        now = _now()
        with self._connect(write=True) as conn:
            self._require_database(conn, database)
            if self._read_table(conn, database, name) is not None:
                raise CatalogConflictError(f"table {database}.{name} already exists")
            body = {**table_input_from(table_input), "DatabaseName": database,
                    "CreateTime": now, "UpdateTime": now, "VersionId": "1"}
            conn.execute("INSERT INTO tables VALUES (?, ?, 1)", (database, name))
            conn.execute(
                "INSERT INTO table_versions VALUES (?, ?, 1, ?)", (database, name, json.dumps(body))
            )
        return "1"

    def update_table(self, database: str, table_input: dict, expected_version: str | None = None) -> str:
        name = table_input["Name"]
        with self._connect(write=True) as conn:
            current = self._read_table(conn, database, name)
            if current is None:
                raise LookupError(f"table {database}.{name} does not exist")
            if expected_version is not None and current["VersionId"] != str(expected_version):
                raise CatalogConflictError(
                    f"table {database}.{name} is at version {current['VersionId']}, "
                    f"not {expected_version}"
                )
            version = int(current["VersionId"]) + 1
            body = {**table_input_from(table_input), "DatabaseName": database,
                    "CreateTime": current["CreateTime"], "UpdateTime": _now(),
                    "VersionId": str(version)}
            conn.execute(
                "INSERT INTO table_versions VALUES (?, ?, ?, ?)",
                (database, name, version, json.dumps(body)),
            )
            conn.execute(
                "UPDATE tables SET current_version = ? WHERE database = ? AND name = ?",
                (version, database, name),
            )
        return str(version)

    def get_table_versions(self, database: str, name: str) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT version, body FROM table_versions WHERE database = ? AND name = ? "
                "ORDER BY version",
                (database, name),
            ).fetchall()
        return [{"Table": json.loads(body), "VersionId": str(version)} for version, body in rows]

    def upsert_partition(
        self, database: str, table: str, values: list[str], storage_descriptor: dict,
        parameters: dict | None = None,
    ) -> None:
        key = json.dumps(list(values))
        now = _now()
        with self._connect(write=True) as conn:
            if self._read_table(conn, database, table) is None:
                raise LookupError(f"table {database}.{table} does not exist")
            row = conn.execute(
                "SELECT body FROM partitions WHERE database = ? AND table_name = ? "
                "AND partition_values = ?",
                (database, table, key),
            ).fetchone()
            created = json.loads(row[0])["CreationTime"] if row else now
            body = {"Values": list(values), "DatabaseName": database, "TableName": table,
                    "CreationTime": created, "LastAccessTime": now,
                    "StorageDescriptor": storage_descriptor, "Parameters": dict(parameters or {})}
            conn.execute(
                "INSERT OR REPLACE INTO partitions VALUES (?, ?, ?, ?)",
                (database, table, key, json.dumps(body)),
            )

    def get_partition(self, database: str, table: str, values: list[str]) -> dict | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT body FROM partitions WHERE database = ? AND table_name = ? "
                "AND partition_values = ?",
                (database, table, json.dumps(list(values))),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def get_partitions(self, database: str, table: str) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT body FROM partitions WHERE database = ? AND table_name = ?",
                (database, table),
            ).fetchall()
        return sorted((json.loads(r[0]) for r in rows), key=lambda p: p["Values"])


# ---------------------------------------------------------------- AWS Glue


class GlueCatalogResource(CatalogResource):
    """The AWS Glue Data Catalog through a boto3 ``glue`` client.

    Also starts and waits for a real Glue crawler (:meth:`start_crawler_and_wait`) for
    deployments that let AWS crawl instead of the project's crawler.
    """

    region_name: str | None = Field(default=None, description="AWS region; boto3's default when unset.")
    endpoint_url: str | None = Field(default=None, description="Custom endpoint (tests, VPC endpoints).")
    crawler_name: str | None = Field(
        default=None,
        description="A Glue crawler (SALES_AWS_GLUE_CRAWLER) to run instead of the project's crawler; "
        "see sales_assets/catalog/crawler_config.py for its configuration.",
    )

    _client: Any = PrivateAttr(default=None)

    def get_client(self) -> Any:
        """The boto3 Glue client, created once per resource instance."""
        if self._client is None:
            import boto3

            self._client = boto3.client("glue", region_name=self.region_name, endpoint_url=self.endpoint_url)
        return self._client

    @staticmethod
    def _code(error: Exception) -> str:
        return getattr(error, "response", {}).get("Error", {}).get("Code", "")

    def ensure_database(self, name: str) -> None:
        client = self.get_client()
        try:
            client.get_database(Name=name)
            return
        except client.exceptions.EntityNotFoundException:
            pass
        try:
            client.create_database(DatabaseInput={"Name": name})
        except client.exceptions.AlreadyExistsException:
            pass  # created concurrently by another run: what we wanted

    def get_table(self, database: str, name: str) -> dict | None:
        client = self.get_client()
        try:
            return client.get_table(DatabaseName=database, Name=name)["Table"]
        except client.exceptions.EntityNotFoundException:
            return None

    def _current_version(self, database: str, name: str) -> str:
        table = self.get_table(database, name)
        if table is None:
            raise LookupError(f"table {database}.{name} does not exist")
        return str(table.get("VersionId", ""))

    def create_table(self, database: str, table_input: dict) -> str:
        client = self.get_client()
        try:
            client.create_table(DatabaseName=database, TableInput=table_input_from(table_input))
        except client.exceptions.AlreadyExistsException as error:
            raise CatalogConflictError(f"table {database}.{table_input['Name']} already exists") from error
        return self._current_version(database, table_input["Name"])

    def update_table(self, database: str, table_input: dict, expected_version: str | None = None) -> str:
        client = self.get_client()
        kwargs: dict[str, Any] = {"DatabaseName": database, "TableInput": table_input_from(table_input)}
        if expected_version is not None:
            # Glue's optimistic lock: the update fails if the table moved past this version.
            kwargs["VersionId"] = str(expected_version)
        try:
            client.update_table(**kwargs)
        except client.exceptions.ConcurrentModificationException as error:
            raise CatalogConflictError(str(error)) from error
        return self._current_version(database, table_input["Name"])

    def get_table_versions(self, database: str, name: str) -> list[dict]:
        paginator = self.get_client().get_paginator("get_table_versions")
        versions = [
            v for page in paginator.paginate(DatabaseName=database, TableName=name)
            for v in page["TableVersions"]
        ]
        return sorted(versions, key=lambda v: int(v["VersionId"]))

    def upsert_partition(
        self, database: str, table: str, values: list[str], storage_descriptor: dict,
        parameters: dict | None = None,
    ) -> None:
        client = self.get_client()
        partition_input = {"Values": list(values), "StorageDescriptor": storage_descriptor,
                           "Parameters": dict(parameters or {})}
        try:
            client.create_partition(DatabaseName=database, TableName=table, PartitionInput=partition_input)
        except client.exceptions.AlreadyExistsException:
            client.update_partition(
                DatabaseName=database, TableName=table, PartitionValueList=list(values),
                PartitionInput=partition_input,
            )

    def configured_crawler(self) -> str | None:
        return self.crawler_name or None

    def upsert_partitions(self, database: str, table: str, partition_inputs: list[dict]) -> None:
        """``batch_create_partition`` in chunks of 100; the ones Glue reports in ``Errors`` as
        ``AlreadyExistsException`` are replaced with ``batch_update_partition``. Any other error
        entry raises PartitionWriteError naming the partitions and Glue's messages."""
        client = self.get_client()
        inputs = [{"Values": list(p["Values"]), "StorageDescriptor": p["StorageDescriptor"],
                   "Parameters": dict(p.get("Parameters") or {})} for p in partition_inputs]
        by_values = {tuple(p["Values"]): p for p in inputs}
        existing: list[dict] = []
        failures: list[str] = []
        for start in range(0, len(inputs), GLUE_PARTITION_BATCH_SIZE):
            chunk = inputs[start:start + GLUE_PARTITION_BATCH_SIZE]
            response = client.batch_create_partition(
                DatabaseName=database, TableName=table, PartitionInputList=chunk
            )
            for error in response.get("Errors") or []:
                detail = error.get("ErrorDetail") or {}
                values = tuple(error.get("PartitionValues") or ())
                if detail.get("ErrorCode") == "AlreadyExistsException" and values in by_values:
                    existing.append(by_values[values])
                else:
                    failures.append(f"{list(values)}: {detail.get('ErrorCode')} {detail.get('ErrorMessage', '')}")
        for start in range(0, len(existing), GLUE_PARTITION_BATCH_SIZE):
            chunk = existing[start:start + GLUE_PARTITION_BATCH_SIZE]
            response = client.batch_update_partition(
                DatabaseName=database, TableName=table,
                Entries=[{"PartitionValueList": p["Values"], "PartitionInput": p} for p in chunk],
            )
            for error in response.get("Errors") or []:
                detail = error.get("ErrorDetail") or {}
                failures.append(
                    f"{error.get('PartitionValueList')}: {detail.get('ErrorCode')} {detail.get('ErrorMessage', '')}"
                )
        if failures:
            raise PartitionWriteError(
                f"Glue refused {len(failures)} partition(s) of {database}.{table}: " + "; ".join(failures)
            )

    def get_partition(self, database: str, table: str, values: list[str]) -> dict | None:
        client = self.get_client()
        try:
            return client.get_partition(
                DatabaseName=database, TableName=table, PartitionValues=list(values)
            )["Partition"]
        except client.exceptions.EntityNotFoundException:
            return None

    def get_partitions(self, database: str, table: str) -> list[dict]:
        paginator = self.get_client().get_paginator("get_partitions")
        partitions = [
            p for page in paginator.paginate(DatabaseName=database, TableName=table)
            for p in page["Partitions"]
        ]
        return sorted(partitions, key=lambda p: p["Values"])

    def start_crawler_and_wait(
        self,
        name: str,
        poll_seconds: float = 15.0,
        timeout_seconds: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict:
        """Run the Glue crawler ``name`` to completion and return its ``LastCrawl`` info.

        If the crawler is already running, that run may have listed S3 before our data was
        committed, so we wait for it and then start our own run; if that start again finds it
        running, the other run began after ours was committed and is waited for instead.
        Raises CrawlerRunError when the run ends FAILED or CANCELLED (with Glue's message) and
        CrawlerTimeoutError after ``timeout_seconds`` of polling.
        """
        client = self.get_client()
        waited = 0.0

        def wait_until_ready(previous_start: Any) -> dict:
            """Poll until READY with a LastCrawl newer than ``previous_start`` (or seen running)."""
            nonlocal waited
            seen_busy = False
            while True:
                crawler = client.get_crawler(Name=name)["Crawler"]
                state = crawler.get("State")
                last = crawler.get("LastCrawl") or {}
                if state != "READY":
                    seen_busy = True
                # Right after StartCrawler the state can still read READY with the previous
                # run's LastCrawl; only a run we saw busy, or a newer LastCrawl, is ours.
                elif seen_busy or (last and last.get("StartTime") != previous_start):
                    return last
                if waited >= timeout_seconds:
                    raise CrawlerTimeoutError(
                        f"Glue crawler {name!r} still {state} after {timeout_seconds:.0f}s"
                    )
                sleep(poll_seconds)
                waited += poll_seconds

        def start() -> bool:
            try:
                client.start_crawler(Name=name)
                return True
            except client.exceptions.CrawlerRunningException:
                return False

        before = (client.get_crawler(Name=name)["Crawler"].get("LastCrawl") or {}).get("StartTime")
        if not start():
            before = wait_until_ready(before).get("StartTime")
            start()  # False: a run started after our commit; waiting for it is enough
        last = wait_until_ready(before)
        status = last.get("Status")
        if status in CRAWLER_FAILED_STATUSES:
            raise CrawlerRunError(
                f"Glue crawler {name!r} run {status}: {last.get('ErrorMessage') or 'no error message'}"
            )
        return last
