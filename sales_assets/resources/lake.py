"""The landing zone: one interface over a local folder or an S3 bucket.

Keys are ``/``-separated and relative to the lake root, identical in both
implementations (``raw/sales_orders/order_date=2026-11-20/_manifest.json``), so
every reader and writer is written once against :class:`LakeResource`.

The key operations themselves live in :mod:`sales_assets.ingest.store` (no Dagster
there), which the Lambda handler uses directly; these resources add Dagster
configuration and parquet reading on top, so both paths share one implementation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from sales_assets.ingest.store import LocalObjectStore, S3ObjectStore, Versioned, split_s3_uri
from sales_assets.transform import curated_manifest


def _is_missing(error: Exception) -> bool:
    """A read of an absent key: FileNotFoundError locally, NoSuchKey/404 from S3."""
    if isinstance(error, FileNotFoundError):
        return True
    code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound")


class LakeResource(dg.ConfigurableResource, ABC):
    """Object storage for the data lake. Each ``write_bytes`` is atomic for its key.

    ``create_exclusive``, ``read_versioned``, ``replace_if_version`` and
    ``delete_if_version`` are the conditional writes the one-writer-per-day lease is built on (see
    ``sales_assets.ingest.landing.day_lease``). An object written is durable when
    ``write_bytes`` returns, except inside ``deferred_fsync``: see there.
    """

    # The one store every call goes through inside a ``deferred_fsync`` block (the block's
    # pending fsyncs live on it); None outside, where each call builds a fresh, cheap store.
    _held_store: object = PrivateAttr(default=None)

    @abstractmethod
    def store(self) -> LocalObjectStore | S3ObjectStore:
        """The Dagster-free object store behind this resource."""

    def _store(self) -> LocalObjectStore | S3ObjectStore:
        return self._held_store if self._held_store is not None else self.store()

    @contextlib.contextmanager
    def deferred_fsync(self, prefix: str) -> Iterator[None]:
        """``LocalObjectStore.deferred_fsync`` for this lake: within the block, a write under
        ``prefix`` returns once the object is in place and is fsynced in the background; when
        the block ends normally every such object (and its folder) is durable, and the first
        fsync error is raised. All calls on this resource inside the block use one store.
        On S3 the block changes nothing: a put is durable when it returns. Blocks do not nest.
        """
        if self._held_store is not None:
            raise RuntimeError("deferred_fsync blocks do not nest")
        store = self.store()
        defer = getattr(store, "deferred_fsync", None)
        if defer is None:  # S3: nothing to defer
            yield
            return
        self._held_store = store
        try:
            with defer(prefix):
                yield
        finally:
            self._held_store = None

    def root_uri(self) -> str:
        """The lake root as Spark, Glue and Redshift address it (absolute path or ``s3://bucket/prefix``)."""
        return self._store().root_uri()

    def uri(self, key: str) -> str:
        return f"{self.root_uri()}/{key}"

    def read_bytes(self, key: str) -> bytes:
        return self._store().read_bytes(key)

    def read_prefix(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes of ``key`` (all of it when shorter); S3: one ranged GET."""
        return self._store().read_prefix(key, length)

    def write_bytes(self, key: str, data: bytes) -> None:
        self._store().write_bytes(key, data)

    def exists(self, key: str) -> bool:
        return self._store().exists(key)

    def list_keys(self, prefix: str) -> list[str]:
        """All keys under ``prefix``, sorted."""
        return self._store().list_keys(prefix)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix``; returns how many objects went."""
        return self._store().delete_prefix(prefix)

    def delete_key(self, key: str) -> None:
        self._store().delete_key(key)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if absent; True when this call created it."""
        return self._store().create_exclusive(key, data)

    def read_versioned(self, key: str) -> Versioned | None:
        return self._store().read_versioned(key)

    def replace_if_version(self, key: str, data: bytes, version: str) -> bool:
        """Overwrite ``key`` only if it is still ``version``; True when it did."""
        return self._store().replace_if_version(key, data, version)

    def delete_if_version(self, key: str, version: str) -> bool:
        """Delete ``key`` only if it is still ``version``; True when it did."""
        return self._store().delete_if_version(key, version)

    def curated_files(self, table: str, day: dt.date) -> list[str]:
        """Keys of exactly the parquet files the committed record of ``curated/<table>`` for
        ``day`` lists (``sales_assets.transform.curated_manifest``), in record order.

        Never a folder listing: files a crashed or running transform left beside them are not
        returned. ``CuratedRecordMissingError`` when the day has no record (never curated: run
        the transform), ``CuratedFileMissingError`` when a listed file is gone.
        """
        key = curated_manifest.record_key(table, day)
        prefix = curated_manifest.day_prefix(table, day)
        try:
            body = self.read_bytes(key)
        except Exception as error:
            if not _is_missing(error):
                raise
            raise curated_manifest.missing_record(table, day, self.uri(key)) from None
        entries = curated_manifest.parse_record(body, self.uri(key))
        names = curated_manifest.listed_names(entries, table, day, self.root_uri(), self.uri(key))
        present = set(self.list_keys(prefix))
        for name in names:
            if prefix + name not in present:
                raise curated_manifest.missing_file(table, day, name, self.uri(key))
        return [prefix + name for name in names]

    def read_curated(self, table: str, day: dt.date) -> pa.Table:
        """The committed rows of ``curated/<table>`` for ``day`` (see ``curated_files``); an
        empty day is a table of zero rows with the day's schema."""
        tables = [pq.read_table(io.BytesIO(self.read_bytes(key))) for key in self.curated_files(table, day)]
        return pa.concat_tables(tables, promote_options="default")

    def curated_row_count(self, table: str, day: dt.date) -> int:
        """Rows of the committed files of ``curated/<table>`` for ``day``, from their footers only."""
        return sum(
            pq.ParquetFile(io.BytesIO(self.read_bytes(key))).metadata.num_rows
            for key in self.curated_files(table, day)
        )


class LocalLakeResource(LakeResource):
    """A folder laid out exactly like the S3 bucket."""

    root: str

    def store(self) -> LocalObjectStore:
        return LocalObjectStore(self.root)


class S3LakeResource(LakeResource):
    """The lake in S3, through dagster-aws's ``S3Resource`` (so credentials and endpoints are configured once)."""

    s3: S3Resource
    bucket: str
    prefix: str = ""
    _client: object = PrivateAttr(default=None)

    @classmethod
    def from_uri(cls, uri: str, s3: S3Resource) -> S3LakeResource:
        bucket, prefix = split_s3_uri(uri)
        return cls(s3=s3, bucket=bucket, prefix=prefix)

    def _s3(self):
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def store(self) -> S3ObjectStore:
        return S3ObjectStore(self._s3(), self.bucket, self.prefix)

    def root_uri(self) -> str:
        # Needs no client: the URI is configuration only.
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
