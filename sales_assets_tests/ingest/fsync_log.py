"""The order of a local store's writes and background fsyncs, and fsync failures on demand: what
the page-durability tests of the bare store (`land_day` on a LocalObjectStore) and of the Dagster
raw asset (through LakeResource) both observe. Not a test module."""
from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path

from sales_assets.ingest import store as store_module
from sales_assets.ingest.landing import manifest_key


def record_writes_and_fsyncs(monkeypatch, root: Path) -> list[tuple[str, str]]:
    """The log, in order, of ("write", key) for every LocalObjectStore write and ("fsync", path
    relative to `root`) for every background fsync, for as long as `monkeypatch` lasts."""
    log: list[tuple[str, str]] = []
    real_write, real_fsync_path = store_module.LocalObjectStore.write_bytes, store_module._fsync_path

    def write_bytes(self, key, data):
        log.append(("write", key))
        real_write(self, key, data)

    def fsync_path(path):
        real_fsync_path(path)
        log.append(("fsync", os.path.relpath(path, root)))

    monkeypatch.setattr(store_module.LocalObjectStore, "write_bytes", write_bytes)
    monkeypatch.setattr(store_module, "_fsync_path", fsync_path)
    return log


def assert_pages_fsynced_before_the_manifest(log: list[tuple[str, str]], pages: list[str], day: dt.date) -> None:
    commit = log.index(("write", manifest_key(day)))
    synced_before_commit = {path for kind, path in log[:commit] if kind == "fsync"}
    assert set(pages) <= synced_before_commit  # each page durable before the manifest names it
    assert os.path.dirname(pages[0]) in synced_before_commit  # and the renames into the run folder too


def fail_background_fsync_of(monkeypatch, name: str) -> None:
    """Every background fsync of a path ending in `name` fails with EIO; the others run."""
    real_fsync_path = store_module._fsync_path

    def failing_fsync_path(path):
        if str(path).endswith(name):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        real_fsync_path(path)

    monkeypatch.setattr(store_module, "_fsync_path", failing_fsync_path)
