"""Guards the local sales dashboard: the asset writes a self-contained page (no network
reference, text escaped) to the path it reports, with every chart the issue names; and a
real headless Chromium opens it offline and actually draws the charts (the DOM holds the
SVG bars and the screenshot shows pixels in the bar colour), not a blank page.

Needs Debian's `chromium` (`apt-get install -y chromium`; .ci/run installs it)."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from sales_assets.reporting import dashboard
from sales_assets.reporting.assets import SALES_DASHBOARD, reporting_views, sales_dashboard
from sales_assets_tests.reporting.conftest import DAY_1, DAY_2
from sales_assets_tests.reporting.png import decode_png

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]
EXPECTED_CHARTS = {"quarantine-rate"} | {
    f"{chart}-{currency}" for chart in ("daily-net-revenue", "by-category", "by-region", "by-channel", "top-products")
    for currency in ("USD", "EUR")
}


@pytest.fixture
def dashboard_file(loaded_warehouse, tmp_path):
    target = tmp_path / "out" / "dash.html"
    result = dg.materialize(
        [reporting_views, sales_dashboard],
        resources={"warehouse": loaded_warehouse},
        partition_key=DAY_2.isoformat(),
        run_config={"ops": {sales_dashboard.op.name: {"config": {"output_path": str(target)}}}},
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node(sales_dashboard.op.name)
    assert materialization.asset_key == SALES_DASHBOARD
    assert materialization.metadata["path"].value == str(target.resolve())
    assert materialization.metadata["days"].value == [DAY_1.isoformat(), DAY_2.isoformat()]
    return target


def test_page_is_self_contained_and_holds_every_chart(dashboard_file):
    page = dashboard_file.read_text(encoding="utf-8")
    charts = set(re.findall(r'<svg class="chart" data-chart="([^"]+)"', page))
    assert charts == EXPECTED_CHARTS
    # Nothing to fetch: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"""(src|href)\s*=|@import|url\(|https?://(?!www\.w3\.org/2000/svg)""", page)
    assert "124.00" in page and "garden" in page  # day 1 USD revenue; the garden category


def test_labels_are_escaped():
    data = dashboard.DashboardData(
        days=[DAY_1], daily_net={"USD": [(DAY_1, dashboard._money("1"))]},
        by_category={"USD": [("<script>alert(1)</script>", dashboard._money("1"))]},
        by_region={}, by_channel={}, top_products={}, orders={"USD": 1}, quarantine=[],
    )
    import datetime as dt

    page = dashboard.render_dashboard(data, dt.datetime(2026, 11, 22))
    assert "<script>" not in page and "&lt;script&gt;" in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_headless_chromium_renders_the_charts(dashboard_file, tmp_path):
    url = dashboard_file.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        flags = CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]
        dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        screenshot = tmp_path / "dashboard.png"
        shot = subprocess.run(
            [CHROMIUM, *flags, f"--screenshot={screenshot}", "--window-size=1280,1600", url],
            capture_output=True, text=True, timeout=120,
        )
        assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]

    # The browser parsed the SVG: every chart and its bars are in the rendered DOM.
    rendered = set(re.findall(r'<svg class="chart" data-chart="([^"]+)"', dom.stdout))
    assert rendered == EXPECTED_CHARTS
    written_bars = dashboard_file.read_text(encoding="utf-8").count('class="bar"')
    assert written_bars == 17 and dom.stdout.count('class="bar"') == written_bars

    width, height, rows = decode_png(screenshot.read_bytes())
    assert (width, height) == (1280, 1600)
    bar = bytes.fromhex(dashboard.BAR_COLOR[1:])
    rate = bytes.fromhex(dashboard.RATE_COLOR[1:])
    bar_pixels = rate_pixels = non_white = 0
    for row in rows:
        for x in range(0, len(row), 3):
            pixel = row[x:x + 3]
            bar_pixels += pixel == bar
            rate_pixels += pixel == rate
            non_white += pixel != b"\xff\xff\xff"
    # Drawn bars, not a blank or text-only page: thousands of pixels in each bar colour.
    assert bar_pixels > 2000, bar_pixels
    assert rate_pixels > 500, rate_pixels
    assert non_white > 0.02 * width * height
