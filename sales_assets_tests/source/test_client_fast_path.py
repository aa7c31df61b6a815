"""Guards the client's fast page split (`split_compact_page`) against the exact parser.

Risk: the fast path finds item boundaries by searching for separators and parsing each
piece with orjson; a boundary found inside a string, a blank kept around an item, or a
body the exact parser rejects but the fast path accepts would land bytes that differ
from what the source sent (or accept a corrupt page) with no error anywhere. Whatever
body it is given, the fast path must give the exact parser's answer or decline (None).
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sales_assets.source import contract as c
from sales_assets.source.client import _InvalidResponse, split_compact_page, split_page_body


def exact(body: bytes):
    """(fields without data, lines, line units) by the exact parser, or None if it rejects."""
    try:
        fields, items = split_page_body(body)
    except _InvalidResponse:
        return None
    fields = dict(fields)
    fields.pop("data")
    return fields, [line for _value, line in items], sum(c.line_units(value) for value, _line in items)


def assert_agrees(body: bytes, must_take: bool = False) -> None:
    fast = split_compact_page(body)
    if must_take:
        assert fast is not None, body
    if fast is not None:
        assert exact(body) == fast, body


# Texts made of the very separators the fast path searches for.
TRICKY_TEXT = st.lists(st.sampled_from(['},{', ',{"order_id":', ']', '[', '"', '\\', ',', ' ', 'é', 'a', '}']),
                       max_size=6).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), TRICKY_TEXT,
                    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: c.JsonNumber(str(d))))
LINE = st.dictionaries(st.sampled_from(["line_number", "order_id", "q", "p"]), SCALARS, max_size=3)
ORDER = st.fixed_dictionaries({"order_id": TRICKY_TEXT},
                              optional={"lines": st.lists(LINE, max_size=3), "note": TRICKY_TEXT, "n": SCALARS})
ITEM = st.one_of(ORDER, ORDER, ORDER, SCALARS, st.lists(SCALARS, max_size=2), LINE)
SEPARATORS = st.sampled_from([",", ",", ",", ", ", " ,", ",\n"])


@st.composite
def page_bodies(draw):
    items = draw(st.lists(ITEM, max_size=6))
    texts = [c.dumps_exact(item) for item in items]
    data = "[" + draw(st.sampled_from(["", " "])) + "".join(
        text + (draw(SEPARATORS) if i < len(texts) - 1 else "") for i, text in enumerate(texts)) + "]"
    tail = draw(st.sampled_from(['"next_cursor":null', '"next_cursor":"c,{\\"order_id\\":]"', '"next_cursor":null,"as_of":"x]"',
                                 '"next_cursor":7', '"as_of":"x"']))
    body = '{"data":' + data + "," + tail + "}" + draw(st.sampled_from(["", "\n", " x"]))
    return body.encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page_bodies())
def test_fast_split_gives_the_exact_answer_or_declines(body):
    assert_agrees(body)


def test_demo_shaped_page_takes_the_fast_path_with_odd_items():
    items = [b'{"order_id":"A","lines":[{"q":1,"p":19.990},{"q":2,"p":0.10}]}', b"null",
             b'{"lines":[{"q":1}],"order_id":"no first key"}', b'"text, with },{\\"order_id\\": inside"',
             b'{"order_id":"B","note":"],{\\"order_id\\":"}', b"[1,2.50]"]
    body = b'{"data":[' + b",".join(items) + b'],"next_cursor":"abc","as_of":"2026-11-21T00:00:00Z"}'
    fields, lines, units = split_compact_page(body) or pytest.fail("fast path declined a compact page")
    assert lines == items  # byte for byte
    assert fields == {"next_cursor": "abc", "as_of": "2026-11-21T00:00:00Z"} and units == 2 + 1 + 1 + 1 + 1 + 1


@pytest.mark.parametrize("body", [
    b'{"data":[{"order_id":"A"}, {"order_id":"B"}],"next_cursor":null}',  # blanks between items
    b'{"next_cursor":null,"data":[{"order_id":"A"}]}',  # data not first
    b'{"data":[\n  {"order_id":"A",\n "x":1}\n],"next_cursor":null}',  # pretty-printed
    b'{"data":[{"order_id":"A","lines":[{"order_id":"A"},{"order_id":"A"}]}],"next_cursor":null}',
    b'{"data":[{"order_id":"A","x":1e400,"y":123456789012345678901234567890}],"next_cursor":null}',
])
def test_unusual_layouts_agree_with_the_exact_parser(body):
    assert_agrees(body)


@pytest.mark.parametrize("body", [
    b'{"data":[{"order_id":"A"},],"next_cursor":null}', b'{"data":[{"order_id":"A"}],"next_cursor":null} trailing',
    b'{"data":[{"order_id":"A"},{"order_id":NaN}],"next_cursor":null}', b'{"data":[{"order_id":"\xff"}],"next_cursor":null}',
    b'{"data":[{"order_id":"A"}{"order_id":"B"}],"next_cursor":null}', b'{"data":[{"order_id":"A"}',
    b'{"data":{},"next_cursor":null}', b'{"data":[],"next_cursor":null,}',
])
def test_bodies_the_exact_parser_rejects_are_declined(body):
    assert exact(body) is None
    assert split_compact_page(body) is None


def test_a_large_demo_page_is_split_exactly(demo_source):
    import requests

    response = requests.get(demo_source.url + "/v1/orders", params={"date": "2026-11-20", "page_size": "10000"},
                            headers={"Authorization": f"Bearer {demo_source.token}"}, timeout=30)
    assert_agrees(response.content, must_take=True)
    assert json.loads(response.content)["data"]
