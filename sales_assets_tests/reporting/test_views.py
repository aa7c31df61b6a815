"""Guards the `reporting` views: each is one Redshift statement that survives transpiling to
DuckDB and returns the right figures there (revenue excludes cancelled and returned lines,
money is never summed across currencies, the quarantine rate divides by all lines read),
creating them twice is harmless, and the Dagster asset creates them after the warehouse."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import dagster as dg
import pytest
import sqlglot
from sqlglot import exp

from sales_assets.reporting import views
from sales_assets.reporting.assets import REPORTING_VIEWS, reporting_views
from sales_assets.warehouse import transpile
from sales_assets_tests.reporting.conftest import DAY_1, DAY_2


@pytest.mark.parametrize("name", views.VIEW_NAMES)
def test_every_view_is_one_redshift_create_view_that_transpiles(name):
    tree = transpile.parse_redshift(views.view_sql(name), source=f"reporting/sql/{name}.sql")
    assert isinstance(tree, exp.Create) and tree.kind == "VIEW" and tree.args.get("replace")
    assert tree.this.sql() == f"reporting.{name}"
    duck = transpile.to_duckdb(views.view_sql(name), source=name)
    assert isinstance(sqlglot.parse_one(duck, read="duckdb"), exp.Create)
    # Views read the warehouse schema only, never staging tables.
    query = tree.expression
    tables = {t.db for t in query.find_all(exp.Table) if t.name not in {"accepted", "rejected", "days"}}
    assert tables == {"sales"}


def test_views_compute_the_figures_people_read(loaded_warehouse):
    with loaded_warehouse.session() as session:
        views.create_views(session)
        views.create_views(session)  # idempotent
        daily = session.execute(
            "SELECT sale_date, currency, orders, order_lines, units, net_revenue FROM reporting.daily_sales ORDER BY 1, 2")
        category = session.execute(
            "SELECT category, SUM(net_revenue) FROM reporting.sales_by_category WHERE currency = 'USD' GROUP BY 1 ORDER BY 1")
        region = session.execute("SELECT currency, country, region, SUM(net_revenue) FROM reporting.sales_by_region "
                                 "GROUP BY 1, 2, 3 ORDER BY 1")
        channel = session.execute("SELECT channel, store_id, net_revenue FROM reporting.sales_by_channel "
                                  "WHERE sale_date = :d ORDER BY 1", {"d": DAY_1})
        products = session.execute("SELECT product_id, SUM(units) FROM reporting.sales_by_product GROUP BY 1 ORDER BY 1")
        returns = session.execute("SELECT sale_date, currency, order_lines, returned_lines, cancelled_lines, returns_rate "
                                  "FROM reporting.returns_and_cancellations ORDER BY 1, 2")
        quarantine = session.execute("SELECT sale_date, accepted_lines, quarantined_lines, quarantine_rate "
                                     "FROM reporting.quarantine_rate ORDER BY 1")
        star = {name: session.execute(f"SELECT COUNT(*) FROM {views.qualified(name)}")[0][0] for name in views.STAR_VIEWS}
    # Day 1: O-1 (20.00 + 4.00), O-2 100.00; O-3 returned is not revenue.
    assert daily == [
        (DAY_1, "USD", 2, 3, 4, Decimal("124.00")),
        (DAY_2, "EUR", 1, 1, 2, Decimal("9.00")),
        (DAY_2, "USD", 1, 1, 3, Decimal("21.00")),
    ]
    assert category == [("garden", Decimal("100.00")), ("tools", Decimal("45.00"))]
    assert region == [("EUR", "DE", "Berlin", Decimal("9.00")), ("USD", "US", "West", Decimal("145.00"))]
    assert channel == [("store", "S-1", Decimal("100.00")), ("web", None, Decimal("24.00"))]
    assert products == [("P1", 2), ("P2", 4), ("P3", 1), ("P9", 2)]
    assert [r[:5] for r in returns] == [(DAY_1, "USD", 4, 1, 0), (DAY_2, "EUR", 2, 0, 1), (DAY_2, "USD", 1, 0, 0)]
    assert returns[0][5] == Decimal("0.25")
    # Day 1: 4 lines accepted, 2 quarantined -> 2 / 6.
    assert quarantine[0] == (DAY_1, 4, 2, Decimal("0.333333"))
    assert quarantine[1] == (DAY_2, 3, 0, Decimal("0.000000"))
    assert star == {"sales": 7, "customers": 4, "products": 4, "calendar": 365}


def test_reporting_views_asset_creates_the_schema(loaded_warehouse):
    result = dg.materialize([reporting_views], resources={"warehouse": loaded_warehouse}, partition_key=DAY_2.isoformat())
    assert result.success
    (materialization,) = result.asset_materializations_for_node(reporting_views.op.name)
    assert materialization.asset_key == REPORTING_VIEWS
    assert materialization.metadata["rows_per_view"].value["daily_sales"] == 3
    with loaded_warehouse.session() as session:
        names = {r[0] for r in session.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'reporting'")}
    assert names == set(views.VIEW_NAMES)


def test_unknown_view_names_are_refused():
    with pytest.raises(KeyError):
        views.view_sql("../warehouse/sql/create_schema")
    with pytest.raises(KeyError):
        views.qualified("sales; DROP TABLE x")
