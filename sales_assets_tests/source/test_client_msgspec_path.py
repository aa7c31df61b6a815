"""Guards the msgspec shortcut of the fast page split (`_split_with_msgspec`, taken for ASCII
pages of objects before the orjson loop). Risk: msgspec skips item values without building
them, so it could accept a page the exact parser rejects (invalid UTF-8 in a skipped string,
an integer longer than Python converts), count line units differently (odd or repeated
`lines` keys) or hand bytes other than the item's text; each would land a corrupt or
different page with no error. It must give the exact parser's answer or decline."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sales_assets.source import client
from sales_assets.source import contract as c
from sales_assets_tests.source.test_client_fast_path import assert_agrees, exact

pytest.importorskip("msgspec")

ASCII_TEXT = st.lists(st.sampled_from(['},{', ',{"order_id":', ']', '[', '"', '\\', ',', ' ', 'a', '\u00e9']),
                      max_size=6).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), ASCII_TEXT,
                    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: c.JsonNumber(str(d))))
LINES = st.one_of(st.lists(st.dictionaries(st.sampled_from(["q", "p"]), SCALARS, max_size=2), max_size=3), SCALARS)
ORDER = st.fixed_dictionaries({"order_id": ASCII_TEXT}, optional={"lines": LINES, "n": SCALARS})


def _body(items: list[str], tail: str = '"next_cursor":null') -> bytes:
    return ('{"data":[' + ",".join(items) + "]," + tail + "}").encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ORDER, min_size=1, max_size=6))
def test_pages_of_objects_agree_with_the_exact_parser(orders):
    # dumps_exact escapes non-ASCII, so these pages are ASCII: the shortcut's own ground.
    assert_agrees(_body([c.dumps_exact(order) for order in orders]), must_take=True)


def test_a_demo_shaped_page_takes_the_shortcut():
    items = [b'{"order_id":"A","lines":[{"q":1,"p":19.990},{"q":2,"p":0.10}]}', b'{"order_id":"B","lines":[]}',
             b'{"order_id":"C","note":"],{\\"order_id\\":"}', b'{"order_id":"D","lines":null}']
    body = _body([item.decode() for item in items])
    start = client._DATA_FIRST.match(body).end()
    assert client._split_with_msgspec(body, start) == (items, 2 + 1 + 1 + 1, start + len(b",".join(items)))
    assert_agrees(body, must_take=True)


@pytest.mark.parametrize("body", [
    _body(['{"order_id":"A","x":' + "9" * 4301 + "}"]),  # the exact parser refuses it: so must the shortcut
    b'{"data":[{"order_id":"\xff"}],"next_cursor":null}',  # not UTF-8 inside a skipped string
])
def test_what_the_exact_parser_rejects_is_declined(body):
    assert exact(body) is None and client.split_compact_page(body) is None


@pytest.mark.parametrize("body", [
    _body(['{"order_id":"A","x":' + "9" * 4300 + "}"]),  # as long as Python converts: accepted
    _body(['{"order_id":"A","lines":[1],"lines":[1,2]}']),  # a repeated key: the last one counts
    _body(['{"order_id":"A","lines":5}', '{"order_id":"B","lines":"x"}']),  # lines not a list: 1 unit each
    _body(['{"order_id":"\\ud800"}', '{"order_id":"\\u00e9"}']),  # escapes, a lone surrogate among them
    _body(['{"order_id":"A"}', "[1,2]", "null"]),  # items that are not objects
])
def test_odd_pages_agree_with_the_exact_parser(body):
    assert_agrees(body)
