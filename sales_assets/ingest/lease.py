"""A lease on one lake key: one writer at a time, taken over when its writer is gone.

The lease is a small JSON object created with a conditional put (S3 ``IfNoneMatch="*"``,
a hard link locally), renewed while the writer works, checked before its commit and
released after it. A second writer fails with ``LeaseHeldError``; the lease of a crashed
writer expires after its TTL and is then taken over with a compare-and-swap. In a local
lake the lease also names its writer process (host, boot id, pid, process start time): a
writer on this host that is provably dead (SIGKILLed, its pid gone, a zombie or reused)
is taken over at once, so the re-run after a kill need not wait for the TTL.

No Dagster here: the assets and the Lambda handler share this module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

# Long enough for a slow page or two; the lease is renewed as pages land (when half of it
# has passed), so a long day keeps it. A crashed writer blocks the day for at most this long
# on S3; in a local lake a writer proven dead (see ``writer_is_dead``) is taken over at once.
DEFAULT_LEASE_TTL_SECONDS = 600.0


class LeaseHeldError(RuntimeError):
    """Another run holds the day's lease: this run must not write the day now."""


class LeaseLostError(RuntimeError):
    """This run's lease expired and another run took the day over: nothing was committed."""


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> tuple[str, str] | None:
    """(start time in clock ticks since boot, state) of ``pid`` from /proc; None when it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    return fields[19], fields[0]


def process_identity() -> dict | None:
    """This process as a lease names it; None where /proc is not there to prove anything."""
    boot_id = _read("/proc/sys/kernel/random/boot_id")
    start = _process_start(os.getpid())
    if boot_id is None or start is None:
        return None
    return {"host": socket.gethostname(), "boot_id": boot_id, "pid": os.getpid(), "started": start[0]}


def writer_is_dead(holder: dict) -> bool:
    """True only when the lease's writer ran on this host since this boot and that process is
    gone (no such pid, a zombie, or the pid now belongs to a process started later)."""
    writer, here = holder.get("writer"), process_identity()
    if not isinstance(writer, dict) or here is None:
        return False
    if (writer.get("host"), writer.get("boot_id")) != (here["host"], here["boot_id"]):
        return False
    if not isinstance(writer.get("pid"), int):
        return False
    current = _process_start(writer["pid"])
    return current is None or current[1] == "Z" or current[0] != writer.get("started")


def _is_local(lake: Any) -> bool:
    root = getattr(lake, "root_uri", None)
    return callable(root) and not str(root()).startswith("s3://")


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


class Lease:
    """One writer per lease key: acquire, renew while writing, release after the commit.

    Use as a context manager. ``subject`` names what is leased in messages (such as
    ``order_date=2026-01-02``); ``owner`` is a human description (e.g. a Dagster run id)
    shown to a second writer; ``clock`` gives epoch seconds (injectable for tests).
    """

    def __init__(self, lake: Any, key: str, subject: str, run_id: str, owner: str = "",
                 ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS, clock: Callable[[], float] = time.time,
                 activity: str = "written") -> None:
        self.lake = lake
        self.subject = subject
        self.activity = activity
        self.key = key
        self.run_id = run_id
        self.owner = owner or f"run {run_id}"
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._version: str | None = None
        self._renewed_at = 0.0
        self.took_over: dict | None = None
        # Only a local lake's writers share this host's process table (S3: the TTL alone).
        self._writer = process_identity() if _is_local(lake) else None

    def _body(self, now: float) -> bytes:
        body = {"run_id": self.run_id, "owner": self.owner,
                "acquired_at": _iso(now), "expires_at": now + self.ttl_seconds}
        if self._writer is not None:
            body["writer"] = self._writer
        return json.dumps(body).encode()

    def acquire(self) -> "Lease":
        now = self.clock()
        body = self._body(now)
        for _ in range(3):
            if self.lake.create_exclusive(self.key, body):
                break
            current = self.lake.read_versioned(self.key)
            if current is None:
                continue  # released between our two calls: try again
            try:
                holder = json.loads(current.data)
                expires_at = float(holder["expires_at"])
            except (ValueError, KeyError, TypeError):
                holder, expires_at = {}, 0.0  # unreadable lease: treat as expired
            if expires_at > now and not (self._writer is not None and writer_is_dead(holder)):
                raise LeaseHeldError(
                    f"{self.subject} is being {self.activity} by another run "
                    f"({holder.get('owner', '?')}, run_id {holder.get('run_id', '?')}); its lease {self.key} "
                    f"expires at {_iso(expires_at)}. One writer at a time keeps runs from interleaving: "
                    f"retry when that run has finished, or after the lease expires if it crashed.")
            if self.lake.replace_if_version(self.key, body, current.version):
                self.took_over = holder
                break
        else:
            raise LeaseHeldError(f"{self.subject}: could not take the lease {self.key}; "
                                 f"another run keeps taking it. Retry later.")
        self._version = self._current_version(body)
        self._renewed_at = now
        return self

    def _current_version(self, body: bytes) -> str | None:
        current = self.lake.read_versioned(self.key)
        return current.version if current is not None and current.data == body else None

    def renew_if_due(self) -> None:
        """Extend the lease when half its TTL has passed; LeaseLostError if it is gone."""
        now = self.clock()
        if now - self._renewed_at < self.ttl_seconds / 2:
            return
        body = self._body(now)
        if self._version is None or not self.lake.replace_if_version(self.key, body, self._version):
            raise LeaseLostError(self._lost_message())
        self._version = self._current_version(body)
        self._renewed_at = now

    def ensure_held(self) -> None:
        """LeaseLostError unless this run still holds an unexpired lease (call before committing)."""
        current = self.lake.read_versioned(self.key)
        if current is None or current.version != self._version:
            raise LeaseLostError(self._lost_message())
        if float(json.loads(current.data)["expires_at"]) <= self.clock():
            raise LeaseLostError(self._lost_message())

    def _lost_message(self) -> str:
        return (f"{self.subject}: run {self.run_id} lost its lease {self.key} (it expired and "
                f"another run took the day over); nothing of this run was committed.")

    def release(self) -> None:
        """Delete the lease if it is still this run's (never another run's)."""
        current = self.lake.read_versioned(self.key)
        if current is not None and self._version is not None and current.version == self._version:
            self.lake.delete_key(self.key)
        self._version = None

    def __enter__(self) -> "Lease":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
