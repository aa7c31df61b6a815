"""Guards the client's fetch-ahead (`prefetch=True`): while the caller handles page n, page
n+1 is fetched in the background; by default nothing is fetched before it is asked for. The risks: fetching further ahead (memory no longer bounded by a few pages),
an error of page n+1 surfacing before page n is handed over (a landing would lose a page it
could have written, or fail at a different point than the retry rules say), and a closed
iterator that keeps retrying in the background (requests and sleeps after the landing failed)."""
from __future__ import annotations

import threading
import time

import pytest

from sales_assets.source.client import SourceTransientError
from sales_assets_tests.source.conftest import Reply
from sales_assets_tests.source.test_client import DAY, make_client, page_body


def _wait_for(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("prefetch", [False, True])
def test_fetches_at_most_one_page_ahead_and_none_by_default(scripted_server, prefetch):
    server = scripted_server([Reply(200, page_body([{"order_id": f"O{n}"}], f"c{n}")) for n in range(1, 6)]
                             + [Reply(200, page_body([{"order_id": "O6"}], None))])
    with make_client(server.url, "s3cret-token", [], prefetch=prefetch) as client:
        pages = client.iter_pages(DAY)
        for number in range(1, 6):
            page = next(pages)
            assert page.number == number and page.records == [{"order_id": f"O{number}"}]
            _wait_for(lambda: len(server.requests) >= number + prefetch)
            time.sleep(0.1)  # time enough to run further ahead, were it allowed to
            assert len(server.requests) == number + prefetch
        assert [page.number for page in pages] == [6]
    assert len(server.requests) == 6


def test_an_error_of_the_next_page_is_raised_only_when_it_is_asked_for(scripted_server):
    server = scripted_server([Reply(200, page_body([{"order_id": "A"}], "c1")), Reply(503, b"{}")])
    sleeps: list[float] = []
    with make_client(server.url, "s3cret-token", sleeps, max_attempts=3, prefetch=True) as client:
        pages = client.iter_pages(DAY)
        assert next(pages).records == [{"order_id": "A"}]  # page 2's failure does not take page 1 away
        with pytest.raises(SourceTransientError, match="3 attempts.*HTTP 503"):
            next(pages)
    assert len(server.requests) == 4 and len(sleeps) == 2


def test_a_closed_iterator_stops_retrying_the_page_ahead(scripted_server):
    server = scripted_server([Reply(200, page_body([{"order_id": "A"}], "c1")), Reply(503, b"{}")])
    first_sleep, release = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:  # the fetch ahead parks in its first backoff
        first_sleep.set()
        release.wait(5)

    with make_client(server.url, "s3cret-token", [], max_attempts=10, prefetch=True) as client:
        client._sleep = sleep
        pages = client.iter_pages(DAY)
        next(pages)
        assert first_sleep.wait(5)
        pages.close()  # the caller gave up (e.g. its write failed)
        release.set()
        time.sleep(0.3)
        assert len(server.requests) == 2  # page 1 and one attempt of page 2: no retry after close
