"""Risk guarded: the backfill comparison (`sales-pipeline bench --backfill-compare`) reports a
wrong verdict (ratio inverted, a failed run counted as a pass, the target claimed at a scale it
does not apply to) or overwrites the stage bench's `latest.*` files. Built from measured rows
without running the two Dagster jobs (about two Spark runs: too slow for the suite; the command
itself was run by hand at --orders 30 --days 2)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sales_assets.bench import harness
from sales_assets.bench.measure import Measured


def row(name: str, wall: float, ok: bool = True, orders: int = 100) -> dict:
    measured = Measured(command=[name], returncode=0 if ok else 1, wall_seconds=wall, peak_rss_bytes=1,
                        peak_tree_rss_bytes=1, leader_maxrss_bytes=1,
                        processes={}, result={"success": ok, "orders": orders, "rows": orders * 3},
                        stderr_tail="")
    built = harness._row(name, measured, orders * 3, 0, (1, 10))
    built["orders"] = orders
    return built


def report(backfill: dict, one_day: dict, orders: int, days: int) -> dict:
    made = {"mode": "backfill_compare", "started_at": "2026-03-02T00:00:00+00:00", "orders_per_day": orders,
            "days": [f"2026-03-{i + 2:02d}" for i in range(days)], "machine": harness.machine(),
            "stages": {"backfill_end_to_end": backfill, "one_day_end_to_end": one_day},
            "generate_seconds": 1.0, "orders": backfill["orders"]}
    harness._ratios(made["stages"])
    made["targets"] = harness.targets(made)
    return made


def test_ratio_verdict_and_scale():
    (line,) = report(row("backfill_end_to_end", 90.0), row("one_day_end_to_end", 30.0), 10_000, 30)["targets"]
    assert line["target"] == harness.BACKFILL_TARGET
    assert line["passed"] is True and line["applies"] is True and line["measured"].startswith("3.0x")
    (line,) = report(row("backfill_end_to_end", 91.0), row("one_day_end_to_end", 30.0), 10_000, 30)["targets"]
    assert line["passed"] is False
    # A failed run is never a pass, however fast.
    (line,) = report(row("backfill_end_to_end", 1.0, ok=False), row("one_day_end_to_end", 30.0), 10_000, 30)["targets"]
    assert line["passed"] is False
    (line,) = report(row("backfill_end_to_end", 1.0), row("one_day_end_to_end", 30.0), 30, 2)["targets"]
    assert line["applies"] is False and "indicative" in harness.target_line(line)
    # Below the target's scale a fast run is no PASS.
    assert harness.target_line(line).startswith("- ---- ")


def test_results_keep_the_stage_bench_latest(tmp_path):
    (tmp_path / "latest.md").write_text("stage bench")
    made = report(row("backfill_end_to_end", 50.0), row("one_day_end_to_end", 60.0), 30, 2)
    json_path, md_path = harness.write_results(made, tmp_path)
    assert (tmp_path / "latest.md").read_text() == "stage bench"
    assert json_path.name.startswith("backfill-") and json_path.name.endswith("-30x2.json")
    assert json.loads((tmp_path / "latest-backfill.json").read_text())["targets"][0]["passed"] is True
    markdown = md_path.read_text()
    assert "| backfill_end_to_end | yes |" in markdown and "| one_day_end_to_end | yes |" in markdown
    assert "- ---- backfill 30 days x 10k" in markdown  # 2 x 30 orders: below the scale


def test_stage_bench_points_to_the_compare_command():
    made = {"stages": {}, "orders_per_day": 1000, "days": ["2026-03-02"]}
    (line,) = [t for t in harness.targets(made) if t["target"] == harness.BACKFILL_TARGET]
    assert line["passed"] is None and "--backfill-compare" in line["measured"]


def test_cli_accepts_the_flag():
    completed = subprocess.run([str(Path(sys.executable).with_name("sales-pipeline")), "bench", "--help"],
                               capture_output=True, text=True, check=True)
    assert "--backfill-compare" in completed.stdout
