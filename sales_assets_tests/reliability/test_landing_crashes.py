"""Guards faults 14 and 17 and the full disk during landing: a writer that dies after k pages
(by exception, or SIGKILLed with no chance to clean up), a disk that fills up mid-day, and two
runs landing the same day at once. Each must leave the day invisible or exactly as one clean
run commits it — never a manifest over missing pages, never interleaved pages of two runs."""
from __future__ import annotations

import datetime as dt
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sales_assets.ingest.landing import (
    LeaseHeldError,
    land_day,
    lease_key,
    read_manifest,
    verify_manifest,
)
from sales_assets.ingest.assets import raw_sales_orders
from sales_assets.ingest.store import LocalObjectStore

DAY = dt.date(2026, 11, 20)
DAY_PREFIX = f"raw/sales_orders/order_date={DAY}/"
PAGES = 5


class Page:
    def __init__(self, number: int) -> None:
        self.number = number
        self.records = [{"order_id": f"SO-{number}-{i}", "lines": [{"line_number": 1}]} for i in range(3)]
        self.as_of = "2026-11-21T00:00:00Z"

    def jsonl_bytes(self) -> bytes:
        return b"".join(json.dumps(r).encode() + b"\n" for r in self.records)


class Stats:
    requests = retries = 0
    wait_seconds = 0.0


class FakeClient:
    """The ``SalesSourceClient`` surface ``land_day`` uses; ``on_page(n)`` runs after page n is yielded."""

    safe_url = "http://127.0.0.1:1"

    def __init__(self, pages: int = PAGES, on_page=None) -> None:
        self.pages = pages
        self.on_page = on_page or (lambda number: None)
        self.stats = Stats()

    def iter_pages(self, order_date):
        for number in range(1, self.pages + 1):
            yield Page(number)
            self.on_page(number)


def committed_bytes(store: LocalObjectStore) -> list[bytes]:
    return [store.read_bytes(page["key"]) for page in read_manifest(store, DAY)["pages"]]


def run_folders(store: LocalObjectStore) -> set[str]:
    return {key[len(DAY_PREFIX):].split("/", 1)[0] for key in store.list_keys(DAY_PREFIX + "run_id=")}


@pytest.fixture
def clean(tmp_path) -> list[bytes]:
    store = LocalObjectStore(tmp_path / "clean")
    land_day(store, FakeClient(), DAY)
    return committed_bytes(store)


@pytest.mark.parametrize("crash_after", [1, 3])
def test_an_exception_after_k_pages_leaves_the_day_invisible_and_the_rerun_cleans_up(tmp_path, clean, crash_after):
    store = LocalObjectStore(tmp_path / "lake")

    def crash(number):
        if number == crash_after:
            raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        land_day(store, FakeClient(on_page=crash), DAY, run_id="crashed")
    assert read_manifest(store, DAY) is None
    assert len(store.list_keys(DAY_PREFIX + "run_id=crashed/")) == crash_after  # the orphan exists
    assert not store.exists(lease_key(DAY))  # an exception releases the lease at once

    result = land_day(store, FakeClient(), DAY)
    assert committed_bytes(store) == clean
    assert verify_manifest(store, result.manifest) == []
    assert run_folders(store) == {f"run_id={result.run_id}"}  # the orphan was removed


# A writer in its own process: lands pages through the real code, reports each page, then
# stalls after page K so the parent can SIGKILL it mid-day (no finally, no atexit runs).
WRITER = textwrap.dedent("""
    import datetime as dt, sys, time
    sys.path.insert(0, sys.argv[3])
    from sales_assets_tests.reliability.test_landing_crashes import FakeClient, DAY
    from sales_assets.ingest.landing import land_day
    from sales_assets.ingest.store import LocalObjectStore
    stall_after = int(sys.argv[2])
    def on_page(number):
        print(f"landed {number}", flush=True)
        if number == stall_after:
            time.sleep(600)
    land_day(LocalObjectStore(sys.argv[1]), FakeClient(on_page=on_page), DAY, run_id="killed")
""")


@pytest.mark.slow
def test_a_sigkilled_writer_leaves_the_day_invisible_and_the_rerun_takes_over(tmp_path, clean):
    lake = tmp_path / "lake"
    store = LocalObjectStore(lake)
    repo = str(Path(__file__).resolve().parents[2])
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(lake), "3", repo],
                              stdout=subprocess.PIPE, text=True)
    try:
        # "landed n" is printed when land_pages asks for page n+1, i.e. after page n was written.
        for expected in ("landed 1", "landed 2", "landed 3"):
            assert writer.stdout.readline().strip() == expected
        os.kill(writer.pid, signal.SIGKILL)
        assert writer.wait(timeout=10) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.stdout.close()

    assert read_manifest(store, DAY) is None
    assert len(store.list_keys(DAY_PREFIX + "run_id=killed/")) == 3
    assert store.exists(lease_key(DAY))  # a killed writer cannot release its lease...
    lease = json.loads(store.read_bytes(lease_key(DAY)))
    assert lease["writer"]["pid"] == writer.pid and lease["expires_at"] > time.time()
    # ...but it names its (now dead) process, so a retry on the raw asset's retry policy's
    # schedule (its first delay, which jitter may bring down to zero), long before the TTL,
    # takes the day over instead of being refused.
    policy = raw_sales_orders.op.retry_policy
    first_retry = time.time() + policy.delay
    assert policy.max_retries >= 1 and first_retry < lease["expires_at"]
    result = land_day(store, FakeClient(), DAY, clock=lambda: first_retry)
    assert result.took_over_lease_from["run_id"] == "killed"
    assert committed_bytes(store) == clean
    assert run_folders(store) == {f"run_id={result.run_id}"}
    assert not store.exists(lease_key(DAY))
    # Nothing the killed process was writing is left as an object (temp files are not listed).
    assert all(not name.endswith(".tmp") for name in os.listdir(lake / DAY_PREFIX))


class FullDiskStore(LocalObjectStore):
    """A lake whose disk fills up after ``pages_fit`` page writes."""

    def __init__(self, root, pages_fit: int) -> None:
        super().__init__(root)
        self.pages_fit = pages_fit

    def write_bytes(self, key: str, data: bytes) -> None:
        if key.endswith(".jsonl") or key.endswith("_manifest.json"):
            if self.pages_fit == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)
            self.pages_fit -= 1
        super().write_bytes(key, data)


@pytest.mark.parametrize("pages_fit", [0, 2, PAGES])  # PAGES: every page fits, the manifest does not
def test_a_full_disk_fails_clearly_and_commits_nothing(tmp_path, clean, pages_fit):
    root = tmp_path / "lake"
    land_day(LocalObjectStore(root), FakeClient(pages=2), DAY)  # an earlier committed run
    before = committed_bytes(LocalObjectStore(root))

    store = FullDiskStore(root, pages_fit)
    with pytest.raises(OSError) as raised:
        land_day(store, FakeClient(), DAY)
    assert raised.value.errno == errno.ENOSPC and "No space left on device" in str(raised.value)
    assert committed_bytes(store) == before  # the previous manifest and its pages are untouched
    assert not store.exists(lease_key(DAY))

    store.pages_fit = 10**6  # space freed: the re-run succeeds and removes the partial run
    result = land_day(store, FakeClient(), DAY)
    assert committed_bytes(store) == clean
    assert run_folders(store) == {f"run_id={result.run_id}"}


def test_two_concurrent_runs_of_a_day_one_is_refused_and_the_result_equals_one_run(tmp_path, clean):
    store = LocalObjectStore(tmp_path / "lake")
    first_has_lease = threading.Event()
    second_done = threading.Event()
    outcomes: dict[str, object] = {}

    def first_on_page(number):
        if number == 1:
            first_has_lease.set()
            second_done.wait(timeout=10)  # keep landing only after the second run tried

    def run(name, client):
        try:
            outcomes[name] = land_day(store, client, DAY, run_id=name, owner=f"test {name}")
        except Exception as error:  # noqa: BLE001 - the outcome is what the test inspects
            outcomes[name] = error

    first = threading.Thread(target=run, args=("first", FakeClient(on_page=first_on_page)))
    first.start()
    assert first_has_lease.wait(timeout=10)
    run("second", FakeClient())
    second_done.set()
    first.join(timeout=20)

    assert isinstance(outcomes["second"], LeaseHeldError)
    assert "test first" in str(outcomes["second"])
    assert outcomes["first"].run_id == "first"
    assert committed_bytes(store) == clean
    assert run_folders(store) == {"run_id=first"}  # the refused run wrote no page
    assert not store.exists(lease_key(DAY))
