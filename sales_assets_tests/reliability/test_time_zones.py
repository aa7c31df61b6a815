"""Guards fault 13 (time zones): an order stamped in any UTC offset — 23:59:59-05:00,
00:00:00+14:00, the hours around a DST change — belongs to exactly one UTC-day partition.
The contract reference (``sales_assets.source.contract``) decides ``wrong_order_date``; the
demo generator must only ever stamp a clean order on its own UTC day. If either drifts, an
order would be quarantined in both candidate days (lost) or accepted in two (duplicated)."""
from __future__ import annotations

import datetime as dt
import zoneinfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sales_assets.source import contract
from sales_assets.source.demo_data import DemoDataConfig, iter_orders

UTC = dt.timezone.utc
# RFC 3339 allows any offset up to ±23:59; real zones span -12:00..+14:00.
OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)
INSTANTS = st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2099, 12, 30)).map(
    lambda naive: naive.replace(microsecond=0, tzinfo=UTC))


def stamp(instant: dt.datetime, offset_minutes: int) -> str:
    """``instant`` written as RFC 3339 local time in the given offset (independent of the generator)."""
    local = instant.astimezone(dt.timezone(dt.timedelta(minutes=offset_minutes)))
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{hours:02d}:{minutes:02d}"


def order(order_timestamp: str) -> dict:
    return {
        "order_id": "SO-TZ", "order_timestamp": order_timestamp, "updated_at": "2026-01-01T00:00:00Z",
        "status": "completed", "channel": "web", "store_id": None, "currency": "USD",
        "customer": {"customer_id": "C-1"},
        "lines": [{"line_number": 1, "product_id": "P-1", "quantity": 1, "unit_price": 10}],
    }


def accepting_days(order_timestamp: str, around: dt.date) -> list[dt.date]:
    """The days (of the five around ``around``) whose partition accepts the order."""
    days = [around + dt.timedelta(days=delta) for delta in range(-2, 3)]
    accepted = []
    for day in days:
        [verdict] = contract.validate_record(order(order_timestamp), day)
        if verdict.reason is None:
            accepted.append(day)
        else:
            assert verdict.reason == contract.WRONG_ORDER_DATE, verdict
    return accepted


@settings(max_examples=300, deadline=None)
@given(instant=INSTANTS, offset=OFFSETS)
def test_any_offset_lands_in_exactly_its_utc_day(instant, offset):
    text = stamp(instant, offset)
    assert contract.parse_rfc3339(text) == instant
    # Local date differs from the UTC date for large offsets; the partition follows UTC only.
    assert accepting_days(text, instant.astimezone(dt.timezone(dt.timedelta(minutes=offset))).date()) == [
        instant.date()]


def test_the_named_edge_stamps():
    assert accepting_days("2026-11-20T23:59:59-05:00", dt.date(2026, 11, 20)) == [dt.date(2026, 11, 21)]
    assert accepting_days("2026-11-21T00:00:00+14:00", dt.date(2026, 11, 21)) == [dt.date(2026, 11, 20)]
    assert accepting_days("2026-11-20T23:59:59Z", dt.date(2026, 11, 20)) == [dt.date(2026, 11, 20)]
    assert accepting_days("2026-11-21T00:00:00.000+00:00", dt.date(2026, 11, 21)) == [dt.date(2026, 11, 21)]


# Days with a DST change in the US or the EU (and a quiet day between them).
DST_DAYS = [dt.date(2026, 3, 8), dt.date(2026, 3, 29), dt.date(2026, 10, 25), dt.date(2026, 11, 1),
            dt.date(2026, 11, 2), dt.date(2027, 3, 14), dt.date(2027, 10, 31)]
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/Berlin", "Europe/London",
         "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Lord_Howe"]


@settings(max_examples=200, deadline=None)
@given(day=st.sampled_from(DST_DAYS), zone=st.sampled_from(ZONES),
       second=st.integers(min_value=-86400, max_value=2 * 86400 - 1))
def test_wall_clock_stamps_across_dst_changes_land_in_one_utc_day(day, zone, second):
    # A wall clock in a DST zone: the offset written is the zone's offset at that instant.
    instant = dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(seconds=second)
    local = instant.astimezone(zoneinfo.ZoneInfo(zone))
    offset_minutes = int(local.utcoffset().total_seconds() // 60)
    text = stamp(instant, offset_minutes)
    assert accepting_days(text, local.date()) == [instant.date()]


@settings(max_examples=25, deadline=None)
@given(day=st.one_of(st.sampled_from(DST_DAYS),
                     st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2035, 12, 31))),
       seed=st.integers(min_value=0, max_value=2**31))
def test_the_generator_stamps_every_clean_order_on_its_own_utc_day(day, seed):
    config = DemoDataConfig(seed=seed, orders_per_day=60, invalid_line_rate=0.0, resend_rate=0.2)
    offsets = set()
    for record in iter_orders(day, config):
        stamp_text = record["order_timestamp"]
        instant = contract.parse_rfc3339(stamp_text)
        assert instant is not None and instant.date() == day, stamp_text
        offsets.add(stamp_text[19:])
        assert all(verdict.reason is None for verdict in contract.validate_record(record, day)), record
        for other in (day - dt.timedelta(days=1), day + dt.timedelta(days=1)):
            assert {v.reason for v in contract.validate_record(record, other)} == {contract.WRONG_ORDER_DATE}
    assert len(offsets) > 1  # the property is exercised with local offsets, not only Z
