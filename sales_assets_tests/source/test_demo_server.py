"""Guards the demo source's HTTP behaviour against the OpenAPI contract.

Risk: if the demo server pages wrongly, leaks unauthenticated data, writes floats, or
answers errors differently than the contract says, the pipeline would be tested against
a source no real implementation resembles, and its reconciliation figures would be wrong.
"""
from __future__ import annotations

import re
import socket
from datetime import date

import pytest
import requests

from sales_assets.source import contract as c
from sales_assets.source.demo_data import DemoDataConfig, generate_orders
from sales_assets.source.demo_server import (
    FAULT_DISCONNECT, DemoSourceServer, FaultPlan, decode_cursor, encode_cursor)

from .conftest import SMALL_CONFIG

DAY = date(2026, 11, 20)


def get(server, path, token=True, **params):
    headers = {"Authorization": f"Bearer {server.token}"} if token else {}
    return requests.get(server.url + path, params=params, headers=headers, timeout=10)


def test_health_needs_no_token(demo_source):
    response = get(demo_source, c.HEALTH_PATH, token=False)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
def test_orders_need_the_bearer_token(demo_source, headers):
    response = requests.get(demo_source.url + c.ORDERS_PATH, params={"date": "not-a-date"}, headers=headers, timeout=10)
    assert response.status_code == 401  # auth is checked before parameters
    assert "error" in response.json() and response.headers["WWW-Authenticate"] == "Bearer"
    assert demo_source.token not in response.text


@pytest.mark.parametrize("params", [
    {}, {"date": "2026-13-01"}, {"date": "20261120"}, {"date": "2026-11-20T00:00:00Z"},
    {"date": "2026-11-20", "page_size": "0"}, {"date": "2026-11-20", "page_size": "10001"},
    {"date": "2026-11-20", "page_size": "ten"}, {"date": "2026-11-20", "page_size": "-5"},
    {"date": "2026-11-20", "cursor": "garbage!"},
    {"date": "2026-11-20", "cursor": encode_cursor(date(2026, 11, 21), 10)},
    {"date": "2026-11-20", "cursor": encode_cursor(DAY, 10**6)},
])
def test_bad_parameters_are_400_with_a_json_error(demo_source, params):
    response = get(demo_source, c.ORDERS_PATH, **params)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_unknown_path_is_404(demo_source):
    assert get(demo_source, "/v1/customers").status_code == 404


@pytest.mark.parametrize("page_size", [1, 7, 50, 1000, c.MAX_PAGE_SIZE])
def test_pages_return_each_listing_entry_once_in_order(demo_source, page_size):
    expected = [c.dumps_exact(r) for r in generate_orders(DAY, SMALL_CONFIG)]
    served: list[str] = []
    as_ofs = set()
    cursor = None
    pages = 0
    while True:
        params = {"date": DAY.isoformat(), "page_size": str(page_size)}
        if cursor:
            params["cursor"] = cursor
        response = get(demo_source, c.ORDERS_PATH, **params)
        assert response.status_code == 200
        body = c.loads_exact(response.content)
        pages += 1
        assert len(body["data"]) <= page_size
        served.extend(c.dumps_exact(r) for r in body["data"])
        as_ofs.add(body["as_of"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["data"]) == page_size
    assert served == expected
    assert pages == max(1, -(-len(expected) // page_size))
    assert len(as_ofs) == 1 and c.parse_rfc3339(as_ofs.pop()) is not None


def test_default_page_size_is_the_contracts(demo_source):
    body = get(demo_source, c.ORDERS_PATH, date=DAY.isoformat()).json()
    assert body["next_cursor"] is None and len(body["data"]) == len(generate_orders(DAY, SMALL_CONFIG)) < 1000
    assert set(body) == {"data", "next_cursor", "as_of"}


def test_numbers_are_exact_decimal_literals():
    clean = DemoDataConfig(orders_per_day=300, invalid_line_rate=0, type_drift_rate=0, extra_field_rate=0)
    with DemoSourceServer(config=clean) as server:
        raw = get(server, c.ORDERS_PATH, date=DAY.isoformat()).content
    prices = re.findall(rb'"unit_price":([^,}]*)[,}]', raw)
    assert len(prices) > 300
    assert all(re.fullmatch(rb"[1-9][0-9]*\.[0-9]{2}", p) for p in prices), prices[:5]
    assert set(re.findall(rb'"discount":([^,}]*)[,}]', raw)) == {b"0", b"0.05", b"0.1", b"0.15", b"0.2"}
    assert set(re.findall(rb'"tax_rate":([^,}]*)[,}]', raw)) == {b"0.0725", b"0.20", b"0.19", b"0.21", b"0.22", b"0.23"}


def test_non_ascii_text_survives(demo_source):
    body = get(demo_source, c.ORDERS_PATH, date=DAY.isoformat()).json()
    names = [r["customer"]["name"] for r in generate_orders(DAY, SMALL_CONFIG)
             if isinstance(r, dict) and isinstance(r.get("customer"), dict)]
    served = [r["customer"]["name"] for r in body["data"] if isinstance(r, dict) and isinstance(r.get("customer"), dict)]
    assert served == names


def test_figures_are_those_of_what_is_served(demo_source):
    records = c.loads_exact(get(demo_source, c.ORDERS_PATH, date=DAY.isoformat()).content)["data"]
    figures = demo_source.figures(DAY)
    assert figures == c.expected_figures(records, DAY)
    assert figures["raw_lines"] == figures["curated_lines"] + figures["quarantine_lines"] + figures["superseded_lines"]
    assert demo_source.figures("2026-11-20") == figures


def test_fault_plan_fails_the_first_requests_then_serves(demo_source):
    demo_source.fault_plan = FaultPlan(fail_first=[503, 429], retry_after="7")
    first = get(demo_source, c.ORDERS_PATH, date=DAY.isoformat())
    second = get(demo_source, c.ORDERS_PATH, date=DAY.isoformat())
    third = get(demo_source, c.ORDERS_PATH, date=DAY.isoformat())
    assert (first.status_code, second.status_code, third.status_code) == (503, 429, 200)
    assert first.headers["Retry-After"] == "7" and "error" in first.json()
    assert [r.status for r in demo_source.requests if r.path == c.ORDERS_PATH] == [503, 429, 200]


def test_disconnect_fault_drops_the_connection(demo_source):
    demo_source.fault_plan = FaultPlan(fail_first=[FAULT_DISCONNECT])
    with pytest.raises(requests.ConnectionError):
        get(demo_source, c.ORDERS_PATH, date=DAY.isoformat())
    assert get(demo_source, c.ORDERS_PATH, date=DAY.isoformat()).status_code == 200


def test_cursor_round_trip_and_stop_releases_the_port():
    assert decode_cursor(encode_cursor(DAY, 1234), DAY) == 1234
    with pytest.raises(ValueError):
        decode_cursor(encode_cursor(DAY, 5), date(2026, 11, 21))
    server = DemoSourceServer(port=0, token="fixed-token", config=SMALL_CONFIG).start()
    port = server.port
    assert server.token == "fixed-token" and server.url == f"http://127.0.0.1:{port}"
    server.stop()
    server.stop()  # idempotent
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_fault_plan_from_cli_flags_and_its_validation():
    from sales_assets.cli import build_parser, fault_plan_from_args

    args = build_parser().parse_args([
        "serve-source", "--fail-first", "429,503,slow,truncated", "--retry-after", "http-date+30",
        "--repeat-cursor-on-page", "3", "--schema-variants", "--resend-orders", "2", "--late-correction"])
    plan = fault_plan_from_args(args)
    assert list(plan.fail_first) == [429, 503, "slow", "truncated"]
    assert plan.repeat_cursor_on_page == 3 and plan.schema_variants and plan.resend_orders == 2 and plan.late_correction
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", plan.retry_after_header())
    assert fault_plan_from_args(build_parser().parse_args(["serve-source"])) is None
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(fail_first=["sometimes"])
    with pytest.raises(ValueError, match="repeat_cursor_on_page"):
        FaultPlan(repeat_cursor_on_page=1)


def test_truncated_fault_breaks_the_content_length_promise(demo_source):
    from sales_assets.source.demo_server import FAULT_TRUNCATED

    demo_source.fault_plan = FaultPlan(fail_first=[FAULT_TRUNCATED])
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(demo_source, c.ORDERS_PATH, date=DAY.isoformat())
    assert get(demo_source, c.ORDERS_PATH, date=DAY.isoformat()).status_code == 200
