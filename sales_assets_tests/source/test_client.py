"""Guards the Sales Source API client: paging, retries, error messages, lossless landing.

Risk: a client that drops or repeats a page, retries forever or not at all, leaks the
token into logs, or rounds a price through a float would land wrong raw data silently,
and every later stage would reconcile against it.
"""
from __future__ import annotations

import json
import logging
import random
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from sales_assets.source import contract as c
from sales_assets.source.client import LOGGER as CLIENT_LOGGER
from sales_assets.source.client import (
    Page, SalesSourceClient, SourceClientError, SourceError, SourcePaginationError, SourceTransientError,
    parse_retry_after, split_page_body)
from sales_assets.source.demo_data import generate_orders
from sales_assets.source.demo_server import FAULT_DISCONNECT, FAULT_INVALID_JSON, FaultPlan

from .conftest import SMALL_CONFIG, Reply

DAY = date(2026, 11, 20)


def make_client(server_url, token, sleeps=None, **kwargs):
    return SalesSourceClient(server_url, token, sleep=(sleeps.append if sleeps is not None else _no_sleep),
                             rng=random.Random(0), **kwargs)


def _no_sleep(seconds):
    raise AssertionError(f"unexpected sleep({seconds})")


def page_body(data, next_cursor=None, **extra):
    return json.dumps({"data": data, "next_cursor": next_cursor, **extra}).encode()


@pytest.mark.parametrize("page_size", [1, 13, 1000])
def test_iter_pages_yields_every_order_once_in_order(demo_source, page_size):
    expected = generate_orders(DAY, SMALL_CONFIG)
    with make_client(demo_source.url, demo_source.token, page_size=page_size) as client:
        pages = list(client.iter_pages(DAY))
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))
    assert len(pages) == -(-len(expected) // page_size)
    assert pages[0].cursor is None and all(p.cursor == q.next_cursor for q, p in zip(pages, pages[1:]))
    assert pages[-1].next_cursor is None
    assert [c.dumps_exact(r) for p in pages for r in p.records] == [c.dumps_exact(r) for r in expected]
    landed = b"".join(p.jsonl_bytes() for p in pages)
    assert landed == b"".join(c.dumps_exact(r).encode() + b"\n" for r in expected)
    figures = demo_source.figures(DAY)
    assert sum(p.line_units for p in pages) == figures["raw_lines"]
    assert sum(p.record_count for p in pages) == figures["raw_records"]
    assert c.expected_figures(c.records_from_jsonl(landed), DAY) == figures
    assert len({p.as_of for p in pages}) == 1


def test_health(demo_source):
    with make_client(demo_source.url, demo_source.token) as client:
        assert client.health() == {"status": "ok"}


def test_retries_a_503_then_succeeds(demo_source):
    demo_source.fault_plan = FaultPlan(fail_first=[503])
    sleeps: list[float] = []
    with make_client(demo_source.url, demo_source.token, sleeps) as client:
        pages = list(client.iter_pages(DAY))
    assert sum(p.record_count for p in pages) == demo_source.figures(DAY)["raw_records"]
    assert [r.status for r in demo_source.requests] == [503, 200]
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5  # first backoff with jitter


def test_retries_invalid_json_disconnects_and_429_with_backoff(demo_source):
    demo_source.fault_plan = FaultPlan(fail_first=[FAULT_INVALID_JSON, FAULT_DISCONNECT, 500, 502])
    sleeps: list[float] = []
    with make_client(demo_source.url, demo_source.token, sleeps) as client:
        assert list(client.iter_pages(DAY))
    assert len(sleeps) == 4
    for attempt, slept in enumerate(sleeps, start=1):
        backoff = 0.5 * 2 ** (attempt - 1)
        assert backoff / 2 <= slept <= backoff


def test_honours_retry_after_seconds(demo_source):
    demo_source.fault_plan = FaultPlan(fail_first=[429, 503], retry_after="7")
    sleeps: list[float] = []
    with make_client(demo_source.url, demo_source.token, sleeps) as client:
        list(client.iter_pages(DAY))
        assert (client.stats.requests, client.stats.retries, client.stats.waits) == (3, 2, [7.0, 7.0])
    assert sleeps == [7.0, 7.0]


def test_each_retry_is_one_log_line_naming_page_cursor_attempt_cause_and_wait(scripted_server, caplog):
    caplog.set_level(logging.DEBUG)
    token = "tok-echoed-by-the-server-42"
    echo = json.dumps({"error": f"overloaded; your Authorization was Bearer {token}"}).encode()
    server = scripted_server([
        Reply(200, page_body([{"order_id": "A"}], "c1")),
        Reply(503, echo, (("X-Debug-Auth", f"Bearer {token}"),)),
        Reply(429, echo, (("Retry-After", "4"),)),
        Reply(200, page_body([{"order_id": "B"}])),
    ])
    sleeps: list[float] = []
    with make_client(server.url, token, sleeps, max_attempts=3) as client:
        assert [p.number for p in client.iter_pages(DAY)] == [1, 2]
    def client_lines():
        return [r.getMessage() for r in caplog.records if r.name == CLIENT_LOGGER.name]

    assert [r.levelno for r in caplog.records if r.name == CLIENT_LOGGER.name] == [logging.WARNING] * 2
    assert client_lines() == [
        f"sales source GET /v1/orders date={DAY} page 2 (cursor 'c1'): attempt 1 of 3 failed (HTTP 503); "
        f"retrying in {sleeps[0]:.2f} s",
        f"sales source GET /v1/orders date={DAY} page 2 (cursor 'c1'): attempt 2 of 3 failed "
        f"(HTTP 429, Retry-After 4 s); retrying in 4.00 s",
    ]
    # A network failure names its kind; a bad body's excerpt (server text) is redacted.
    with make_client("http://127.0.0.1:9", token, [], max_attempts=2, timeout=(0.5, 0.5)) as client:
        with pytest.raises(SourceTransientError):
            client.health()
    refused = client_lines()[-1]
    assert "GET /v1/health: attempt 1 of 2 failed (" in refused and "ConnectionError)" in refused
    caplog.clear()
    echoing_health = scripted_server([Reply(200, json.dumps({"status": f"not ok for {token}"}).encode()),
                                      Reply(200, b'{"status": "ok"}')])
    with make_client(echoing_health.url, token, []) as client:
        assert client.health() == {"status": "ok"}
    [line] = client_lines()
    assert "attempt 1 of 5 failed (invalid response body (health body is not" in line and "***" in line
    assert token not in caplog.text


def test_retry_after_above_the_maximum_fails_at_once_instead_of_sleeping(demo_source):
    demo_source.fault_plan = FaultPlan(fail_first=[429], retry_after="3600")
    sleeps: list[float] = []
    with make_client(demo_source.url, demo_source.token, sleeps, max_retry_after=60) as client:
        with pytest.raises(SourceTransientError, match="Retry-After 3600 s, above max_retry_after=60") as raised:
            list(client.iter_pages(DAY))
    assert sleeps == [] and len(demo_source.requests) == 1
    assert demo_source.token not in str(raised.value)


def test_retry_after_zero_still_backs_off(demo_source):
    demo_source.fault_plan = FaultPlan(fail_first=[429, 429, 429], retry_after="0")
    sleeps: list[float] = []
    with make_client(demo_source.url, demo_source.token, sleeps) as client:
        list(client.iter_pages(DAY))
    assert len(sleeps) == 3
    for attempt, slept in enumerate(sleeps, start=1):
        backoff = 0.5 * 2 ** (attempt - 1)
        assert backoff / 2 <= slept <= backoff  # the backoff, not a burst of instant retries


def test_retry_after_http_date_is_read_against_the_injected_clock(demo_source):
    now = datetime(2026, 11, 21, 1, 0, 0, tzinfo=timezone.utc)
    demo_source.fault_plan = FaultPlan(fail_first=[503], retry_after=format_datetime(now + timedelta(seconds=12), usegmt=True))
    sleeps: list[float] = []
    with make_client(demo_source.url, demo_source.token, sleeps, clock=now.timestamp) as client:
        list(client.iter_pages(DAY))
    assert sleeps == [pytest.approx(12.0)]


def test_parse_retry_after_http_date():
    now = datetime(2026, 11, 21, 1, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(later, now.timestamp()) == pytest.approx(42)
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now.timestamp()) == 0
    assert parse_retry_after("5", 0) == 5 and parse_retry_after("soon", 0) is None and parse_retry_after(None, 0) is None


def test_gives_up_after_max_attempts_with_a_transient_error(demo_source):
    demo_source.fault_plan = FaultPlan(fail_first=[503] * 10)
    sleeps: list[float] = []
    with make_client(demo_source.url, demo_source.token, sleeps, max_attempts=3) as client:
        with pytest.raises(SourceTransientError, match="3 attempts.*HTTP 503.*SALES_SOURCE_URL") as raised:
            list(client.iter_pages(DAY))
    assert len(demo_source.requests) == 3 and len(sleeps) == 2
    assert demo_source.token not in str(raised.value)


def test_connection_refused_is_transient():
    with make_client("http://127.0.0.1:9", "t0ken", [], max_attempts=2, timeout=(0.5, 0.5)) as client:
        with pytest.raises(SourceTransientError, match="ConnectionError"):
            client.health()


def test_401_fails_after_one_request_without_leaking_the_token(demo_source):
    sleeps: list[float] = []
    secret = "s3cr3t-token-value"
    with make_client(demo_source.url, secret, sleeps) as client:
        with pytest.raises(SourceClientError) as raised:
            list(client.iter_pages(DAY))
        assert secret not in repr(client)
    message = str(raised.value)
    assert "401" in message and "SALES_SOURCE_TOKEN" in message and "SALES_SOURCE_URL" in message
    assert secret not in message and demo_source.token not in message
    assert [r.status for r in demo_source.requests] == [401] and sleeps == []


@pytest.mark.parametrize("status,hint", [(400, "SALES_SOURCE_URL"), (403, "SALES_SOURCE_TOKEN"), (404, "SALES_SOURCE_URL")])
def test_client_errors_are_not_retried(scripted_server, status, hint):
    token = "tok-123456"
    # even an echoing server must not get the token into our message
    server = scripted_server([Reply(status, json.dumps({"error": f"bad request from {token}"}).encode())])
    with make_client(server.url, token, []) as client:
        with pytest.raises(SourceClientError, match=hint) as raised:
            list(client.iter_pages(DAY))
    assert token not in str(raised.value) and len(server.requests) == 1
    assert server.requests[0][1] == f"Bearer {token}"


def test_repeated_cursor_is_a_pagination_error(scripted_server):
    server = scripted_server([
        Reply(200, page_body([{"order_id": "A"}], "c1")),
        Reply(200, page_body([{"order_id": "B"}], "c2")),
        Reply(200, page_body([{"order_id": "C"}], "c1")),
    ])
    with make_client(server.url, "t", []) as client:
        pages = client.iter_pages(DAY)
        assert next(pages).records == [{"order_id": "A"}]
        assert next(pages).records == [{"order_id": "B"}]
        with pytest.raises(SourcePaginationError, match="repeats"):
            next(pages)
    assert [path.split("cursor=")[-1] if "cursor=" in path else None for path, _auth in server.requests] == [None, "c1", "c2"]


def test_too_many_pages_and_empty_cursor_are_pagination_errors(scripted_server):
    counter = iter(range(100))
    endless = scripted_server([Reply(200, page_body([], f"c{next(counter)}")) for _ in range(10)])
    with make_client(endless.url, "t", [], max_pages=3) as client:
        with pytest.raises(SourcePaginationError, match="max_pages=3"):
            list(client.iter_pages(DAY))
    assert len(endless.requests) == 3
    empty = scripted_server([Reply(200, page_body([], ""))])
    with make_client(empty.url, "t", []) as client:
        with pytest.raises(SourcePaginationError, match="empty"):
            list(client.iter_pages("2026-11-20"))
    assert issubclass(SourcePaginationError, SourceError)


LOSSLESS_BODY = (
    b'{"as_of":"2026-11-21T00:00:00Z","data":[\n'
    b'  {"order_id":"A","lines":[{"unit_price":0.1,"q":1e2},{"unit_price":19.99,"discount":0.10}],'
    b'"big":123456789012345678901234567890,"tiny":1.5E-7,"name":"Caf\xc3\xa9 \\u00e9","x":null},\n'
    b'  "not an object", [1, 2.50] ,\n'
    b'  {"order_id": "B",\n   "pretty": [19.990, -0.0]}\n'
    b'],"next_cursor":null}'
)


def test_jsonl_keeps_every_record_exactly_as_received(scripted_server):
    server = scripted_server([Reply(200, LOSSLESS_BODY)])
    with make_client(server.url, "t", []) as client:
        [page] = list(client.iter_pages(DAY))
    lines = page.jsonl_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    # compact items are the body's bytes verbatim
    assert lines[0] == (b'{"order_id":"A","lines":[{"unit_price":0.1,"q":1e2},{"unit_price":19.99,"discount":0.10}],'
                        b'"big":123456789012345678901234567890,"tiny":1.5E-7,"name":"Caf\xc3\xa9 \\u00e9","x":null}')
    assert lines[1] == b'"not an object"' and lines[2] == b"[1, 2.50]"
    # an item spread over lines is re-serialized on one line, number texts unchanged
    assert lines[3] == b'{"order_id":"B","pretty":[19.990,-0.0]}'
    assert page.records[0]["lines"][0]["unit_price"] == c.JsonNumber("0.1")
    assert page.records[0]["big"] == 123456789012345678901234567890
    assert [c.loads_exact(line) for line in lines[:4]] == page.records
    assert page.as_of == "2026-11-21T00:00:00Z" and page.line_units == 2 + 1 + 1 + 1
    assert page.body == LOSSLESS_BODY


@pytest.mark.parametrize("body", [
    b"", b"[]", b'{"data": {}}', b'{"next_cursor": null}', b'{"data": [1,], "next_cursor": null}',
    b'{"data": [NaN], "next_cursor": null}', b'{"data": [], "next_cursor": null} trailing', b"\xff\xfe",
    b'{"data": [], "next_cursor": 5}',
])
def test_malformed_bodies_are_retried_then_transient(scripted_server, body):
    server = scripted_server([Reply(200, body)])
    sleeps: list[float] = []
    with make_client(server.url, "t", sleeps, max_attempts=2) as client:
        with pytest.raises(SourceTransientError, match="invalid response body"):
            list(client.iter_pages(DAY))
    assert len(server.requests) == 2 and len(sleeps) == 1


def test_split_page_body_accepts_any_key_order_and_whitespace():
    fields, items = split_page_body(b' { "next_cursor" : "x" , "extra" : {"a": [1]}, "data" : [ ] } ')
    assert fields == {"next_cursor": "x", "extra": {"a": [1]}, "data": []} and items == []


def test_constructor_validates_configuration_without_echoing_the_token():
    with pytest.raises(ValueError, match="SALES_SOURCE_URL"):
        SalesSourceClient("ftp://example", "tok")
    with pytest.raises(ValueError, match="SALES_SOURCE_TOKEN"):
        SalesSourceClient("http://127.0.0.1:1", "")
    client = SalesSourceClient("http://user:pw@127.0.0.1:1/base/", "tok-abc")
    assert "pw" not in repr(client) and "tok-abc" not in repr(client)
    assert isinstance(Page(1, [], (), None, None, None, b"").jsonl_bytes(), bytes)
