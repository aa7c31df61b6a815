"""Object storage for the landing zone without Dagster: a local folder or an S3 bucket.

The Dagster lake resources (``sales_assets.resources.lake``) delegate every key
operation here, and the Lambda handler uses these classes directly, so the
deployment zip needs only the standard library, ``requests`` and ``boto3``.

What a caller may rely on (both implementations, keys ``/``-separated and relative
to the root):
- ``write_bytes`` is atomic for its key: readers see the old object or the new one.
- ``create_exclusive`` creates a key only if it does not exist (S3: a conditional
  put with ``IfNoneMatch="*"``; folder: a hard link, which fails on an existing name),
  and returns whether it did; the object appears with its whole content.
- ``read_versioned`` / ``replace_if_version`` are a compare-and-swap: the replace
  happens only if the object is still the version read (S3: ``IfMatch`` on the ETag;
  folder: compare and rename under an flock of the key's folder), and the key is never
  absent while it is replaced. ``delete_if_version`` deletes the same way: only the version
  read (S3: ``DeleteObject`` with ``IfMatch``; folder: compare and unlink under that flock).
- An object written is durable when the call returns, except under
  ``LocalObjectStore.deferred_fsync(prefix)``: see there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Background fsyncs a deferred block lets run behind its writes: enough to keep the disk
# busy, few enough that open descriptors and unwritten page cache stay small.
MAX_PENDING_FSYNCS = 8


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and an opaque version for ``replace_if_version``."""

    data: bytes
    version: str


class LocalObjectStore:
    """A folder laid out exactly like the S3 bucket."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._deferred: tuple[str, ThreadPoolExecutor, deque[Future]] | None = None

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"lake keys are relative and stay inside the lake, got {key!r}")
        return self.root / key

    def root_uri(self) -> str:
        return str(self.root.resolve())

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def read_prefix(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes of ``key`` (all of it when shorter), reading no more."""
        with self._path(key).open("rb") as handle:
            return handle.read(length)

    def _write_temp(self, target: Path, data: bytes, sync: bool = True) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if sync:
                    os.fsync(handle.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        deferred = self._deferred
        defer = deferred is not None and key.startswith(deferred[0])
        # Write beside the target then rename: a reader sees the old file or the
        # whole new one, never a torn write.
        tmp = self._write_temp(target, data, sync=not defer)
        try:
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if defer:
            _prefix, syncer, pending = deferred
            pending.append(syncer.submit(_fsync_path, target))
            while len(pending) > MAX_PENDING_FSYNCS:
                pending.popleft().result()  # back-pressure (and the first fsync error, early)

    @contextlib.contextmanager
    def deferred_fsync(self, prefix: str) -> Iterator[None]:
        """Within the block, ``write_bytes`` of a key under ``prefix`` returns once the object
        is in place (atomic, visible) and its fsync runs in one background thread, so the disk
        writes while the caller prepares the next object; other keys and calls are unchanged.
        When the block ends normally, every such object and its folder are durable (the first
        fsync error is raised); when it raises, the fsyncs in flight are finished first."""
        if self._deferred is not None:
            raise RuntimeError("deferred_fsync blocks do not nest")
        syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-fsync")
        pending: deque[Future] = deque()
        folders: set[Path] = set()
        self._deferred = (prefix, syncer, pending)
        try:
            yield
            folders = {self._path(prefix.rstrip("/")) if prefix.endswith("/") else self._path(prefix).parent}
            while pending:
                pending.popleft().result()
        finally:
            self._deferred = None
            syncer.shutdown(wait=True)
        for folder in folders:  # the renames into the folder, durable too
            if folder.is_dir():
                _fsync_path(folder)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list_keys(self, prefix: str) -> list[str]:
        start = self._path(prefix)
        # A prefix may end inside a name ("raw/x/run_id=") or at a folder.
        folder = start if prefix.endswith("/") or start.is_dir() else start.parent
        if not folder.exists():
            return []
        keys = []
        for path in folder.rglob("*"):
            # Temp files of in-flight writes and compare-and-swap leftovers are not objects.
            if path.is_file() and not path.name.endswith((".tmp", ".cas")):
                key = path.relative_to(self.root).as_posix()
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
            while folder != self.root and folder.exists() and not any(folder.iterdir()):
                try:
                    folder.rmdir()
                except OSError:  # a concurrent writer just put something there
                    break
                folder = folder.parent
        return len(keys)

    def delete_key(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _swap_lock(self, target: Path) -> Iterator[None]:
        """Serialize conditional writes in ``target``'s folder across threads and processes.

        An flock on the folder itself: no lock file appears among the lake's objects, and the
        kernel drops the lock with its process, so a SIGKILLed writer leaves nothing held.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def create_exclusive(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        tmp = self._write_temp(target, data)
        try:
            with self._swap_lock(target):
                # link() fails when the name exists, atomically: the local twin of IfNoneMatch="*".
                os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)

    def read_versioned(self, key: str) -> Versioned | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return Versioned(data, hashlib.sha256(data).hexdigest())

    def replace_if_version(self, key: str, data: bytes, version: str) -> bool:
        target = self._path(key)
        tmp = self._write_temp(target, data)
        try:
            # Compare and replace under the folder's lock, then one rename: readers and
            # ``create_exclusive`` never find the key absent in the middle of a renewal (so a
            # second writer cannot slip in and make a live holder's lease look lost).
            with self._swap_lock(target):
                if not _is_version(target, version):
                    return False
                os.replace(tmp, target)
                return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def delete_if_version(self, key: str, version: str) -> bool:
        target = self._path(key)
        if not target.parent.is_dir():
            return False
        # Under the lock ``replace_if_version`` and ``create_exclusive`` take: no other run's
        # takeover can land between the compare and the unlink.
        with self._swap_lock(target):
            if not _is_version(target, version):
                return False
            target.unlink()
            return True


class S3ObjectStore:
    """An S3 bucket (and optional key prefix) through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_uri(cls, uri: str, client: Any) -> "S3ObjectStore":
        bucket, prefix = split_s3_uri(uri)
        return cls(client, bucket, prefix)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def read_prefix(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes of ``key`` (all of it when shorter): one ranged GET."""
        if length <= 0:
            return b""
        response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes=0-{length - 1}")
        return response["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        # A single PUT is atomic in S3: readers see the old object or the new one.
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def exists(self, key: str) -> bool:
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1)
        return any(obj["Key"] == self._key(key) for obj in response.get("Contents", []))

    def list_keys(self, prefix: str) -> list[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True}
            )
        return len(keys)

    def delete_key(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
            return True
        except self.client.exceptions.ClientError as exc:
            if _is_precondition_failure(exc):
                return False
            raise

    def read_versioned(self, key: str) -> Versioned | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            return None
        except self.client.exceptions.ClientError as exc:
            # S3 answers a GET of a missing key with 403, not 404, unless the caller may list
            # the bucket for that very name; the roles' list grants are limited to their
            # prefixes by s3:prefix, which a GET does not carry. A listing of the key (within
            # the grant) tells a lease released a moment ago from a real denial.
            if _error_code(exc) in ("AccessDenied", "403") and not self.exists(key):
                return None
            raise
        return Versioned(response["Body"].read(), response["ETag"])

    def replace_if_version(self, key: str, data: bytes, version: str) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfMatch=version)
            return True
        except self.client.exceptions.ClientError as exc:
            if _is_precondition_failure(exc) or _error_code(exc) in ("NoSuchKey", "404"):
                return False
            raise

    def delete_if_version(self, key: str, version: str) -> bool:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=version)
            return True
        except self.client.exceptions.ClientError as exc:
            if _is_precondition_failure(exc) or _error_code(exc) in ("NoSuchKey", "404"):
                return False
            raise


def _is_version(path: Path, version: str) -> bool:
    """Whether the file at ``path`` exists and is ``version`` (``read_versioned``'s sha256)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == version
    except FileNotFoundError:
        return False


def _fsync_path(path: Path) -> None:
    """fsync a file or folder by name (fsync flushes the inode, whichever descriptor asks)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _is_precondition_failure(exc: Exception) -> bool:
    # 412 PreconditionFailed: the condition is false; 409 ConditionalRequestConflict: a
    # concurrent conditional write to the same key won the race.
    return _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"expected an s3:// URI, got {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"expected s3://bucket[/prefix], got {uri!r}")
    return bucket, prefix.strip("/")
