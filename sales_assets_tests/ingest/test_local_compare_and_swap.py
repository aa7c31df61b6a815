"""The local store's compare-and-swap, as a lease renewal uses it.

Risk guarded: a renewal that leaves the lease key absent for an instant. A second writer's
``create_exclusive`` could then win the key while its holder is alive, and the holder's next
renewal would find its lease lost (a live run failing for no reason); a reader would see a
released lease.
"""
from __future__ import annotations

import threading

from sales_assets.ingest.store import LocalObjectStore

KEY = "curated/_leases/order_date=2026-11-20.json"
RENEWALS = 200


def test_a_renewal_never_leaves_the_key_absent_nor_lets_a_second_writer_in(tmp_path):
    store = LocalObjectStore(tmp_path)
    assert store.create_exclusive(KEY, b"holder 0")
    done = threading.Event()
    seen_absent, intruded = [], []

    def reader() -> None:
        while not done.is_set():
            if store.read_versioned(KEY) is None:
                seen_absent.append(True)

    def contender() -> None:
        while not done.is_set():
            if store.create_exclusive(KEY, b"intruder"):
                intruded.append(True)
                return

    threads = [threading.Thread(target=reader), threading.Thread(target=contender)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, RENEWALS + 1):
            current = store.read_versioned(KEY)
            assert current is not None and current.data == f"holder {n - 1}".encode()
            assert store.replace_if_version(KEY, f"holder {n}".encode(), current.version)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert not seen_absent and not intruded
    assert store.read_bytes(KEY) == f"holder {RENEWALS}".encode()


def test_a_stale_or_missing_version_is_refused_and_leaves_no_temporary_file(tmp_path):
    store = LocalObjectStore(tmp_path)
    assert not store.replace_if_version(KEY, b"x", "0" * 64)  # no key yet
    assert store.create_exclusive(KEY, b"one")
    stale = store.read_versioned(KEY).version
    assert store.replace_if_version(KEY, b"two", stale)
    assert not store.replace_if_version(KEY, b"three", stale)
    assert store.read_bytes(KEY) == b"two"
    assert sorted(p.name for p in (tmp_path / KEY).parent.iterdir()) == ["order_date=2026-11-20.json"]
