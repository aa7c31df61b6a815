"""Fixtures for the source tests: a small demo source and a scripted stand-in server."""
from __future__ import annotations

from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest

from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer
from sales_assets_tests.loopback_http import loopback_server

# Small days keep every test fast while still spanning several pages.
SMALL_CONFIG = DemoDataConfig(orders_per_day=120)


@pytest.fixture
def demo_source():
    """A started demo source serving SMALL_CONFIG days on a free 127.0.0.1 port."""
    with DemoSourceServer(port=0, config=SMALL_CONFIG) as server:
        yield server


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


class ScriptedServer:
    """Answers GETs with the scripted replies in order (the last one repeats).

    `requests` records (path with query, Authorization header or None) of each GET.
    """

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[tuple[str, str | None]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                script.requests.append((self.path, self.headers.get("Authorization")))
                reply = script.replies[min(len(script.requests), len(script.replies)) - 1]
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args):
                pass

        self._httpd, self.url, self._thread = loopback_server(Handler)
        self._thread.start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def scripted_server():
    """Factory: scripted_server([Reply(...), ...]) -> a started ScriptedServer."""
    servers = []

    def start(replies):
        server = ScriptedServer(replies)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
