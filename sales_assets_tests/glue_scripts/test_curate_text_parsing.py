"""Guards the Glue script's cheap text paths against the contract: RFC 3339 timestamps cut by
substrings after one pattern match (integer day arithmetic instead of make_timestamp), and
pages split on a single "\\n" when they hold no carriage return. A drift here would move orders
between days or split lines differently from the Python reference, silently."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from sales_assets.source.contract import parse_rfc3339

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
