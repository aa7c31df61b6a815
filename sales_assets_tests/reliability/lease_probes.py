"""Lets a test see the lease heartbeats the code under test starts, and wait on their beats
instead of sleeping.

Not a test module: imported by the reliability tests.
"""
from __future__ import annotations

import time

from sales_assets.ingest import lease as lease_module


def record_heartbeats(monkeypatch) -> list[lease_module.Heartbeat]:
    """Every `Heartbeat` started from now on in this test (`Lease.start_heartbeat`, `hold`),
    in order; undone by `monkeypatch`."""
    started: list[lease_module.Heartbeat] = []

    class RecordedHeartbeat(lease_module.Heartbeat):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(lease_module, "Heartbeat", RecordedHeartbeat)
    return started


def wait_for_beats(heartbeat: lease_module.Heartbeat, beats: int, timeout: float = 30.0) -> None:
    """Return once `heartbeat` has completed `beats` more beats than now; AssertionError if it
    has not within `timeout` real seconds (a stuck heartbeat, not a slow machine)."""
    target = heartbeat.beats + beats
    deadline = time.monotonic() + timeout
    while heartbeat.beats < target:
        assert time.monotonic() < deadline, f"heartbeat made {heartbeat.beats} of {target} beats in {timeout} s"
        time.sleep(heartbeat.interval_seconds / 10)
