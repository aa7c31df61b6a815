"""Guards the demo data generator.

Risk: non-deterministic or unrealistic demo days would make every downstream test and
benchmark flaky or meaningless: a day must be byte-identical across runs and processes,
clean orders must honour the contract (UTC day, types, currencies), and the injected
violations / re-sends must produce exactly the reasons and dedup cases they claim to.
"""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest

from sales_assets.source import contract as c
from sales_assets.source import demo_data as d

DAY = date(2026, 11, 20)
SMALL = d.DemoDataConfig(orders_per_day=150)
CLEAN = d.DemoDataConfig(orders_per_day=300, invalid_line_rate=0, resend_rate=0)
CURRENCY_BY_COUNTRY = {row[0]: row[1] for row in d.COUNTRIES}
TAX_BY_COUNTRY = {row[0]: Decimal(row[2]) for row in d.COUNTRIES}


def dump_day(order_date, config):
    return "\n".join(c.dumps_exact(r) for r in d.generate_orders(order_date, config))


def test_same_date_and_seed_give_byte_identical_days_independent_of_history():
    first = dump_day(DAY, SMALL)
    dump_day(DAY + timedelta(days=1), SMALL)
    dump_day(date(2021, 3, 14), d.DemoDataConfig(orders_per_day=50, seed=99))
    assert dump_day(DAY, SMALL) == first
    assert "\n".join(c.dumps_exact(r) for r in d.iter_orders(DAY, SMALL)) == first
    assert dump_day(DAY + timedelta(days=1), SMALL) != first
    assert dump_day(DAY, d.DemoDataConfig(orders_per_day=150, seed=8)) != first


def test_day_is_identical_in_another_process_with_another_hash_seed():
    here = hashlib.sha256(dump_day(DAY, SMALL).encode()).hexdigest()
    script = (
        "import hashlib; from datetime import date\n"
        "from sales_assets.source import contract as c, demo_data as d\n"
        "cfg = d.DemoDataConfig(orders_per_day=150)\n"
        "text = '\\n'.join(c.dumps_exact(r) for r in d.generate_orders(date(2026, 11, 20), cfg))\n"
        "print(hashlib.sha256(text.encode()).hexdigest())\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


@pytest.mark.parametrize("order_date", [
    DAY, date(2026, 3, 8), date(2026, 3, 29), date(2026, 11, 1), date(2025, 12, 31), date(2026, 1, 1),
    date(2024, 2, 29),
])
def test_clean_orders_match_the_contract(order_date):
    records = d.generate_orders(order_date, CLEAN)
    assert records
    offsets = set()
    for record in records:
        assert isinstance(record, dict)
        for name in c.ORDER_REQUIRED_FIELDS:
            assert name in record, name
        assert isinstance(record["order_id"], str) and record["order_id"]
        ordered = c.parse_rfc3339(record["order_timestamp"])
        assert ordered is not None and ordered.date() == order_date
        offsets.add(record["order_timestamp"][19:])
        assert c.parse_rfc3339(record["updated_at"]) >= ordered
        assert record["status"] in c.STATUSES and record["channel"] in c.CHANNELS
        assert (record["store_id"] is not None) == (record["channel"] == "store")
        customer = record["customer"]
        assert customer["customer_id"] and customer["country"] in CURRENCY_BY_COUNTRY
        assert record["currency"] == CURRENCY_BY_COUNTRY[customer["country"]]
        assert all(customer[k] for k in ("name", "segment", "region", "city"))
        assert 1 <= len(record["lines"]) <= 5
        assert [ln["line_number"] for ln in record["lines"]] == list(range(1, len(record["lines"]) + 1))
        for ln in record["lines"]:
            for name in c.LINE_REQUIRED_FIELDS + ("sku", "product_name", "category", "brand"):
                assert name in ln, name
            price = c.to_decimal(ln["unit_price"])
            assert price > 0 and c.decimal_places(price) <= 2
            assert c.to_decimal(ln.get("discount")) in (None, *d.DISCOUNTS)
            assert ln["tax_rate"] == TAX_BY_COUNTRY[customer["country"]]
        assert [v.reason for v in c.validate_record(record, order_date)] == [None] * len(record["lines"])
    assert len(offsets) >= 4  # Z and several local offsets
    figures = c.expected_figures(records, order_date)
    assert figures["quarantine_lines"] == 0 and figures["superseded_lines"] == 0


def test_a_day_is_realistically_varied():
    records = [r for r in d.generate_orders(DAY, d.DemoDataConfig(orders_per_day=600)) if isinstance(r, dict)]
    customers = [r["customer"] for r in records if isinstance(r.get("customer"), dict)]
    assert len({cu.get("country") for cu in customers}) >= 6
    assert len({cu.get("region") for cu in customers}) >= 12
    assert {r.get("channel") for r in records} >= set(c.CHANNELS)
    assert {r.get("status") for r in records} >= set(c.STATUSES)
    assert {r.get("currency") for r in records} >= {"USD", "EUR", "GBP"}
    lines = [ln for r in records if isinstance(r.get("lines"), list) for ln in r["lines"] if isinstance(ln, dict)]
    assert len({ln.get("category") for ln in lines}) >= 8
    assert len({ln.get("product_id") for ln in lines}) >= 150
    assert Counter(len(r["lines"]) for r in records if isinstance(r.get("lines"), list)).keys() >= {1, 2, 3, 4, 5}
    # a repeat customer shows up within the day (heavy-tailed loyalty)
    assert Counter(cu.get("customer_id") for cu in customers).most_common(1)[0][1] >= 3
    # the source evolves: unknown fields and coercible type drift appear
    known = set(c.ORDER_REQUIRED_FIELDS) | {"store_id"}
    assert any(set(r) - known for r in records)
    assert any(isinstance(ln.get("quantity"), str) or isinstance(ln.get("unit_price"), str) for ln in lines)


def test_volume_follows_weekday_and_season():
    config = d.DemoDataConfig(orders_per_day=1000)
    year = [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    counts = {day: d.order_count(day, config) for day in year}
    mean = sum(counts.values()) / len(counts)
    assert 0.9 * 1000 < mean < 1.1 * 1000
    saturdays = [n for day, n in counts.items() if day.weekday() == 5]
    tuesdays = [n for day, n in counts.items() if day.weekday() == 1]
    assert sum(saturdays) / len(saturdays) > 1.15 * sum(tuesdays) / len(tuesdays)
    december = [n for day, n in counts.items() if day.month == 12]
    february = [n for day, n in counts.items() if day.month == 2]
    assert sum(december) / len(december) > 1.3 * sum(february) / len(february)
    assert counts[date(2026, 11, 27)] == max(counts.values())  # Black Friday
    assert len(d.generate_orders(DAY, d.DemoDataConfig(orders_per_day=0))) == 0


@pytest.mark.parametrize("reason", list(d.CORRUPTIONS))
def test_each_injected_violation_yields_exactly_its_reason(reason):
    corrupt = d.CORRUPTIONS[reason]
    clean = d.generate_orders(DAY, CLEAN)
    rng = random.Random(reason)
    for record in clean[:60]:
        utc = c.parse_rfc3339(record["order_timestamp"])
        offset = 0 if record["order_timestamp"].endswith("Z") else (
            (1 if record["order_timestamp"][19] == "+" else -1)
            * (int(record["order_timestamp"][20:22]) * 60 + int(record["order_timestamp"][23:25])))
        broken = corrupt(rng, d._copy_order(record), {"utc": utc, "offset": offset})
        got = Counter(v.reason for v in c.validate_record(broken, DAY))
        assert set(got) - {None} == {reason}, (reason, c.dumps_exact(broken))
        if reason in c.LINE_REASONS:
            assert got[reason] == 1


def test_default_rates_cover_every_reason_and_reconcile():
    config = d.DemoDataConfig(orders_per_day=800, invalid_line_rate=0.15)
    records = d.generate_orders(DAY, config)
    figures = c.expected_figures(records, DAY)
    assert set(figures["quarantine_by_reason"]) == set(c.QUARANTINE_REASONS)
    assert figures["raw_lines"] == figures["curated_lines"] + figures["quarantine_lines"] + figures["superseded_lines"]
    default = c.expected_figures(d.generate_orders(DAY), DAY)
    assert 0.003 < default["quarantine_lines"] / default["raw_lines"] < 0.05
    assert 0.005 < default["superseded_lines"] / default["raw_lines"] < 0.06


def test_resends_come_later_with_newer_equal_or_stale_updated_at():
    config = d.DemoDataConfig(orders_per_day=600, resend_rate=0.25, invalid_line_rate=0)
    records = d.generate_orders(DAY, config)
    positions: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        positions.setdefault(record["order_id"], []).append(index)
    pairs = [(records[a], records[b]) for a, b in (p for p in positions.values() if len(p) == 2)]
    assert len(pairs) > 100 and all(len(p) <= 2 for p in positions.values())
    kinds = Counter()
    for earlier, later in pairs:
        assert c.dumps_exact(earlier) != c.dumps_exact(later)  # status or quantity changed
        first, second = c.parse_rfc3339(earlier["updated_at"]), c.parse_rfc3339(later["updated_at"])
        kinds["newer" if second > first else "equal" if second == first else "stale"] += 1
    assert kinds["newer"] > kinds["equal"] > 0 and kinds["stale"] > 0
    figures = c.expected_figures(records, DAY)
    assert figures["superseded_lines"] == sum(
        c.line_units(earlier if c.dedup_rank(later) >= c.dedup_rank(earlier) else later) for earlier, later in pairs)


def test_iter_orders_is_lazy():
    gen = d.iter_orders(DAY, d.DemoDataConfig(orders_per_day=200_000))
    first = next(gen)
    assert first["order_id"].startswith("SO-20261120-")
    gen.close()
