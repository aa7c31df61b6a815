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
from sales_assets.ingest.landing import land_day, lease_key, read_manifest
from sales_assets.ingest.store import LocalObjectStore
from sales_assets_tests.ingest.fsync_log import (
    assert_pages_fsynced_before_the_manifest,
    fail_background_fsync_of,
    record_writes_and_fsyncs,
)
from sales_assets_tests.reliability.test_landing_crashes import FakeClient

DAY = dt.date(2026, 11, 20)


def test_every_page_is_fsynced_before_the_manifest_is_written(tmp_path, monkeypatch):
    events = record_writes_and_fsyncs(monkeypatch, tmp_path)
    result = land_day(LocalObjectStore(tmp_path), FakeClient(pages=12), DAY)
    assert_pages_fsynced_before_the_manifest(events, [page["key"] for page in result.manifest["pages"]], DAY)


def test_a_failed_background_fsync_fails_the_landing_and_commits_nothing(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path)
    committed = land_day(store, FakeClient(pages=2), DAY).manifest
    fail_background_fsync_of(monkeypatch, "page-00003.jsonl")
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
