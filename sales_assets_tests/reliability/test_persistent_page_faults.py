"""Guards the "persisting" half of faults 5 and 7: a read timeout, a truncated body or invalid
JSON on a 200 that goes on past the client's attempts must fail the landing as transient (so
Dagster's retry policy owns the reschedule) with no manifest written, the day committed before
byte-for-byte untouched, the lease released and the token absent from the message. The passing
half (retried, then the clean bytes) is proven in sales_assets_tests/ingest/test_source_faults.py."""
from __future__ import annotations

import pytest

from sales_assets.ingest.landing import land_day, lease_key, read_manifest, verify_manifest
from sales_assets.ingest.store import LocalObjectStore
from sales_assets.source.client import SourceTransientError
from sales_assets.source.demo_server import FAULT_INVALID_JSON, FAULT_SLOW, FAULT_TRUNCATED, FaultPlan
from sales_assets_tests.ingest.test_source_faults import DAY, make_client, orders_requests, server  # noqa: F401

ATTEMPTS = 3


@pytest.mark.parametrize("fault", [FAULT_SLOW, FAULT_TRUNCATED, FAULT_INVALID_JSON])
def test_a_persisting_page_fault_fails_as_transient_and_commits_nothing(server, tmp_path, fault):  # noqa: F811
    store = LocalObjectStore(tmp_path)
    with make_client(server, []) as client:
        committed = land_day(store, client, DAY)
    before = {key: store.read_bytes(key) for key in store.list_keys("raw/")}
    server.requests.clear()
    server.fault_plan = FaultPlan(fail_first=[fault] * ATTEMPTS, slow_seconds=1.0)
    sleeps: list[float] = []
    with make_client(server, sleeps, max_attempts=ATTEMPTS, timeout=(2.0, 0.3)) as client:
        with pytest.raises(SourceTransientError, match=f"{ATTEMPTS} attempts") as raised:
            land_day(store, client, DAY)
    assert len(sleeps) == ATTEMPTS - 1  # every attempt used, none more
    if fault != FAULT_SLOW:  # the server logs a slow answer only once it is sent, after the client left
        assert len(orders_requests(server)) == ATTEMPTS
    assert read_manifest(store, DAY) == committed.manifest and verify_manifest(store, committed.manifest) == []
    assert {key: store.read_bytes(key) for key in store.list_keys("raw/")} == before  # not a page was written
    assert not store.exists(lease_key(DAY))
    assert server.token not in str(raised.value)
