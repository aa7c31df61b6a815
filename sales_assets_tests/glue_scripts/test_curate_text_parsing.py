"""Guards the Glue script's cheap text paths against the contract: RFC 3339 timestamps cut by
substrings after one pattern match (integer day arithmetic instead of make_timestamp), and
pages split on a single "\\n" when they hold no carriage return. A drift here would move orders
between days or split lines differently from the Python reference, silently (fault 13 of
RELIABILITY.md: an order in any offset, or stamped by a wall clock across a DST change, must
fall in the same UTC day in the Glue job as in the contract)."""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sales_assets.source.contract import parse_rfc3339
from sales_assets_tests.reliability.test_time_zones import DST_DAYS, INSTANTS, OFFSETS, UTC, ZONES, stamp

from .conftest import write_raw_day

TIMESTAMPS = [
    "2026-11-20T10:00:00Z", "2026-11-20t10:00:00z", "2026-11-20T10:00:00.1Z",
    "2026-11-20T10:00:00.123456789+05:30", "2026-11-20T23:30:00-05:00", "2026-11-20T00:00:00+23:59",
    "2026-11-20T24:00:00Z", "2026-11-20T23:60:00Z", "2026-11-20T18:05:60Z", "2026-11-20T10:00:00+24:00",
    "2026-11-20T10:00:00+23:60", "2026-02-29T10:00:00Z", "2024-02-29T10:00:00Z", "2026-13-01T10:00:00Z",
    "2026-11-00T10:00:00Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00",
    "0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59-01:00",
    "1969-12-31T23:59:59.999999Z", "2026-11-20T10:00:00", "2026-11-20T10:00:00.Z", "2026-11-20 10:00:00Z",
    "2026-11-20T10:00:00+0530", " 2026-11-20T10:00:00Z", "", None,
]


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _micros(value):
    parsed = parse_rfc3339(value)
    return None if parsed is None else (parsed - EPOCH) // dt.timedelta(microseconds=1)


def test_rfc3339_micros_match_the_contract(spark, curate):
    from pyspark.sql import functions as F

    frame = spark.createDataFrame([(index, value) for index, value in enumerate(TIMESTAMPS)], "i int, text string")
    frame = curate.with_rfc3339_micros(frame, {"staged": F.col("text")})
    rows = frame.select("i", "staged", curate.rfc3339_micros(F.col("text")).alias("inline")).collect()
    got = {row["i"]: (row["staged"], row["inline"]) for row in rows}
    for index, value in enumerate(TIMESTAMPS):
        expected = _micros(value)
        assert got[index] == (expected, expected), value


# Fault 13's named edges, and instants on either side of DST changes written in both offsets
# (New York spring forward and fall back, where 01:30 local happens twice; Berlin's fall back).
EDGE_STAMPS = {
    "2026-11-20T23:59:59-05:00": dt.date(2026, 11, 21), "2026-11-21T00:00:00+14:00": dt.date(2026, 11, 20),
    "2026-11-20T23:59:59Z": dt.date(2026, 11, 20), "2026-11-21T00:00:00.000+00:00": dt.date(2026, 11, 21),
    "2026-11-20T23:59:59.999999999-00:00": dt.date(2026, 11, 20), "2026-11-21T00:00:00-23:59": dt.date(2026, 11, 21),
    "2026-11-21T23:59:59+23:59": dt.date(2026, 11, 21), "2026-03-08T01:59:59-05:00": dt.date(2026, 3, 8),
    "2026-03-08T03:00:00-04:00": dt.date(2026, 3, 8), "2026-11-01T01:30:00-04:00": dt.date(2026, 11, 1),
    "2026-11-01T01:30:00-05:00": dt.date(2026, 11, 1), "2026-10-31T20:30:00-04:00": dt.date(2026, 11, 1),
    "2026-10-25T02:30:00+02:00": dt.date(2026, 10, 25), "2026-10-25T02:30:00+01:00": dt.date(2026, 10, 25),
    "2026-10-25T00:30:00+02:00": dt.date(2026, 10, 24),
}


# Beside any offset, the named edges' offsets and UTC itself (which has four spellings).
_ANY_OFFSET = st.one_of(OFFSETS, st.sampled_from([0, -5 * 60, 14 * 60]))


@st.composite
def _offset_stamps(draw) -> str:
    """Any instant in any RFC 3339 offset."""
    return _dressed(draw, stamp(draw(INSTANTS), draw(_ANY_OFFSET)))


@st.composite
def _dst_wall_clock_stamps(draw) -> str:
    """A DST zone's wall clock within a day of one of its changes, with the offset in force."""
    day, zone = draw(st.sampled_from(DST_DAYS)), draw(st.sampled_from(ZONES))
    instant = dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(
        seconds=draw(st.integers(min_value=-86400, max_value=2 * 86400 - 1)))
    offset = instant.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
    return _dressed(draw, stamp(instant, int(offset.total_seconds() // 60)))


def _dressed(draw, text: str) -> str:
    """``text`` (``stamp``'s form) with a fraction of 0-9 digits, and UTC spelled any of its ways."""
    if text.endswith("+00:00"):
        text = text[:19] + draw(st.sampled_from(["+00:00", "-00:00", "Z", "z"]))
    digits = draw(st.text(alphabet="0123456789", max_size=9))
    return text[:19] + ("." + digits if digits else "") + text[19:]


def _drawn_stamps(count: int) -> list[str]:
    """``count`` stamps drawn by hypothesis with a fixed seed, gathered so Spark parses them in
    one DataFrame (one job, every mismatch reported at once) instead of one job per example."""
    drawn: list[str] = []

    @settings(derandomize=True, database=None, max_examples=count, deadline=None)
    @given(st.one_of(_offset_stamps(), _dst_wall_clock_stamps()))
    def collect(text):
        drawn.append(text)

    collect()
    return drawn


@pytest.mark.slow
def test_the_glue_job_assigns_every_offset_and_dst_stamp_the_contracts_utc_day(spark, curate):
    from pyspark.sql import functions as F

    stamps = sorted(set(_drawn_stamps(400))) + list(EDGE_STAMPS)
    assert len(stamps) > 300
    assert sum(1 for text in stamps if text[-6] in "+-" and text[-5:] != "00:00") > 200
    assert sum(1 for text in stamps if text[-1] in "Zz" and "." in text) > 10
    frame = spark.createDataFrame(list(enumerate(stamps)), "i int, text string")
    frame = curate.with_rfc3339_micros(frame, {"micros": F.col("text")})
    rows = frame.select("i", "micros", curate._micros_to_date(F.col("micros")).alias("day")).collect()
    got = {row["i"]: (row["micros"], row["day"]) for row in rows}
    wrong = []
    for index, text in enumerate(stamps):
        instant = parse_rfc3339(text)
        assert instant is not None, text  # every drawn stamp is valid RFC 3339
        expected = (_micros(text), instant.date())
        if got[index] != expected:
            wrong.append(f"{text}: expected (micros, UTC day) {expected}, the Glue job gave {got[index]}")
    assert not wrong, "\n".join(wrong)
    for text, day in EDGE_STAMPS.items():
        assert got[stamps.index(text)][1] == day, text


@pytest.mark.parametrize("endings", ["\n", "\r\n", "\r", "mixed"])
def test_page_lines_split_like_the_contract(spark, curate, tmp_path, endings):
    records = ['{"order_id": "O-%d"}' % n for n in range(5)]
    if endings == "mixed":
        body_lines = [records[0] + "\r", records[1] + "\r" + records[2], "", records[3] + "\r\r", records[4]]
    else:
        # write_raw_day ends every line with "\n"; the other endings are added before it.
        extra = endings[:-1] if endings.endswith("\n") else endings
        body_lines = [record + extra for record in records[:-1]] + [records[-1]]
        if endings == "\r":
            body_lines = [endings.join(records)]
    manifest = write_raw_day(tmp_path, "2026-11-20", "run-1", [body_lines])
    text = "".join(line + "\n" for line in body_lines)
    expected = [(number, value) for number, value in enumerate(re.split(r"\r\n|\r|\n", text), start=1)
                if not re.fullmatch(r"[ \t]*", value)]
    rows = curate.read_lines(spark, curate.Lake(str(tmp_path)), {"2026-11-20": manifest}).collect()
    assert sorted((row["position"], row["value"]) for row in rows) == expected
    assert all(row["line_ok"] for row in rows)
