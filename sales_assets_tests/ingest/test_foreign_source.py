"""Guards the contract boundary: the pipeline consumes a Sales Source API server it has never
seen, configured only with a base URL and a token. The server here shares no code with the
bundled demo: its own cursors, a page size it chooses itself, envelope fields and order fields
the contract does not list, a base path, and no `as_of`. Raw landing and the crawler must take
it as it is, keep every field as received, and count every line."""

import datetime as dt
import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import dagster as dg
import pytest

from sales_assets.catalog.assets import catalog_sales_orders
from sales_assets.ingest.assets import raw_manifest_matches_pages, raw_sales_orders
from sales_assets.ingest.landing import read_manifest
from sales_assets.resources.catalog import LocalCatalogResource
from sales_assets.resources.lake import LocalLakeResource
from sales_assets.resources.source import SalesSourceResource
from sales_assets_tests.loopback_http import loopback_server

DAY = "2026-03-29"  # a DST change in Europe: offsets differ within the day
TOKEN = "foreign-token-7f3a"
SERVER_PAGE_SIZE = 3  # this server ignores page_size and pages by 3


def _orders():
    """Seven orders of DAY in one listing, in several UTC offsets, one re-sent later."""
    orders = []
    for n in range(7):
        orders.append(
            {
                "order_id": f"POS-{n:04d}",
                "order_timestamp": f"2026-03-29T0{n}:30:00+02:00" if n % 2 else f"2026-03-29T1{n}:05:00Z",
                "updated_at": "2026-03-29T20:00:00Z",
                "status": "completed",
                "channel": "store",
                "store_id": "S-9",
                "currency": "EUR",
                "register": {"lane": n},  # a field the contract does not list
                "customer": {"customer_id": f"C{n}", "name": f"Customer {n}", "loyalty": "gold"},
                "lines": [
                    {"line_number": 1, "product_id": "P1", "quantity": 2, "unit_price": 10.05},
                    {"line_number": 2, "product_id": "P2", "quantity": 1, "unit_price": 3.5, "discount": 0.1},
                ][: 1 + n % 2],
            }
        )
    # POS-0003 re-sent after its first copy, with a later updated_at.
    orders.append(dict(orders[3], updated_at="2026-03-29T21:00:00Z", status="returned"))
    return orders


class ForeignServer:
    def __init__(self):
        self.orders = _orders()
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests += 1
                url = urlparse(self.path)
                if url.path == "/pos/v1/health":
                    return self._reply(200, {"status": "ok"})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(401, {"error": "unauthorized"})
                if url.path != "/pos/v1/orders":
                    return self._reply(404, {"error": "no such path"})
                query = parse_qs(url.query)
                if query.get("date") != [DAY]:
                    return self._reply(200, {"data": [], "next_cursor": None})
                start = int(query["cursor"][0].removeprefix("tok-")) if "cursor" in query else 0
                page = server.orders[start : start + SERVER_PAGE_SIZE]
                end = start + len(page)
                cursor = f"tok-{end}" if end < len(server.orders) else None
                self._reply(200, {"data": page, "next_cursor": cursor, "server": "pos-export/2.1"})

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._httpd, base_url, self._thread = loopback_server(Handler)
        self.url = f"{base_url}/pos"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def foreign():
    with ForeignServer() as server:
        yield server


def test_an_unseen_contract_server_is_landed_and_crawled_as_received(foreign, tmp_path):
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    resources = {
        "source": SalesSourceResource(base_url=foreign.url, token=TOKEN),
        "lake": lake,
        "catalog": LocalCatalogResource(path=str(tmp_path / "catalog.sqlite")),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [raw_sales_orders, raw_manifest_matches_pages, catalog_sales_orders],
            partition_key=DAY,
            resources=resources,
            instance=instance,
        )
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())

    manifest = read_manifest(lake, dt.date.fromisoformat(DAY))
    assert manifest["record_count"] == len(foreign.orders) == 8
    assert len(manifest["pages"]) == 3  # the server's paging, not ours
    assert manifest["line_count"] == sum(len(o["lines"]) for o in foreign.orders)
    landed = [json.loads(line) for page in manifest["pages"] for line in lake.read_bytes(page["key"]).splitlines()]
    # Fields as received, including the ones the contract does not list, in listing order.
    assert landed == json.loads(json.dumps(foreign.orders))
    assert TOKEN not in json.dumps(manifest)

    [crawl] = result.asset_materializations_for_node("catalog__sales_orders")
    columns = {c.name: c.type for c in crawl.metadata["dagster/column_schema"].schema.columns}
    assert "register" in columns and "loyalty" in columns["customer"]


def test_a_wrong_token_fails_once_naming_the_setting(foreign, tmp_path):
    resources = {
        "source": SalesSourceResource(base_url=foreign.url, token="not-the-token"),
        "lake": LocalLakeResource(root=str(tmp_path / "lake")),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize([raw_sales_orders], partition_key=DAY, resources=resources, instance=instance, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    text = str(failure.message) + "".join(str(c.message) for c in (failure.cause,) if c)
    assert "SALES_SOURCE_TOKEN" in text and "not-the-token" not in text
    assert foreign.requests == 1
