"""Guards the Spark-native transform against the Python reference of the contract: for several
demo days rich in every kind of fault (all reason codes, re-sends, type drift), every curated and
quarantined row's (order_id, line_number, outcome, money) and the day's figures must equal what
`sales_assets.source.contract` computes from the same landed bytes. A silent drift here breaks
reconciliation with the source."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest

from sales_assets.source import contract
from sales_assets.source.demo_data import DemoDataConfig, iter_orders

from .conftest import write_raw_day

CONFIG = DemoDataConfig(
    seed=11, orders_per_day=260, invalid_line_rate=0.08, resend_rate=0.2,
    type_drift_rate=0.15, extra_field_rate=0.1,
)
# Ordinary days plus the US DST change and a month end (offsets across midnight).
DAYS = ("2026-11-01", "2026-11-20", "2026-11-30")
PAGE_SIZE = 97
MONEY = ("gross", "discount_amount", "net", "tax_amount", "total")


def _pages(day: str) -> list[list[str]]:
    lines = [contract.dumps_exact(record) for record in iter_orders(dt.date.fromisoformat(day), CONFIG)]
    return [lines[start:start + PAGE_SIZE] for start in range(0, len(lines), PAGE_SIZE)]


@pytest.fixture(scope="module")
def curated(tmp_path_factory, spark, curate):
    lake_root = tmp_path_factory.mktemp("reference") / "lake"
    pages_by_day = {day: _pages(day) for day in DAYS}
    for day, pages in pages_by_day.items():
        write_raw_day(lake_root, day, f"run-{day}", pages)
    summary = curate.run(spark, str(lake_root), list(DAYS), log=lambda message: None)
    return lake_root, pages_by_day, summary


def _reference(pages: list[list[str]], day: str):
    records = [contract.parse_jsonl_line(line) for page in pages for line in page]
    return list(contract.iter_unit_outcomes(records, day)), contract.expected_figures(records, day)


def _read(spark, lake_root, table: str, day: str) -> list:
    return spark.read.parquet(f"file://{lake_root}/curated/{table}/order_date={day}").collect()


@pytest.mark.parametrize("day", DAYS)
def test_every_unit_matches_the_reference(curated, spark, day):
    lake_root, pages_by_day, _ = curated
    outcomes, _ = _reference(pages_by_day[day], day)
    expected_lines = Counter(
        (o.order_id, o.line_number, tuple(o.line[k] for k in MONEY), o.line["unit_price"], o.line["quantity"])
        for o in outcomes if o.outcome == contract.CURATED
    )
    expected_quarantine = Counter(
        (o.order_id, o.line_number, o.outcome) for o in outcomes
        if o.outcome not in (contract.CURATED, contract.SUPERSEDED)
    )
    actual_lines = Counter(
        (r["order_id"], r["line_number"], tuple(r[k] for k in MONEY), r["unit_price"], r["quantity"])
        for r in _read(spark, lake_root, "order_lines", day)
    )
    actual_quarantine = Counter(
        (r["order_id"], r["line_number"], r["reason"]) for r in _read(spark, lake_root, "quarantine", day)
    )
    assert actual_lines == expected_lines
    assert actual_quarantine == expected_quarantine


def test_figures_match_the_reference_and_cover_every_reason(curated):
    _, pages_by_day, summary = curated
    seen_reasons = set()
    for day in DAYS:
        _, expected = _reference(pages_by_day[day], day)
        figure = summary["figures_by_day"][day]
        assert figure == {
            "raw_lines": expected["raw_lines"], "curated_lines": expected["curated_lines"],
            "quarantine_lines": expected["quarantine_lines"],
            "superseded_lines": expected["superseded_lines"], "net": str(expected["net"]),
        }
        assert summary["quarantine_by_reason"][day] == dict(sorted(expected["quarantine_by_reason"].items()))
        assert expected["superseded_lines"] > 0
        assert Decimal(figure["net"]) > 0
        seen_reasons |= set(expected["quarantine_by_reason"])
    # The fixture is only a strong check if every rule fired somewhere.
    assert seen_reasons == set(contract.QUARANTINE_REASONS)
