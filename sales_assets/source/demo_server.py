"""The bundled demo Sales Source API: a real HTTP server speaking the OpenAPI contract.

`DemoSourceServer` serves `demo_data` days over stdlib `http.server` on 127.0.0.1, in a
daemon thread, so the pipeline's client, Lambda handler and tests exercise real HTTP,
auth, paging and failures. What a caller may rely on:

- GET /v1/health (no auth) -> 200 {"status": "ok"}.
- GET /v1/orders?date=YYYY-MM-DD[&cursor=..][&page_size=1..10000] with
  `Authorization: Bearer <token>`: pages of the day's listing in order; `next_cursor` is
  null on the last page; every page of one snapshot carries the same `as_of`.
  401 without a valid token (checked before parameters), 400 for a bad date, page_size or
  cursor, 404 for other paths; all errors are JSON {"error": "..."}.
- Numbers are written as exact decimal literals (`contract.dumps_exact`), never via float.
- `figures(order_date)` is `contract.expected_figures` of exactly what is served.
- A `FaultPlan` scripts what a real source does wrong, deterministically: the first
  requests to /v1/orders fail (HTTP status with Retry-After, slow answers, truncated
  bodies, invalid JSON, dropped connections), a page repeats its cursor, the listing
  carries schema variants or re-sent orders, or a day is corrected after it was loaded.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence
from urllib.parse import parse_qs, urlsplit

from sales_assets.source import contract
from sales_assets.source.demo_data import DEFAULT_CONFIG, DemoDataConfig, iter_orders

LOGGER = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_CACHE_DAYS = 4
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_PAGE_SIZE_RE = re.compile(r"^[0-9]{1,6}$")
_CURSOR_VERSION = 1

# Fault kinds besides an HTTP status code.
FAULT_INVALID_JSON = "invalid_json"  # 200 whose body is syntactically cut short (Content-Length honest)
FAULT_TRUNCATED = "truncated"  # 200 promising more bytes than it sends, then closing
FAULT_DISCONNECT = "disconnect"  # close the connection without answering
FAULT_SLOW = "slow"  # answer normally, but only after `slow_seconds`
FAULT_KINDS = (FAULT_INVALID_JSON, FAULT_TRUNCATED, FAULT_DISCONNECT, FAULT_SLOW)
# `retry_after="http-date+N"` sends an HTTP-date N seconds after the moment of the answer.
RETRY_AFTER_HTTP_DATE = "http-date+"

# The schema variants `FaultPlan.schema_variants` applies to the day's first valid orders.
EXTRA_FIELD = "loyalty_tier"


@dataclass
class FaultPlan:
    """Scripted misbehaviour of the demo source, deterministic from one run to the next.

    - `fail_first` lists, in order, what the first len(fail_first) requests to /v1/orders
      get (auth is not even checked): an HTTP status (429, 500, 503, ...), FAULT_SLOW,
      FAULT_TRUNCATED, FAULT_INVALID_JSON or FAULT_DISCONNECT. Later requests are served
      normally. A FAULT_SLOW request is answered correctly after `slow_seconds`.
    - `retry_after` is sent verbatim as the Retry-After header with 429/503 ("7", "0",
      an HTTP-date), or "http-date+N" for an HTTP-date N seconds after the answer.
    - `repeat_cursor_on_page` N (>= 2): that page answers with the cursor it was asked
      with as its next_cursor, a loop a client must detect.
    - `schema_variants`: of the day's first three valid orders, the first gains an extra
      field (`loyalty_tier`), the second's first line has `quantity` as a string, the
      third's first line lacks `product_id`.
    - `resend_orders` N: the first N valid orders are re-sent at the end of the listing
      with `updated_at` one hour later and status "cancelled".
    - `late_correction`: from the second listing of a day on (a listing starts with a
      request without cursor), the day's first valid order is re-sent at the end with
      `updated_at` one day later and status "returned": a correction after the day
      was loaded, with a new `as_of`.
    """

    fail_first: Sequence[int | str] = ()
    retry_after: str | None = None
    slow_seconds: float = 2.0
    repeat_cursor_on_page: int | None = None
    schema_variants: bool = False
    resend_orders: int = 0
    late_correction: bool = False
    _served: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        for fault in self.fail_first:
            if not (isinstance(fault, int) and 400 <= fault <= 599) and fault not in FAULT_KINDS:
                raise ValueError(f"unknown fault {fault!r}: an HTTP status 400-599 or one of {', '.join(FAULT_KINDS)}")
        if self.repeat_cursor_on_page is not None and self.repeat_cursor_on_page < 2:
            raise ValueError("repeat_cursor_on_page must be >= 2 (page 1 is asked for without a cursor)")
        if self.resend_orders < 0 or self.slow_seconds < 0:
            raise ValueError("resend_orders and slow_seconds must be >= 0")

    @property
    def changes_data(self) -> bool:
        """Whether the plan changes what a day's listing holds (not only how it is served)."""
        return self.schema_variants or self.resend_orders > 0 or self.late_correction

    def next_fault(self) -> int | str | None:
        """The fault for the next request, or None; thread-safe."""
        with self._lock:
            index = self._served
            self._served += 1
        return self.fail_first[index] if index < len(self.fail_first) else None

    def retry_after_header(self, now: datetime | None = None) -> str | None:
        """The Retry-After value to send now."""
        if self.retry_after is None or not self.retry_after.startswith(RETRY_AFTER_HTTP_DATE):
            return self.retry_after
        seconds = float(self.retry_after[len(RETRY_AFTER_HTTP_DATE):])
        when = (now or datetime.now(timezone.utc)) + timedelta(seconds=seconds)
        return format_datetime(when, usegmt=True)


def parse_fault_list(text: str) -> list[int | str]:
    """`"503,503,429,slow"` -> [503, 503, 429, "slow"] (the CLI's --fail-first)."""
    faults: list[int | str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        faults.append(int(item) if item.isdigit() else item)
    return faults


def _valid_positions(records: list[Any], count: int) -> list[int]:
    """Indexes of the first `count` records a correction can apply to (objects with lines)."""
    found: list[int] = []
    if count <= 0:
        return found
    for index, record in enumerate(records):
        if (isinstance(record, dict) and isinstance(record.get("lines"), list) and record["lines"]
                and all(isinstance(line, dict) for line in record["lines"])
                and contract.parse_rfc3339(record.get("updated_at")) is not None):
            found.append(index)
            if len(found) == count:
                break
    return found


def _later_copy(record: dict, delta: timedelta, status: str) -> dict:
    copy = contract.loads_exact(contract.dumps_exact(record))
    updated = contract.parse_rfc3339(record["updated_at"]) + delta
    copy["updated_at"] = updated.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    copy["status"] = status
    return copy


def apply_data_faults(records: list[bytes], plan: FaultPlan, listing_number: int) -> list[bytes]:
    """The listing `plan` serves for a day whose clean listing is `records` (JSON texts)."""
    out = list(records)
    if plan.schema_variants:
        decoded = [contract.loads_exact(r) for r in records[:200]]
        positions = _valid_positions(decoded, 3)
        variants = []
        for which, index in enumerate(positions):
            record = decoded[index]
            if which == 0:
                record[EXTRA_FIELD] = "gold"
            elif which == 1:
                record["lines"][0]["quantity"] = str(record["lines"][0]["quantity"])
            else:
                record["lines"][0].pop("product_id", None)
            variants.append((index, record))
        for index, record in variants:
            out[index] = contract.dumps_exact(record).encode("ascii")
    if plan.resend_orders or (plan.late_correction and listing_number >= 2):
        decoded = [contract.loads_exact(r) for r in out[: max(200, plan.resend_orders * 4)]]
        for index in _valid_positions(decoded, plan.resend_orders):
            out.append(contract.dumps_exact(_later_copy(decoded[index], timedelta(hours=1), "cancelled")).encode("ascii"))
        if plan.late_correction and listing_number >= 2:
            for index in _valid_positions(decoded, 1):
                out.append(contract.dumps_exact(_later_copy(decoded[index], timedelta(days=1), "returned")).encode("ascii"))
    return out


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered (for tests and debugging; no headers kept)."""

    path: str
    query: str
    status: int


class _Day:
    """One generated day: each record pre-encoded as exact JSON, plus the snapshot time."""

    __slots__ = ("records", "as_of")

    def __init__(self, records: list[bytes], as_of: str) -> None:
        self.records = records
        self.as_of = as_of


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def encode_cursor(order_date: date, offset: int) -> str:
    """The opaque cursor for the page starting at `offset` of `order_date`'s listing."""
    payload = json.dumps({"v": _CURSOR_VERSION, "date": order_date.isoformat(), "offset": offset},
                         separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, order_date: date) -> int:
    """The offset in a cursor issued for `order_date`; ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        offset = payload["offset"]
        if payload.get("v") != _CURSOR_VERSION or payload.get("date") != order_date.isoformat():
            raise ValueError("cursor belongs to another date or version")
        if type(offset) is not int or offset < 0:
            raise ValueError("bad offset")
        return offset
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc)) from exc


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive so a requests.Session reuses its connection; every answer
    # therefore carries Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "SalesDemoSource/1.0"
    # Idle keep-alive connections must not pin a handler thread forever.
    timeout = 30

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        try:
            self.server.source._handle(self)  # type: ignore[attr-defined]
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (e.g. a FAULT_SLOW answer past its read timeout).
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        LOGGER.debug("demo source: " + format, *args)


class DemoSourceServer:
    """The demo source on 127.0.0.1; use as a context manager or start()/stop().

    `port=0` binds a free port; `.url` and `.token` are what a client needs. The token is
    random unless given. Generated days are cached (LRU of `cache_days`).
    """

    def __init__(
        self,
        port: int = 0,
        token: str | None = None,
        config: DemoDataConfig = DEFAULT_CONFIG,
        host: str = DEFAULT_HOST,
        fault_plan: FaultPlan | None = None,
        cache_days: int = DEFAULT_CACHE_DAYS,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token if token is not None else secrets.token_urlsafe(24)
        self.config = config
        self.fault_plan = fault_plan
        self.cache_days = cache_days
        self.requests: list[RequestRecord] = []
        self._days: OrderedDict[date, _Day] = OrderedDict()
        self._figures: OrderedDict[date, dict[str, Any]] = OrderedDict()
        # Data faults: listings started per day, and the faulty listing served for each
        # (date, listing kind), so every page of one listing comes from the same snapshot.
        self._listings_started: dict[date, int] = {}
        self._faulty: dict[tuple[date, bool], _Day] = {}
        self._lock = threading.Lock()  # guards the day/figures caches
        self._log_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"DemoSourceServer(url={self.url if self._httpd else None!r})"

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (only while started)."""
        if self._httpd is None:
            raise RuntimeError("the demo source is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> "DemoSourceServer":
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer((self.host, self.port), _Handler)
        httpd.daemon_threads = True
        httpd.source = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.port = httpd.server_address[1]
        # A short poll interval keeps stop() fast (shutdown waits for one poll).
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"demo-source-{self.port}", daemon=True)
        self._thread.start()
        LOGGER.info("demo sales source serving on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (for a console command)."""
        self.start()
        try:
            assert self._thread is not None
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> "DemoSourceServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- data -------------------------------------------------------------------------------

    def _day(self, order_date: date) -> _Day:
        with self._lock:
            day = self._days.get(order_date)
            if day is not None:
                self._days.move_to_end(order_date)
                return day
            # Generated under the lock: concurrent first requests for a day wait for one run.
            records = [contract.dumps_exact(record).encode("ascii") for record in iter_orders(order_date, self.config)]
            as_of = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            day = self._days[order_date] = _Day(records, as_of)
            while len(self._days) > self.cache_days:
                self._days.popitem(last=False)
            return day

    def _listing(self, order_date: date, starts_listing: bool) -> _Day:
        """The listing to serve: the clean day, or the fault plan's version of it."""
        day = self._day(order_date)
        plan = self.fault_plan
        if plan is None or not plan.changes_data:
            return day
        with self._lock:
            if starts_listing:
                self._listings_started[order_date] = self._listings_started.get(order_date, 0) + 1
            number = self._listings_started.get(order_date, 1)
            corrected = plan.late_correction and number >= 2
            key = (order_date, corrected)
            faulty = self._faulty.get(key)
            if faulty is None:
                # A corrected listing is a new snapshot of the source: a new as_of.
                as_of = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if corrected else day.as_of
                faulty = self._faulty[key] = _Day(apply_data_faults(day.records, plan, number), as_of)
            return faulty

    def served_records(self, order_date: date | str) -> list[Any]:
        """The records the latest listing of the day holds (parsed exactly), for tests."""
        order_date = date.fromisoformat(order_date) if isinstance(order_date, str) else order_date
        return [contract.loads_exact(r) for r in self._listing(order_date, starts_listing=False).records]

    def figures(self, order_date: date | str) -> dict[str, Any]:
        """`contract.expected_figures` of the listing this server serves for the day."""
        order_date = date.fromisoformat(order_date) if isinstance(order_date, str) else order_date
        if self.fault_plan is not None and self.fault_plan.changes_data:
            return contract.expected_figures(self.served_records(order_date), order_date)
        with self._lock:
            cached = self._figures.get(order_date)
        if cached is None:
            cached = contract.expected_figures(iter_orders(order_date, self.config), order_date)
            with self._lock:
                self._figures[order_date] = cached
                while len(self._figures) > 64:
                    self._figures.popitem(last=False)
        return dict(cached, quarantine_by_reason=dict(cached["quarantine_by_reason"]))

    # -- HTTP -------------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        try:
            if parts.path == contract.HEALTH_PATH:
                self._send(handler, parts, 200, b'{"status":"ok"}')
            elif parts.path == contract.ORDERS_PATH:
                self._orders(handler, parts)
            else:
                raise _Reject(404, f"no such resource: {parts.path}")
        except _Reject as reject:
            headers = {"WWW-Authenticate": "Bearer"} if reject.status == 401 else {}
            self._send(handler, parts, reject.status, _error_body(reject.message), headers)
        except Exception:  # a bug in the demo must still answer like a server would
            LOGGER.exception("demo source failed on %s", handler.path)
            self._send(handler, parts, 500, _error_body("internal error"))

    def _orders(self, handler: _Handler, parts) -> None:
        fault = self.fault_plan.next_fault() if self.fault_plan is not None else None
        if fault == FAULT_SLOW:
            # Past any sensible client read timeout; the answer itself is correct.
            time.sleep(self.fault_plan.slow_seconds)
        elif fault is not None:
            self._inject(handler, parts, fault)
            return
        supplied = handler.headers.get("Authorization", "")
        expected = f"Bearer {self.token}"
        if not hmac.compare_digest(supplied.encode(), expected.encode()):
            raise _Reject(401, "missing or invalid bearer token")

        query = parse_qs(parts.query, keep_blank_values=True)
        for name, values in query.items():
            if len(values) > 1:
                raise _Reject(400, f"query parameter {name} given more than once")
        raw_date = query.get("date", [None])[0]
        if raw_date is None:
            raise _Reject(400, "query parameter date is required (YYYY-MM-DD)")
        try:
            if not _DATE_RE.fullmatch(raw_date):
                raise ValueError
            order_date = date.fromisoformat(raw_date)
        except ValueError:
            raise _Reject(400, "date must be a calendar date YYYY-MM-DD") from None
        raw_size = query.get("page_size", [str(contract.DEFAULT_PAGE_SIZE)])[0]
        if not _PAGE_SIZE_RE.fullmatch(raw_size) or not (
                contract.MIN_PAGE_SIZE <= int(raw_size) <= contract.MAX_PAGE_SIZE):
            raise _Reject(400, f"page_size must be an integer from {contract.MIN_PAGE_SIZE} to {contract.MAX_PAGE_SIZE}")
        page_size = int(raw_size)
        cursor = query.get("cursor", [""])[0]
        offset = 0
        if cursor:
            try:
                offset = decode_cursor(cursor, order_date)
            except ValueError:
                raise _Reject(400, "cursor is not one this source issued for that date") from None

        day = self._listing(order_date, starts_listing=not cursor)
        if offset > len(day.records):
            raise _Reject(400, "cursor is past the end of the listing")
        end = min(offset + page_size, len(day.records))
        next_cursor = encode_cursor(order_date, end) if end < len(day.records) else None
        plan = self.fault_plan
        if (plan is not None and plan.repeat_cursor_on_page is not None and cursor and next_cursor
                and offset // page_size + 1 == plan.repeat_cursor_on_page):
            next_cursor = cursor  # the page points back at itself: a paging loop
        body = b"".join((
            b'{"data":[', b",".join(day.records[offset:end]), b'],"next_cursor":',
            json.dumps(next_cursor).encode(), b',"as_of":"', day.as_of.encode(), b'"}',
        ))
        self._send(handler, parts, 200, body)

    def _inject(self, handler: _Handler, parts, fault: int | str) -> None:
        if fault == FAULT_DISCONNECT:
            self._log(parts, 0)
            handler.close_connection = True
            return
        if fault == FAULT_INVALID_JSON:
            self._send(handler, parts, 200, b'{"data":[{"order_id":"SO-tru')
            return
        if fault == FAULT_TRUNCATED:
            body = b'{"data":[{"order_id":"SO-trunc'
            self._log(parts, 200)
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body) + 1000))  # promises more than it sends
            handler.end_headers()
            handler.wfile.write(body)
            handler.close_connection = True
            return
        headers = {}
        retry_after = self.fault_plan.retry_after_header() if self.fault_plan is not None else None
        if retry_after is not None and fault in (429, 503):
            headers["Retry-After"] = retry_after
        self._send(handler, parts, int(fault), _error_body(f"injected fault {fault}"), headers)

    def _log(self, parts, status: int) -> None:
        with self._log_lock:
            self.requests.append(RequestRecord(parts.path, parts.query, status))

    def _send(self, handler: _Handler, parts, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self._log(parts, status)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
