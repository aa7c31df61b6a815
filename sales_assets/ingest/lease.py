"""A lease on one lake key: one writer at a time, taken over when its writer is gone.

The lease is a small JSON object created with a conditional put (S3 ``IfNoneMatch="*"``,
a hard link locally), renewed while the writer works, checked before its commit and
released after it. A second writer fails with ``LeaseHeldError`` (which says when the
holder's lease expires, so a caller can retry just after it); the lease of a crashed
writer expires after its TTL and is then taken over with a compare-and-swap.

The TTL is short (``DEFAULT_LEASE_TTL_SECONDS``) so a crashed writer blocks its key only
briefly, also on S3. A live writer keeps it by a heartbeat (``Heartbeat``: a daemon thread
renewing every TTL/3, whatever the writer is doing, such as a page on its retries or a Glue
job); the context-manager form (``with Lease(...)``, ``hold(leases)``) runs one. A renewal
the compare-and-swap refuses (another run took the key over) marks the lease lost at once; a
renewal that errors is tried again at the next beat; either way ``ensure_held`` refuses the
commit once the lease is lost or its last stored expiry has passed. In a local
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
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

# A crashed writer blocks its key for at most this long on S3 (in a local lake a writer proven
# dead, see ``writer_is_dead``, is taken over at once). A live writer's heartbeat renews it
# every third of it, so three beats in a row must fail (S3 unreachable for a minute) before a
# live writer loses it.
DEFAULT_LEASE_TTL_SECONDS = 90.0


class LeaseHeldError(RuntimeError):
    """Another run holds the day's lease: this run must not write the day now.

    ``expires_at`` (epoch seconds, the holder's last renewal plus its TTL; None when unknown)
    and ``seen_at`` (this run's clock when it looked) tell a caller how long to wait before a
    retry could take over a crashed holder's lease.
    """

    def __init__(self, message: str, expires_at: float | None = None, seen_at: float | None = None) -> None:
        super().__init__(message)
        self.expires_at = expires_at
        self.seen_at = seen_at

    def seconds_left(self) -> float | None:
        """Seconds until the holder's lease expires if it is not renewed (0 at least), or None."""
        if self.expires_at is None or self.seen_at is None:
            return None
        return max(0.0, self.expires_at - self.seen_at)


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
        self._lost: str | None = None
        # The heartbeat thread and the writer both renew: one compare-and-swap at a time.
        self._lock = threading.Lock()
        self._heartbeat: Heartbeat | None = None
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
                    f"retry when that run has finished, or after the lease expires if it crashed.",
                    expires_at=expires_at, seen_at=now)
            if self.lake.replace_if_version(self.key, body, current.version):
                self.took_over = holder
                break
        else:
            raise LeaseHeldError(f"{self.subject}: could not take the lease {self.key}; "
                                 f"another run keeps taking it. Retry later.")
        self._version = self._current_version(body)
        self._renewed_at = now
        self._lost = None
        return self

    def _current_version(self, body: bytes) -> str | None:
        current = self.lake.read_versioned(self.key)
        return current.version if current is not None and current.data == body else None

    def renew_if_due(self) -> None:
        """Extend the lease when half its TTL has passed; LeaseLostError if it is gone."""
        if self.clock() - self._renewed_at >= self.ttl_seconds / 2:
            self.renew()

    def renew(self) -> None:
        """Extend the lease by a TTL from now; LeaseLostError (and the lease marked lost) when
        another run holds it now. Other errors (the store unreachable) propagate unmarked."""
        with self._lock:
            if self._lost is not None:
                raise LeaseLostError(self._lost)
            now = self.clock()
            body = self._body(now)
            if self._version is None or not self.lake.replace_if_version(self.key, body, self._version):
                self._lost = self._lost_message()
                raise LeaseLostError(self._lost)
            self._version = self._current_version(body)
            self._renewed_at = now

    @property
    def lost(self) -> str | None:
        """Why this lease is known lost (a refused renewal), or None."""
        return self._lost

    def ensure_held(self) -> None:
        """LeaseLostError unless this run still holds an unexpired lease (call before committing)."""
        if self._lost is not None:
            raise LeaseLostError(self._lost)
        with self._lock:  # not in the middle of our own renewal (its version is not stored yet)
            current = self.lake.read_versioned(self.key)
        if current is None or current.version != self._version:
            raise LeaseLostError(self._lost_message())
        if float(json.loads(current.data)["expires_at"]) <= self.clock():
            raise LeaseLostError(self._lost_message())

    def _lost_message(self) -> str:
        return (f"{self.subject}: run {self.run_id} lost its lease {self.key} (it expired and "
                f"another run took the day over); nothing of this run was committed.")

    def release(self) -> None:
        """Stop this lease's heartbeat and delete the lease if it is still the version this run
        holds: one conditional delete (``delete_if_version``), so never another run's, even one
        that took the key over a moment before."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        with self._lock:
            # One conditional delete, never read-then-delete: a run that took the key over after
            # our lease expired keeps its lease even if it did so a moment before this call.
            if self._version is not None:
                self.lake.delete_if_version(self.key, self._version)
            self._version = None

    def start_heartbeat(self, interval_seconds: float | None = None) -> "Heartbeat":
        """Renew this (acquired) lease every ``interval_seconds`` (TTL/3) until ``release``."""
        self._heartbeat = Heartbeat([self], interval_seconds).start()
        return self._heartbeat

    def __enter__(self) -> "Lease":
        self.acquire()
        try:
            self.start_heartbeat()
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class Heartbeat:
    """A daemon thread renewing ``leases`` every ``interval_seconds`` (default: a third of the
    shortest TTL) until ``stop``. A refused renewal marks that lease lost (``Lease.lost``) and it
    is renewed no more; an erroring one is retried at the next beat. ``interval_seconds`` is in
    real seconds: the leases' own clocks stamp the expiries."""

    def __init__(self, leases: Iterable[Lease], interval_seconds: float | None = None) -> None:
        self.leases = list(leases)
        self.interval_seconds = (interval_seconds if interval_seconds is not None
                                 else min(lease.ttl_seconds for lease in self.leases) / 3)
        self.beats = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            for lease in self.leases:
                if lease.lost is not None or self._stop.is_set():
                    continue
                try:
                    lease.renew()
                except LeaseLostError:
                    pass  # marked lost: ensure_held refuses the commit
                except Exception as error:  # the store unreachable: the next beat tries again
                    self.errors.append(f"{lease.key}: {type(error).__name__}: {error}")
            self.beats += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


@contextmanager
def hold(leases: Iterable[Lease], interval_seconds: float | None = None) -> Iterator[list[Lease]]:
    """Acquire every lease in order under one heartbeat, release them all on exit.

    If one is held by another run, the ones already acquired are released and its
    ``LeaseHeldError`` propagates: a run gets all its keys or none.
    """
    leases, acquired = list(leases), []
    heartbeat = None
    try:
        for lease in leases:
            acquired.append(lease.acquire())
        if acquired:
            heartbeat = Heartbeat(acquired, interval_seconds).start()
        yield acquired
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        for lease in reversed(acquired):
            lease.release()
