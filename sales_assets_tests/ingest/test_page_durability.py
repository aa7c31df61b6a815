"""Guards the ordering that makes a committed day survive a power cut: pages are fsynced in the
background while later pages land (``LocalObjectStore.deferred_fsync``), so the risk is a
manifest written before a page it names is durable, an fsync error that is swallowed instead of
failing the landing, or a deferred fsync leaking to writes outside the run's pages (the lease)."""
from __future__ import annotations

import datetime as dt
import errno
import os
import threading

import pytest

from sales_assets.ingest import store as store_module
from sales_assets.ingest.landing import land_day, lease_key, manifest_key, read_manifest
from sales_assets.ingest.store import LocalObjectStore
from sales_assets_tests.reliability.test_landing_crashes import FakeClient

DAY = dt.date(2026, 11, 20)


class RecordingStore(LocalObjectStore):
    """Logs ("write", key) for every write_bytes and ("fsync", path) for every background fsync."""

    def __init__(self, root, events: list) -> None:
        super().__init__(root)
        self.events = events

    def write_bytes(self, key: str, data: bytes) -> None:
        self.events.append(("write", key))
        super().write_bytes(key, data)


def test_every_page_is_fsynced_before_the_manifest_is_written(tmp_path, monkeypatch):
    events: list = []
    real_fsync_path = store_module._fsync_path

    def recording_fsync_path(path):
        real_fsync_path(path)
        events.append(("fsync", os.path.relpath(path, tmp_path)))

    monkeypatch.setattr(store_module, "_fsync_path", recording_fsync_path)
    result = land_day(RecordingStore(tmp_path, events), FakeClient(pages=12), DAY)
    pages = [page["key"] for page in result.manifest["pages"]]
    commit = events.index(("write", manifest_key(DAY)))
    synced_before_commit = {path for kind, path in events[:commit] if kind == "fsync"}
    assert set(pages) <= synced_before_commit  # each page durable before the manifest names it
    run_folder = os.path.dirname(pages[0])
    assert run_folder in synced_before_commit  # and the renames into the run folder too


def test_a_failed_background_fsync_fails_the_landing_and_commits_nothing(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path)
    committed = land_day(store, FakeClient(pages=2), DAY).manifest
    real_fsync_path = store_module._fsync_path

    def failing_fsync_path(path):
        if str(path).endswith("page-00003.jsonl"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        real_fsync_path(path)

    monkeypatch.setattr(store_module, "_fsync_path", failing_fsync_path)
    with pytest.raises(OSError) as raised:
        land_day(store, FakeClient(pages=5), DAY)
    assert raised.value.errno == errno.EIO
    assert read_manifest(store, DAY) == committed
    assert not store.exists(lease_key(DAY))
    assert store._deferred is None  # the store is back to durable-on-return writes


def test_only_keys_under_the_prefix_are_deferred(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path)
    inline_fsyncs: list[int] = []  # fsyncs run by the writing thread itself (the deferred ones run elsewhere)
    real_fsync, writer = os.fsync, threading.get_ident()
    monkeypatch.setattr(store_module.os, "fsync",
                        lambda fd: (threading.get_ident() == writer and inline_fsyncs.append(fd), real_fsync(fd)))
    with store.deferred_fsync("run/"):
        store.write_bytes("run/page-1", b"a")
        assert inline_fsyncs == []  # under the prefix: fsynced in the background
        store.write_bytes("lease.json", b"b")  # outside the prefix: durable when it returns
        assert len(inline_fsyncs) == 1
    assert store.read_bytes("run/page-1") == b"a" and store.read_bytes("lease.json") == b"b"
    with pytest.raises(RuntimeError, match="nest"):
        with store.deferred_fsync("run/"), store.deferred_fsync("run/"):
            pass
