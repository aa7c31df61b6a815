"""The local sales dashboard: one static HTML file with inline SVG charts, no network needed.

Callers may rely on:
- `read_dashboard_data(session)` reads the reporting views (never the `sales` tables) into a
  `DashboardData`; `render_dashboard(data, generated_at)` returns the HTML text; both are
  engine-agnostic (DuckDB locally, Redshift on AWS).
- Every chart is an `<svg class="chart" data-chart="<id>">` whose bars are
  `<rect class="bar">` filled with `BAR_COLOR`; charts: daily net revenue, revenue by
  category, by region, by channel and top products (one set per currency, money is never
  summed across currencies) and the daily quarantine rate. All text is HTML-escaped.
- `write_dashboard(path, html)` writes atomically (temp file + rename).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
import importlib.resources
import os
import string
import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from sales_assets.resources.warehouse import WarehouseSession

BAR_COLOR = "#1f6feb"
RATE_COLOR = "#cf222e"
TOP_PRODUCTS = 10
DASHBOARD_FILE = "sales_dashboard.html"
TITLE = "Sales dashboard"


@dataclasses.dataclass
class DashboardData:
    """What the page shows; money as Decimal, per currency."""

    days: list[dt.date]
    daily_net: dict[str, list[tuple[dt.date, Decimal]]]
    by_category: dict[str, list[tuple[str, Decimal]]]
    by_region: dict[str, list[tuple[str, Decimal]]]
    by_channel: dict[str, list[tuple[str, Decimal]]]
    top_products: dict[str, list[tuple[str, Decimal]]]
    orders: dict[str, int]
    quarantine: list[tuple[dt.date, Decimal, int, int]]

    def currencies(self) -> list[str]:
        """Currencies, largest net revenue first."""
        totals = {c: sum((v for _, v in rows), Decimal(0)) for c, rows in self.daily_net.items()}
        return sorted(totals, key=lambda c: (-totals[c], c))


def default_dashboard_path(warehouse_path: str) -> Path:
    """Where the local dashboard lives: beside the warehouse file, in `reports/`."""
    return Path(warehouse_path).parent / "reports" / DASHBOARD_FILE


def _money(value) -> Decimal:
    return Decimal(str(value if value is not None else 0)).quantize(Decimal("0.01"))


def _grouped(rows) -> dict[str, list[tuple]]:
    grouped: dict[str, list[tuple]] = defaultdict(list)
    for currency, label, value in rows:
        grouped[currency].append((label, _money(value)))
    return {c: sorted(v, key=lambda item: (-item[1], str(item[0]))) for c, v in grouped.items()}


def read_dashboard_data(session: WarehouseSession) -> DashboardData:
    """Everything the page charts, over every day the warehouse holds."""
    daily: dict[str, list] = defaultdict(list)
    orders: dict[str, int] = defaultdict(int)
    for day, currency, net, order_count in session.execute(
        "SELECT sale_date, currency, net_revenue, orders FROM reporting.daily_sales ORDER BY sale_date, currency"
    ):
        daily[currency].append((day, _money(net)))
        orders[currency] += int(order_count)
    by_category = _grouped(session.execute(
        "SELECT currency, category, SUM(net_revenue) FROM reporting.sales_by_category GROUP BY currency, category"
    ))
    by_region = _grouped(session.execute(
        "SELECT currency, country || ' / ' || region, SUM(net_revenue) FROM reporting.sales_by_region "
        "GROUP BY currency, country || ' / ' || region"
    ))
    by_channel = _grouped(session.execute(
        "SELECT currency, channel, SUM(net_revenue) FROM reporting.sales_by_channel GROUP BY currency, channel"
    ))
    products = _grouped(session.execute(
        "SELECT currency, COALESCE(product_name, product_id), SUM(net_revenue) FROM reporting.sales_by_product "
        "GROUP BY currency, COALESCE(product_name, product_id)"
    ))
    quarantine = [
        (day, Decimal(str(rate or 0)), int(accepted), int(rejected))
        for day, rate, accepted, rejected in session.execute(
            "SELECT sale_date, quarantine_rate, accepted_lines, quarantined_lines FROM reporting.quarantine_rate "
            "ORDER BY sale_date"
        )
    ]
    days = sorted({d for rows in daily.values() for d, _ in rows} | {q[0] for q in quarantine})
    return DashboardData(
        days=days,
        daily_net=dict(daily),
        by_category=by_category,
        by_region=by_region,
        by_channel=by_channel,
        top_products={c: rows[:TOP_PRODUCTS] for c, rows in products.items()},
        orders=dict(orders),
        quarantine=quarantine,
    )


# ------------------------------------------------------------------------------ SVG charts


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Decimal) -> str:
    return f"{value:,.2f}"


def column_chart(chart_id: str, points: list[tuple[str, Decimal]], color: str = BAR_COLOR, percent: bool = False) -> str:
    """Vertical bars, one per point (days), value labels above each bar."""
    if not points:
        return f'<p class="empty" data-chart="{_esc(chart_id)}">no data</p>'
    width, height, left, bottom, top = 560, 240, 10, 40, 20
    slot = (width - left * 2) / len(points)
    peak = max((v for _, v in points), default=Decimal(0)) or Decimal(1)
    parts = [f'<svg class="chart" data-chart="{_esc(chart_id)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" stroke="#8c959f"/>']
    for index, (label, value) in enumerate(points):
        bar_height = float(value / peak) * (height - bottom - top)
        x = left + index * slot + slot * 0.15
        y = height - bottom - bar_height
        shown = f"{value * 100:.2f}%" if percent else _fmt(value)
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{max(bar_height, 1):.1f}" fill="{color}"><title>{_esc(label)}: {_esc(shown)}</title></rect>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle">{_esc(shown)}</text>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" text-anchor="middle">{_esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(chart_id: str, items: list[tuple[str, Decimal]], color: str = BAR_COLOR) -> str:
    """Horizontal bars, largest first, label left and value right."""
    if not items:
        return f'<p class="empty" data-chart="{_esc(chart_id)}">no data</p>'
    row, label_width, value_width, width = 22, 200, 90, 560
    height = row * len(items) + 10
    peak = max(v for _, v in items) or Decimal(1)
    span = width - label_width - value_width
    parts = [f'<svg class="chart" data-chart="{_esc(chart_id)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for index, (label, value) in enumerate(items):
        y = 5 + index * row
        length = max(float(value / peak) * span, 1) if value > 0 else 1
        text = str(label) if len(str(label)) <= 30 else str(label)[:29] + "…"
        parts.append(f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end">{_esc(text)}</text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
                     f'fill="{color}"><title>{_esc(label)}: {_esc(_fmt(value))}</title></rect>')
        parts.append(f'<text x="{label_width + length + 6:.1f}" y="{y + 15}">{_esc(_fmt(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _figure(caption: str, chart: str) -> str:
    return f"<figure><figcaption>{_esc(caption)}</figcaption>{chart}</figure>"


def render_dashboard(data: DashboardData, generated_at: dt.datetime) -> str:
    """The whole page (see module docstring)."""
    sections = []
    if data.quarantine:
        sections.append("<h2>Data quality</h2><div class=\"grid\">" + _figure(
            "Quarantine rate per day (share of lines read that the ETL rejected)",
            column_chart("quarantine-rate", [(d.isoformat(), rate) for d, rate, _, _ in data.quarantine],
                         color=RATE_COLOR, percent=True),
        ) + "</div>")
    for currency in data.currencies():
        daily = data.daily_net[currency]
        total = sum((v for _, v in daily), Decimal(0))
        orders = data.orders.get(currency, 0)
        kpis = (f'<div class="kpis"><div class="kpi">Net revenue<b>{_esc(_fmt(total))} {_esc(currency)}</b></div>'
                f'<div class="kpi">Orders<b>{orders:,}</b></div>'
                f'<div class="kpi">Average order value<b>{_esc(_fmt(total / orders if orders else Decimal(0)))}</b></div></div>')
        charts = [
            _figure(f"Daily net revenue ({currency})", column_chart(f"daily-net-revenue-{currency}",
                                                                     [(d.isoformat(), v) for d, v in daily])),
            _figure(f"Net revenue by category ({currency})", bar_chart(f"by-category-{currency}", data.by_category.get(currency, []))),
            _figure(f"Net revenue by region ({currency})", bar_chart(f"by-region-{currency}", data.by_region.get(currency, [])[:12])),
            _figure(f"Net revenue by channel ({currency})", bar_chart(f"by-channel-{currency}", data.by_channel.get(currency, []))),
            _figure(f"Top {TOP_PRODUCTS} products ({currency})", bar_chart(f"top-products-{currency}", data.top_products.get(currency, []))),
        ]
        sections.append(f"<h2>{_esc(currency)}</h2>{kpis}<div class=\"grid\">{''.join(charts)}</div>")
    if not sections:
        sections.append('<p class="empty">The warehouse holds no sales yet: materialize a day first.</p>')
    span = f"{data.days[0].isoformat()} to {data.days[-1].isoformat()}" if data.days else "no days"
    subtitle = (f"{len(data.days)} day(s), {span}. Net revenue counts completed and pending lines. "
                f"Generated {generated_at.strftime('%Y-%m-%d %H:%M UTC')} from the reporting views.")
    template = string.Template(
        importlib.resources.files("sales_assets.reporting").joinpath("templates", "dashboard.html").read_text(encoding="utf-8")
    )
    return template.substitute(title=_esc(TITLE), subtitle=_esc(subtitle), body="\n".join(sections))


def write_dashboard(path: Path, page: str) -> Path:
    """Write `page` to `path` atomically; returns the absolute path."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dashboard-", suffix=".html", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
