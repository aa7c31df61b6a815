"""Run one command as a subprocess and measure it: wall time, peak RSS, its JSON result.

Peak RSS is sampled from /proc (VmHWM of every process in the tree, VmRSS summed over the
tree) because a stage may start grandchildren (PySpark starts a JVM) that the kernel's
RUSAGE_CHILDREN accounting never sees when they are not reaped by their parent. The
leader's own `ru_maxrss` from wait4 is kept as a cross-check.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

SAMPLE_SECONDS = 0.1


@dataclass
class Measured:
    """What `run_measured` observed; `result` is the last stdout line parsed as JSON (or None)."""

    command: list[str]
    returncode: int
    wall_seconds: float
    peak_rss_bytes: int  # largest VmHWM of any one process of the tree
    peak_tree_rss_bytes: int  # largest sum of VmRSS over the tree at one sample
    leader_maxrss_bytes: int  # wait4's ru_maxrss of the leader
    processes: dict[str, int] = field(default_factory=dict)  # "pid:name" -> VmHWM bytes
    result: Any = None
    stderr_tail: str = ""


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    except (OSError, ValueError):
        return {}


def _kb(value: str | None) -> int:
    return int(value.split()[0]) * 1024 if value else 0


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
    except OSError:
        pass
    return found


def _tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue += _children(current)
    return pids


def run_measured(command: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
                 timeout: float | None = None) -> Measured:
    """Run `command`, sampling its process tree until it exits; never raises on a non-zero exit."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    hwm: dict[str, int] = {}
    tree_peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal tree_peak
        while not done.is_set():
            total = 0
            for pid in _tree(process.pid):
                status = _status(pid)
                if not status:
                    continue
                key = f"{pid}:{status.get('Name', '?')}"
                hwm[key] = max(hwm.get(key, 0), _kb(status.get("VmHWM")))
                total += _kb(status.get("VmRSS"))
            tree_peak = max(tree_peak, total)
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Pipes drained by threads so a chatty stage cannot block on a full pipe.
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((process.stdout, out_chunks), (process.stderr, err_chunks))]
    for reader in readers:
        reader.start()
    deadline = None if timeout is None else started + timeout
    rusage = None
    while True:
        pid, status, rusage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            break
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
        time.sleep(0.02)
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    for reader in readers:
        reader.join()
    stdout = b"".join(out_chunks).decode(errors="replace")
    stderr = b"".join(err_chunks).decode(errors="replace")
    result = None
    for line in reversed(stdout.strip().splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    return Measured(
        command=command,
        returncode=process.returncode,
        wall_seconds=wall,
        peak_rss_bytes=max(hwm.values(), default=0),
        peak_tree_rss_bytes=tree_peak,
        leader_maxrss_bytes=rusage.ru_maxrss * 1024 if rusage else 0,
        processes=hwm,
        result=result,
        stderr_tail=stderr[-3000:],
    )
