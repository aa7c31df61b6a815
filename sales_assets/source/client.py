"""Client of the Sales Source API contract (any server speaking it, not only the demo).

What a caller may rely on:
- `SalesSourceClient.iter_pages(order_date)` yields `Page`s 1, 2, ... of one day in the
  server's listing order, each exactly once; it raises `SourcePaginationError` on a
  repeated or empty cursor, or beyond `max_pages`. Page n+1 is requested only when the
  caller asks for it, unless the client was made with `prefetch=True`: then, while the
  caller handles page n, a background thread already fetches and parses page n+1 (never
  further: memory stays bounded by three pages); an error of page n+1 is still raised only
  when the caller asks for it, and closing the iterator abandons the fetch ahead (no
  further attempt is started).
- `Page.jsonl_bytes()` is the landing file body: one line per order, each line the
  record's JSON text exactly as received (re-serialized losslessly only when the server
  pretty-printed it across lines), so numbers never pass through a binary float.
  `Page.record_count` and `Page.line_units` come from a quick parse (orjson, when
  installed, over the usual compact layout); `Page.records` is parsed exactly on first use.
- 429, 5xx, 408, connection errors, timeouts and unparseable bodies are retried with
  exponential backoff and jitter; exhausted retries raise `SourceTransientError`.
  Retry-After (seconds or HTTP-date) is honoured, but never below the backoff (so
  `Retry-After: 0` does not burn every attempt at once); a Retry-After above
  `max_retry_after` raises `SourceTransientError` at once instead of sleeping, so the
  orchestrator's retry policy reschedules the run. Any other non-200 answer (400, 401,
  403, 404, ...) raises `SourceClientError` at once, after one request.
- `client.stats` counts requests, retries, requested waits and body bytes received.
- Each retry is one WARNING on the `logging` logger named for this module (`LOGGER`):
  what was asked (page number and cursor), attempt n of N, the status or error kind and
  the wait in seconds. Plain `logging`, so the Lambda's handler ships it as it is; the raw
  asset forwards it to the Dagster run's log.
- No message, log line, exception or repr ever contains the token.
"""
from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timezone
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import urllib3

from sales_assets.source import contract

try:
    import orjson
except ImportError:  # the Lambda zip vendors only requests: the exact path below serves it alone
    orjson = None
try:
    import msgspec
except ImportError:  # optional: the orjson loop of split_compact_page serves without it
    msgspec = None

URL_ENV_VAR = "SALES_SOURCE_URL"
TOKEN_ENV_VAR = "SALES_SOURCE_TOKEN"
DEFAULT_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_RETRY_AFTER = 60.0
DEFAULT_MAX_PAGES = 100_000
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
USER_AGENT = "sales-assets-source-client/1.0"
_MAX_SERVER_MESSAGE = 300
# A cursor is opaque and may be long; its head tells one position of a listing from another.
_MAX_LOGGED_CURSOR = 64

LOGGER = logging.getLogger(__name__)

# urllib3 directly (requests is a layer over it): per page, requests' body assembly and
# hooks cost about four times urllib3's CPU, which showed at 1000 pages a day. Every
# urllib3 failure of a request or its body (connect/read timeouts, refused or reset
# connections, a body shorter than its Content-Length, TLS and decoding errors) derives
# from its HTTPError (a MaxRetryError names the failure as its reason).
_TRANSIENT_EXCEPTIONS = (urllib3.exceptions.HTTPError,)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# The usual page layout: `data` first, items compact objects separated by bare commas.
_DATA_FIRST = re.compile(rb"[ \t\n\r]*\{[ \t\n\r]*\"data\"[ \t\n\r]*:[ \t\n\r]*\[[ \t\n\r]*")
_JSON_SPACE = b" \t\n\r"
# Items usually share their first key ("order_id") and nested objects rarely have it
# first: "," followed by that key is where an item most likely ends.
_FIRST_KEY = re.compile(rb'\{"[^"\\]*"[ \t\n\r]*:')
_ITEM_END = re.compile(rb"[,\]]")
# Failed parses (texts cut inside an item) a page may cost before the exact parser takes it.
_MAX_MISSES = 1000


class SourceError(Exception):
    """Base of every error this client raises."""


class SourceTransientError(SourceError):
    """The source kept failing in a way that may heal (5xx, 429, network, bad body)."""


class SourceClientError(SourceError):
    """The source refused the request (400/401/403/404...): configuration, not luck."""


class SourcePaginationError(SourceError):
    """The source's cursors do not lead to an end (repeated/empty cursor, too many pages)."""


@dataclass
class ClientStats:
    """What one client did so far: for metadata and tests (never holds the token)."""

    requests: int = 0
    retries: int = 0
    waits: list[float] = field(default_factory=list)
    bytes_received: int = 0

    @property
    def wait_seconds(self) -> float:
        return sum(self.waits)


class _InvalidResponse(ValueError):
    """A 200 whose body is not the contract's JSON (retried like a 5xx)."""


class _Abandoned(Exception):
    """The consumer closed `iter_pages`: the fetch ahead stops before its next attempt."""


class Page:
    """One page of a day's listing.

    `number` is 1-based; `records` are the parsed orders (JSON values, fractional numbers
    as exact `contract.JsonNumber` Decimals), parsed from `body_lines` on first access;
    `body_lines` holds one JSON text per record (no newline), aligned with `records`; `body`
    is the response body as received; `cursor` is the cursor this page was requested with
    (None for page 1). `record_count` and `line_units` never need `records` parsed.
    """

    __slots__ = ("number", "_records", "body_lines", "next_cursor", "as_of", "cursor", "body", "_line_units")

    def __init__(self, number: int, records: list[Any] | None, body_lines: tuple[bytes, ...],
                 next_cursor: str | None, as_of: str | None, cursor: str | None, body: bytes,
                 line_units: int | None = None) -> None:
        self.number = number
        self._records = records  # None: parse body_lines exactly when asked
        self.body_lines = body_lines
        self.next_cursor = next_cursor
        self.as_of = as_of
        self.cursor = cursor
        self.body = body
        self._line_units = line_units

    def __repr__(self) -> str:
        return f"Page(number={self.number}, records={self.record_count}, next_cursor={self.next_cursor!r})"

    @property
    def records(self) -> list[Any]:
        if self._records is None:
            self._records = [contract.loads_exact(line) for line in self.body_lines]
        return self._records

    def jsonl_bytes(self) -> bytes:
        """The landing file's bytes: each record's JSON text followed by a newline."""
        return b"\n".join(self.body_lines) + b"\n" if self.body_lines else b""

    @property
    def record_count(self) -> int:
        return len(self.body_lines)

    @property
    def line_units(self) -> int:
        """Line units of the page's records (the manifest's `lines`)."""
        if self._line_units is None:
            self._line_units = sum(contract.line_units(record) for record in self.records)
        return self._line_units


if msgspec is not None:
    class _RawItems(msgspec.Struct):
        data: list[msgspec.Raw]

    class _ItemLines(msgspec.Struct):
        lines: list[msgspec.Raw] | None = None

    class _ItemsLines(msgspec.Struct):
        data: list[_ItemLines]

    _RAW_ITEMS = msgspec.json.Decoder(_RawItems)
    _ITEMS_LINES = msgspec.json.Decoder(_ItemsLines)


_INT_DIGITS_LIMIT = 4300  # sys.get_int_max_str_digits()'s default
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x78 for byte in range(256))  # digit -> "0", else "x"
_DIGIT_RUN = b"0" * (_INT_DIGITS_LIMIT + 1)


def _split_with_msgspec(body: bytes, start: int) -> tuple[list[bytes], int, int] | None:
    """(items' exact bytes, line units, end of the items) of a compact page, or None.

    msgspec validates the whole body and hands each item's exact text without building its
    value (half orjson's cost per page). Used only for ASCII bodies without line breaks
    (msgspec does not check UTF-8 in the values it skips), whose items are objects with a
    `lines` list or none and are separated by bare commas (checked byte for byte).
    """
    if msgspec is None or not body.isascii() or b"\n" in body or b"\r" in body:
        return None
    try:
        lines = [bytes(item) for item in _RAW_ITEMS.decode(body).data]
        units = sum(len(item.lines) if item.lines else 1 for item in _ITEMS_LINES.decode(body).data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if lines and max(map(len, lines)) > _INT_DIGITS_LIMIT:
        # The exact parser refuses integers of more digits than Python converts (4300): so must
        # this path. Only an item that long can hold one; the check costs nothing otherwise.
        if any(len(item) > _INT_DIGITS_LIMIT and _DIGIT_RUN in item.translate(_DIGITS_ONLY) for item in lines):
            return None
    items = b",".join(lines)
    end = start + len(items)
    if not body.startswith(items, start) or not body.startswith(b"]", end):
        return None
    return lines, units, end


def split_compact_page(body: bytes) -> tuple[dict[str, Any], list[bytes], int] | None:
    """The fast path of `split_page_body` for the usual layout, or None when it does not apply.

    Applies when orjson is installed, `data` is the first key and its items are objects
    on one line each, separated by bare commas (what the demo source and most servers send).
    Returns the top-level fields except `data`, each item's exact bytes from the body, and
    the items' line units.

    An item ends before "," and the first key of the page's first item (where that fails,
    before any "," or "]") where the text since the item's start parses on its own as one
    JSON value: a parser reading the whole body ends the item at exactly one place and no
    shorter text is a complete value, so the first such place is the item's end. Any doubt
    (a line break, a number orjson cannot hold, too many misses: blanks between items or
    items unlike the first) returns None, and the caller uses the exact parser, which
    accepts all JSON.
    """
    if orjson is None:
        return None
    opening = _DATA_FIRST.match(body)
    if opening is None:
        return None
    start = end = opening.end()
    lines: list[bytes] = []
    units = 0
    misses = 0
    loads, line_units, find = orjson.loads, contract.line_units, body.find
    quick = None if body.startswith(b"]", start) else _split_with_msgspec(body, start)
    if quick is not None:
        lines, units, end = quick
    elif not body.startswith(b"]", start):
        first_key = _FIRST_KEY.match(body, start)
        boundary_text = b"," + (first_key.group() if first_key else b"{")
        item_start = start
        closed = False
        while not closed:
            boundary = find(boundary_text, item_start)
            if boundary >= 0:
                text = body[item_start:boundary]
                try:
                    units += line_units(loads(text))
                except orjson.JSONDecodeError:
                    misses += 1
                else:
                    # orjson skips blanks around a value; the landed line is the value's text alone.
                    lines.append(text.strip(_JSON_SPACE))
                    item_start = boundary + 1
                    continue
            # Items unlike the first before the boundary, or the last items: each ends at
            # the first "," or "]" before which its text parses.
            for match in _ITEM_END.finditer(body, item_start):
                text = body[item_start:match.start()]
                try:
                    units += line_units(loads(text))
                except orjson.JSONDecodeError:
                    misses += 1
                    if misses > _MAX_MISSES:
                        return None
                    continue
                lines.append(text.strip(_JSON_SPACE))
                item_start = match.end()
                if match.group() == b"]":
                    end, closed = match.start(), True
                    break
                if 0 <= boundary < item_start:
                    break  # past the boundary: back to the quick search
            else:
                return None
        if find(b"\n", start, end) >= 0 or find(b"\r", start, end) >= 0:
            return None  # pretty-printed items are re-serialized on one line by the exact path
    try:
        # The envelope with an empty data array, read exactly: it checks everything after
        # the items, and its few numbers never pass through a float.
        fields = contract.loads_exact(body[:start] + body[end:])
    except ValueError:
        return None
    if not isinstance(fields, dict) or fields.pop("data", None) != []:
        return None
    return fields, lines, units


def split_page_body(body: bytes) -> tuple[dict[str, Any], list[tuple[Any, bytes]]]:
    """Parse a page body; return its top-level fields and, per `data` item, (value, JSON line).

    Each JSON line is the item's exact text from the body when it holds no line break
    (JSON strings cannot), else the item re-serialized by `contract.dumps_exact`.
    Raises `_InvalidResponse` when the body is not a JSON object with a `data` array.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _InvalidResponse(f"body is not UTF-8: {exc}") from None
    decoder = contract.EXACT_DECODER
    fields: dict[str, Any] = {}
    items: list[tuple[Any, bytes]] | None = None

    def skip(pos: int) -> int:
        return _WHITESPACE.match(text, pos).end()

    def expect(pos: int, char: str) -> int:
        if not text.startswith(char, pos):
            raise _InvalidResponse(f"expected {char!r} at offset {pos} of the body")
        return skip(pos + 1)

    try:
        pos = expect(skip(0), "{")
        if text.startswith("}", pos):
            pos = skip(pos + 1)
        else:
            while True:
                if not text.startswith('"', pos):
                    raise _InvalidResponse(f"expected a key at offset {pos} of the body")
                key, pos = decoder.raw_decode(text, pos)
                pos = expect(skip(pos), ":")
                if key == "data" and text.startswith("[", pos):
                    items, pos = _split_array(text, pos)
                    fields["data"] = [value for value, _line in items]
                else:
                    fields[key], pos = decoder.raw_decode(text, pos)
                pos = skip(pos)
                if text.startswith(",", pos):
                    pos = skip(pos + 1)
                    continue
                pos = expect(pos, "}")
                break
        if pos != len(text):
            raise _InvalidResponse(f"unexpected text after the JSON object at offset {pos}")
    except _InvalidResponse:
        raise
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, huge int
        raise _InvalidResponse(f"body is not valid JSON: {exc}") from None
    if items is None or not isinstance(fields.get("data"), list):
        raise _InvalidResponse("body has no data array")
    return fields, items


def _split_array(text: str, pos: int) -> tuple[list[tuple[Any, bytes]], int]:
    decoder = contract.EXACT_DECODER
    items: list[tuple[Any, bytes]] = []
    pos = _WHITESPACE.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return items, pos + 1
    while True:
        value, end = decoder.raw_decode(text, pos)
        raw = text[pos:end]
        if "\n" in raw or "\r" in raw:
            raw = contract.dumps_exact(value)
        items.append((value, raw.encode("utf-8")))
        pos = _WHITESPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos = _WHITESPACE.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            return items, pos + 1
        else:
            raise _InvalidResponse(f"expected ',' or ']' at offset {pos} of the body")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def display_url(url: str) -> str:
    """The URL without credentials or query, safe for messages and metadata."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class SalesSourceClient:
    """A Sales Source API client over one urllib3 connection pool (HTTP keep-alive).

    `timeout` is (connect, read) seconds per request; `max_attempts` counts every try of
    one request; `sleep` and `rng` are injectable so tests never wait; `clock` gives the
    epoch seconds used to read HTTP-date Retry-After values.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        page_size: int = contract.DEFAULT_PAGE_SIZE,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        max_pages: int = DEFAULT_MAX_PAGES,
        sleep: Callable[[float], None] = time.sleep,
        *,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_max: float = BACKOFF_MAX_SECONDS,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        http: urllib3.PoolManager | None = None,
        prefetch: bool = False,
    ) -> None:
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{URL_ENV_VAR} must be an http(s) URL, got {display_url(base_url or '')!r}")
        if not token:
            raise ValueError(f"{TOKEN_ENV_VAR} is empty: the source needs a bearer token")
        if not contract.MIN_PAGE_SIZE <= page_size <= contract.MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within {contract.MIN_PAGE_SIZE}..{contract.MAX_PAGE_SIZE}")
        if max_attempts < 1 or max_pages < 1:
            raise ValueError("max_attempts and max_pages must be >= 1")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.page_size = page_size
        self.timeout = timeout
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self._timeout = urllib3.Timeout(connect=connect, read=read)
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.max_pages = max_pages
        self.prefetch = prefetch
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._http = http or _pool_manager(self.base_url)
        self.stats = ClientStats()

    def __repr__(self) -> str:
        return f"SalesSourceClient(base_url={display_url(self.base_url)!r}, page_size={self.page_size})"

    @property
    def safe_url(self) -> str:
        """The base URL without credentials or query."""
        return display_url(self.base_url)

    def close(self) -> None:
        self._http.clear()

    def __enter__(self) -> "SalesSourceClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- public calls -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """GET /v1/health (no token sent); the parsed body, whose status is "ok"."""

        def parse(body: bytes) -> dict[str, Any]:
            try:
                payload = contract.loads_exact(body)
            except ValueError as exc:
                raise _InvalidResponse(f"health body is not JSON: {exc}") from None
            if not isinstance(payload, dict) or payload.get("status") != "ok":
                raise _InvalidResponse(f"health body is not {{'status': 'ok'}}: {str(payload)[:100]}")
            return payload

        return self._request(contract.HEALTH_PATH, {}, parse, authenticated=False)

    def iter_pages(self, order_date: date | str) -> Iterator[Page]:
        """Every page of one UTC day, in order; see the module docstring for guarantees."""
        day = order_date.isoformat() if isinstance(order_date, date) else date.fromisoformat(order_date).isoformat()
        seen: set[str] = set()
        abandoned = threading.Event()
        # With prefetch, one worker, one page ahead: the next page's request and parse (the
        # socket wait and decoding) overlap the caller's hashing and writing of this page
        # (which release the GIL), while memory stays bounded by a few pages.
        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sales-source-page") if self.prefetch else None
        number, cursor = 1, None
        try:
            pending = ahead.submit(self._fetch_page, day, 1, None, abandoned) if ahead else None
            while True:
                page = pending.result() if pending else self._fetch_page(day, number, cursor, None)
                number, next_cursor = page.number, page.next_cursor
                if next_cursor is not None:
                    if next_cursor == "":
                        raise SourcePaginationError(f"page {number} of {day} has an empty next_cursor")
                    if next_cursor in seen:
                        raise SourcePaginationError(
                            f"page {number} of {day} repeats an earlier cursor: the source's paging loops")
                    if number >= self.max_pages:
                        raise SourcePaginationError(
                            f"{day} has more than max_pages={self.max_pages} pages; raise max_pages or page_size")
                    seen.add(next_cursor)
                    if ahead:
                        pending = ahead.submit(self._fetch_page, day, number + 1, next_cursor, abandoned)
                yield page
                if next_cursor is None:
                    return
                number, cursor = number + 1, next_cursor
        finally:
            # A closed iterator (the caller failed or stopped) must not keep retrying in the
            # background: the fetch ahead gives up before its next attempt or backoff.
            abandoned.set()
            if ahead:
                ahead.shutdown(wait=False, cancel_futures=True)

    def _fetch_page(self, day: str, number: int, cursor: str | None, abandoned: threading.Event | None) -> Page:
        params = {"date": day, "page_size": str(self.page_size)}
        if cursor is not None:
            params["cursor"] = cursor
        position = f"page {number}" + ("" if cursor is None else f" (cursor {_short(cursor)!r})")
        return self._request(contract.ORDERS_PATH, params, lambda body: _parse_page(body, number, cursor),
                             abandoned=abandoned, position=position)

    # -- transport ----------------------------------------------------------------------------

    def _request(self, path: str, params: dict[str, str], parse: Callable[[bytes], Any],
                 authenticated: bool = True, abandoned: threading.Event | None = None,
                 position: str = "") -> Any:
        url = self.base_url + path
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate", "User-Agent": USER_AGENT}
        if authenticated:
            headers["Authorization"] = f"Bearer {self._token}"
        what = f"GET {path}" + (f" date={params['date']}" if "date" in params else "")
        last_problem = ""
        for attempt in range(1, self.max_attempts + 1):
            if abandoned is not None and abandoned.is_set():
                raise _Abandoned()
            retry_after = None
            self.stats.requests += 1
            try:
                # This loop owns retries; urllib3 only follows redirects (as requests did),
                # dropping the Authorization header on a cross-host one.
                response = self._http.request("GET", url, fields=params, headers=headers,
                                              timeout=self._timeout, retries=_NO_RETRIES)
            except _TRANSIENT_EXCEPTIONS as exc:
                reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
                last_problem = f"{type(reason).__name__}"
            else:
                body = response.data
                self.stats.bytes_received += len(body)
                status = response.status
                if status == 200:
                    try:
                        return parse(body)
                    except _InvalidResponse as exc:
                        last_problem = f"invalid response body ({exc})"
                elif status == 429 or status == 408 or status >= 500:
                    last_problem = f"HTTP {status}"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
                elif 400 <= status < 500:
                    raise SourceClientError(self._client_error_message(status, body, what))
                else:
                    last_problem = f"unexpected HTTP {status}"
            if retry_after is not None and retry_after > self.max_retry_after:
                # Sleeping for an hour inside a step (or a Lambda) helps no one: fail this
                # attempt now and let the orchestrator's retry policy come back later.
                raise SourceTransientError(self._redact(
                    f"sales source at {display_url(self.base_url)} answered {last_problem} to {what} "
                    f"with Retry-After {retry_after:.0f} s, above max_retry_after={self.max_retry_after:g} s; "
                    f"not waiting that long in-process: retry the run later."))
            if attempt == self.max_attempts:
                break
            delay = self._delay(attempt, retry_after)
            self.stats.retries += 1
            self.stats.waits.append(delay)
            if abandoned is not None and abandoned.is_set():
                raise _Abandoned()
            asked = "" if retry_after is None else f", Retry-After {retry_after:g} s"
            # Redacted as a whole: an error kind or a bad body's excerpt comes from the server.
            LOGGER.warning(self._redact(
                f"sales source {what}{' ' + position if position else ''}: attempt {attempt} of "
                f"{self.max_attempts} failed ({last_problem}{asked}); retrying in {delay:.2f} s"))
            self._sleep(delay)
        raise SourceTransientError(self._redact(
            f"sales source at {display_url(self.base_url)} still failing after {self.max_attempts} "
            f"attempts of {what}: {last_problem}. Check that {URL_ENV_VAR} points at a healthy source."))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next try: backoff+jitter, or the server's Retry-After when longer."""
        backoff = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        # "Equal jitter": at least half the backoff, so retries still spread out.
        jittered = backoff / 2 + self._rng.random() * backoff / 2
        if retry_after is None:
            return jittered
        # A Retry-After shorter than our backoff (0, or an HTTP-date already past) must
        # not turn the retries into a burst; one above the maximum was rejected earlier.
        return min(max(retry_after, jittered), self.max_retry_after)

    def _client_error_message(self, status: int, body: bytes, what: str) -> str:
        server_says = ""
        try:
            payload = json.loads(body)
            if isinstance(payload, dict) and isinstance(payload.get("error"), str):
                server_says = payload["error"][:_MAX_SERVER_MESSAGE]
        except ValueError:
            pass
        where = display_url(self.base_url)
        if status in (401, 403):
            hint = (f"the source did not accept the bearer token; check {TOKEN_ENV_VAR} "
                    f"(and that {URL_ENV_VAR} is the source the token belongs to)")
        elif status == 404:
            hint = f"no such endpoint; check that {URL_ENV_VAR} is the base URL of a Sales Source API"
        else:
            hint = (f"the request was rejected; check {URL_ENV_VAR} points at a source speaking "
                    f"this contract version and the token in {TOKEN_ENV_VAR} is valid")
        detail = f" (source says: {server_says})" if server_says else ""
        return self._redact(f"sales source at {where} answered HTTP {status} to {what}{detail}: {hint}.")

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _short(cursor: str) -> str:
    return cursor if len(cursor) <= _MAX_LOGGED_CURSOR else cursor[:_MAX_LOGGED_CURSOR] + "…"


# No retry inside urllib3 (the client's loop retries); up to 5 redirects followed.
_NO_RETRIES = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5,
                            raise_on_redirect=False, raise_on_status=False)


def _pool_manager(base_url: str) -> urllib3.PoolManager:
    """A pool for `base_url`, through the proxy the environment names (HTTPS_PROXY, NO_PROXY...)
    as requests did, verifying TLS against certifi's roots when installed (requests' choice)."""
    options: dict[str, Any] = {"maxsize": 2}
    try:
        import certifi
    except ImportError:  # urllib3 then uses the system's roots
        pass
    else:
        options["ca_certs"] = certifi.where()
    parts = urlsplit(base_url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)


def _parse_page(body: bytes, number: int, cursor: str | None) -> Page:
    compact = split_compact_page(body)
    if compact is not None:
        fields, lines, units = compact
        records = None
    else:
        fields, items = split_page_body(body)
        records = [value for value, _line in items]
        lines = [line for _value, line in items]
        units = None
    if "next_cursor" not in fields:
        raise _InvalidResponse("body has no next_cursor")
    next_cursor = fields["next_cursor"]
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise _InvalidResponse("next_cursor is neither a string nor null")
    as_of = fields.get("as_of")
    return Page(
        number=number,
        records=records,
        body_lines=tuple(lines),
        next_cursor=next_cursor,
        as_of=as_of if isinstance(as_of, str) else None,
        cursor=cursor,
        body=body,
        line_units=units,
    )
