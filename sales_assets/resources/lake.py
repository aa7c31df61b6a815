"""The landing zone: one interface over a local folder or an S3 bucket.

Keys are ``/``-separated and relative to the lake root, identical in both
implementations (``raw/sales_orders/order_date=2026-11-20/_manifest.json``), so
every reader and writer is written once against :class:`LakeResource`.
"""

from __future__ import annotations

import io
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr


class LakeResource(dg.ConfigurableResource, ABC):
    """Object storage for the data lake. Each ``write_bytes`` is atomic for its key."""

    @abstractmethod
    def root_uri(self) -> str:
        """The lake root as Spark, Glue and Redshift address it (absolute path or ``s3://bucket/prefix``)."""

    def uri(self, key: str) -> str:
        return f"{self.root_uri()}/{key}"

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All keys under ``prefix``, sorted."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix``; returns how many objects went."""

    def read_parquet(self, prefix: str) -> pa.Table | None:
        """All parquet files under ``prefix`` as one table, or None when there are none."""
        tables = [
            pq.read_table(io.BytesIO(self.read_bytes(key)))
            for key in self.list_keys(prefix)
            if key.endswith(".parquet")
        ]
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="default")


class LocalLakeResource(LakeResource):
    """A folder laid out exactly like the S3 bucket."""

    root: str

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"lake keys are relative and stay inside the lake, got {key!r}")
        return Path(self.root) / key

    def root_uri(self) -> str:
        return str(Path(self.root).resolve())

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target then rename: a reader sees the old file or the
        # whole new one, never a torn write.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list_keys(self, prefix: str) -> list[str]:
        base = Path(self.root)
        start = self._path(prefix)
        # A prefix may end inside a name ("raw/x/run_id=") or at a folder.
        folder = start if prefix.endswith("/") or start.is_dir() else start.parent
        if not folder.exists():
            return []
        keys = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        # Remove the emptied folders too, deepest first.
        folders = sorted({self._path(k).parent for k in keys}, key=lambda p: len(p.parts), reverse=True)
        for folder in folders:
            while folder != Path(self.root) and folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent
        return len(keys)


class S3LakeResource(LakeResource):
    """The lake in S3, through dagster-aws's ``S3Resource`` (so credentials and endpoints are configured once)."""

    s3: S3Resource
    bucket: str
    prefix: str = ""
    _client: object = PrivateAttr(default=None)

    @classmethod
    def from_uri(cls, uri: str, s3: S3Resource) -> S3LakeResource:
        if not uri.startswith("s3://"):
            raise ValueError(f"expected an s3:// URI, got {uri!r}")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        return cls(s3=s3, bucket=bucket, prefix=prefix.strip("/"))

    def _s3(self):
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def read_bytes(self, key: str) -> bytes:
        return self._s3().get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        # A single PUT is atomic in S3: readers see the old object or the new one.
        self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def exists(self, key: str) -> bool:
        response = self._s3().list_objects_v2(Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1)
        return any(obj["Key"] == self._key(key) for obj in response.get("Contents", []))

    def list_keys(self, prefix: str) -> list[str]:
        full_prefix = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            self._s3().delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True}
            )
        return len(keys)
