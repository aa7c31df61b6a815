"""Dagster's wait before a step retry, on a virtual clock: retry tests run without waiting.

`dg.materialize` runs steps with the in-process executor, whose `ActiveExecution` schedules a
step that is up for retry at `time.time() + seconds_to_wait` and `time.sleep`s until then.
`virtual_retry_clock` gives that module a clock whose `sleep` only records the wait and moves
its own time forward, then calls `on_sleep(seconds)`: the moment the test makes whatever should
happen while Dagster waits happen (a lock holder exits, a crashed writer's lease ages). The
retry's `seconds_to_wait` stays exactly what the code under test asked for.

Not a test module: imported by the reliability tests.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Optional

from dagster._core.execution.plan import active


class VirtualRetryClock:
    """`time` as Dagster's retry scheduler sees it: real time plus every wait it asked for."""

    def __init__(self, on_sleep: Optional[Callable[[float], None]] = None) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def time(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        self.offset += seconds

    def __getattr__(self, name: str):
        return getattr(time, name)


def virtual_retry_clock(monkeypatch, on_sleep: Optional[Callable[[float], None]] = None) -> VirtualRetryClock:
    """Install a `VirtualRetryClock` for the test (undone by `monkeypatch`). Fails at once if
    Dagster no longer keeps its retry clock there (the tests would then wait for real)."""
    assert active.time is time, "dagster's ActiveExecution no longer uses the time module it imports"
    clock = VirtualRetryClock(on_sleep)
    monkeypatch.setattr(active, "time", clock)
    return clock
