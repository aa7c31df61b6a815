"""A test HTTP server on a free 127.0.0.1 port, for handlers that script a source's answers."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def loopback_server(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str, threading.Thread]:
    """(server, its base URL, the daemon thread that serves it: start it, then ``shutdown()`` and
    ``server_close()`` the server). Each request runs on its own thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}", thread
