"""Guards the day-replace load into a real DuckDB warehouse: exact figures (Decimal sums),
exactly one copy of a day after any number of re-runs, latest-wins dimensions, empty days,
the duplicate/orphan checks (customer, product and date), quarantine counts per day and
reason, and that a failure inside the load transaction (also between the day's delete and its
insert) leaves the previous state intact."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.warehouse import loader
from sales_assets_tests.warehouse.curated_builders import (
    DIM_CUSTOMER_SCHEMA,
    ORDER_LINES_SCHEMA,
    dims_from_lines,
    expected_figures,
    make_line,
    make_quarantined,
    write_curated_day,
    write_quarantine_day,
    write_table,
)

DAY_1 = dt.date(2026, 11, 20)
DAY_2 = dt.date(2026, 11, 21)


@pytest.fixture
def warehouse(tmp_path):
    return DuckDBWarehouseResource(path=str(tmp_path / "warehouse" / "sales.duckdb"), lock_timeout_seconds=0)


def day_1_lines():
    return [
        make_line("O-1", 1, DAY_1, quantity=3, unit_price="19.99", discount="0.15", tax_rate="0.0825"),
        make_line("O-1", 2, DAY_1, quantity=1, unit_price="0.05", discount="0.5", customer_id="C2", product_id="P2"),
        make_line("O-2", 1, DAY_1, quantity=7, unit_price="1234567.89", hour=23),
    ]


def day_2_lines():
    return [
        make_line("O-3", 1, DAY_2, quantity=2, unit_price="5.55", hour=0),
        make_line("O-3", 2, DAY_2, quantity=1, unit_price="0.01", product_id="P3"),
    ]


def table_snapshot(session):
    """Every warehouse row except load timestamps (DuckDB-native SQL on the raw connection)."""
    return {
        table: session.connection.execute(f"SELECT * EXCLUDE (loaded_at) FROM sales.{table} ORDER BY ALL").fetchall()
        for table in ("fact_sales", "dim_customer", "dim_product")
    }


def test_two_days_load_with_exact_figures(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    write_curated_day(lake_root, DAY_2, day_2_lines())
    with warehouse.session() as session:
        report = loader.load_days(session, str(lake_root), [DAY_2, DAY_1])
        figures = loader.fact_figures(session, [DAY_1, DAY_2])
        assert loader.duplicate_fact_keys(session, [DAY_1, DAY_2]) == 0
        assert loader.orphan_fact_rows(session, [DAY_1, DAY_2]) == 0
        stored = session.execute(
            "SELECT order_timestamp, gross, discount_amount, net, tax_amount, total FROM sales.fact_sales "
            "WHERE order_id = 'O-1' AND line_number = 1"
        )
    assert figures == {DAY_1: expected_figures(day_1_lines()), DAY_2: expected_figures(day_2_lines())}
    # 50.97 + (0.05 - 0.03: 0.025 rounds half-up) + 7 x 1234567.89
    assert figures[DAY_1] == (3, Decimal("8642026.22"))
    assert all(isinstance(net, Decimal) for _, net in figures.values())
    # 3 x 19.99 = 59.97; discount 15% = 9.00 (8.9955 half-up); net 50.97; tax 8.25% = 4.21 (4.205025).
    assert stored == [(dt.datetime(2026, 11, 20, 12, 30), Decimal("59.97"), Decimal("9.00"),
                       Decimal("50.97"), Decimal("4.21"), Decimal("55.18"))]
    assert report.days == (DAY_1, DAY_2)
    assert report.rows_inserted["fact_sales"] == 5
    assert report.rows_inserted["dim_customer"] == 2 and report.rows_inserted["dim_product"] == 3
    assert report.rows_inserted["dim_date"] == 365
    assert report.lines_per_day == {DAY_1: 3, DAY_2: 2}


def test_late_utc_timestamps_keep_their_utc_day(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1])
        rows = session.execute("SELECT sale_date, order_timestamp FROM sales.fact_sales WHERE order_id = 'O-2'")
    assert rows == [(DAY_1, dt.datetime(2026, 11, 20, 23, 30))]


def test_reloading_a_day_three_times_leaves_exactly_one_copy(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    write_curated_day(lake_root, DAY_2, day_2_lines())
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1, DAY_2])
        first = (loader.fact_figures(session, [DAY_1, DAY_2]), table_snapshot(session))
        for _ in range(3):
            loader.load_days(session, str(lake_root), [DAY_1])
        again = (loader.fact_figures(session, [DAY_1, DAY_2]), table_snapshot(session))
        dim_date_rows = session.execute("SELECT COUNT(*), COUNT(DISTINCT date_key) FROM sales.dim_date")
        assert loader.duplicate_fact_keys(session, [DAY_1, DAY_2]) == 0
    assert again == first
    assert dim_date_rows == [(365, 365)]


def test_reloading_a_day_with_changed_values_replaces_it(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    write_curated_day(lake_root, DAY_2, day_2_lines())
    changed = [make_line("O-1", 1, DAY_1, quantity=4, unit_price="2.50"), make_line("O-9", 1, DAY_1, unit_price="1.00")]
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1, DAY_2])
        write_curated_day(lake_root, DAY_1, changed)
        loader.load_days(session, str(lake_root), [DAY_1])
        figures = loader.fact_figures(session, [DAY_1, DAY_2])
        keys = session.execute("SELECT order_id, line_number FROM sales.fact_sales WHERE sale_date = :d ORDER BY 1, 2", {"d": DAY_1})
    assert figures[DAY_1] == (2, Decimal("11.00"))
    assert figures[DAY_2] == expected_figures(day_2_lines())
    assert keys == [("O-1", 1), ("O-9", 1)]


def test_dimension_latest_updated_at_wins_across_days(warehouse, lake_root):
    old = dt.datetime(2026, 11, 20, 8, tzinfo=dt.timezone.utc)
    new = dt.datetime(2026, 11, 21, 8, tzinfo=dt.timezone.utc)
    write_curated_day(lake_root, DAY_1, [make_line("O-1", 1, DAY_1, customer_name="Old Name", product_name="Old P", updated_at=old)])
    write_curated_day(lake_root, DAY_2, [make_line("O-2", 1, DAY_2, customer_name="New Name", product_name="New P", updated_at=new)])
    with warehouse.session() as session:
        # Newer day first, then the older day re-run: the older attributes must not win back.
        loader.load_days(session, str(lake_root), [DAY_2])
        loader.load_days(session, str(lake_root), [DAY_1])
        after_old_rerun = session.execute("SELECT customer_name, updated_at FROM sales.dim_customer")
        product = session.execute("SELECT product_name FROM sales.dim_product")
        # Both days in one load: the latest staged row wins.
        loader.load_days(session, str(lake_root), [DAY_1, DAY_2])
        together = session.execute("SELECT customer_name FROM sales.dim_customer")
        # A newer version arriving later replaces.
        newest = dt.datetime(2026, 11, 22, 9, tzinfo=dt.timezone.utc)
        write_curated_day(lake_root, DAY_1, [make_line("O-1", 1, DAY_1, customer_name="Newest", updated_at=newest)])
        loader.load_days(session, str(lake_root), [DAY_1])
        replaced = session.execute("SELECT customer_name, updated_at FROM sales.dim_customer")
    assert after_old_rerun == [("New Name", new.replace(tzinfo=None))]
    assert product == [("New P",)]
    assert together == [("New Name",)]
    assert replaced == [("Newest", newest.replace(tzinfo=None))]


def test_day_without_valid_lines_replaces_the_day_with_nothing(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    write_curated_day(lake_root, DAY_2, day_2_lines())
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1, DAY_2])
        write_curated_day(lake_root, DAY_1, [])  # zero valid lines: records list schema-only files
        report = loader.load_days(session, str(lake_root), [DAY_1])
        figures = loader.fact_figures(session, [DAY_1, DAY_2])
    assert figures[DAY_1] == (0, Decimal("0.00"))
    assert figures[DAY_2] == expected_figures(day_2_lines())
    assert report.days_without_lines == (DAY_1,) and report.rows_inserted["fact_sales"] == 0


def test_duplicate_and_orphan_checks_detect_crafted_bad_rows(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    write_curated_day(lake_root, DAY_2, day_2_lines())
    copy_columns = ("order_id, line_number, sale_date, order_timestamp, updated_at, customer_id, product_id, channel, "
                    "store_id, status, currency, quantity, unit_price, gross, discount_amount, net, tax_amount, total, "
                    "ingest_run_id, loaded_at")
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1, DAY_2])
        assert loader.duplicate_fact_keys(session, [DAY_1, DAY_2]) == 0
        # A second copy of O-1/1 on the same day, and of O-3/1 (a DAY_2 key) placed on DAY_1.
        session.execute(f"INSERT INTO sales.fact_sales ({copy_columns}) SELECT {copy_columns} FROM sales.fact_sales "
                        "WHERE order_id = 'O-1' AND line_number = 1")
        session.execute(f"INSERT INTO sales.fact_sales ({copy_columns}) SELECT order_id, line_number, :day, "
                        f"{copy_columns.split(', ', 3)[3]} FROM sales.fact_sales WHERE order_id = 'O-3' AND line_number = 1",
                        {"day": DAY_1})
        assert loader.duplicate_fact_keys(session, [DAY_1]) == 2
        assert loader.duplicate_fact_keys(session, [DAY_2]) == 1
        assert loader.duplicate_fact_keys(session, [DAY_1, DAY_2]) == 2
        assert loader.orphan_fact_rows(session, [DAY_1, DAY_2]) == 0
        session.execute("DELETE FROM sales.dim_customer WHERE customer_id = 'C2'")
        session.execute("UPDATE sales.fact_sales SET product_id = 'P-UNKNOWN' WHERE order_id = 'O-3' AND line_number = 2")
        assert loader.orphan_fact_rows(session, [DAY_1]) == 1
        assert loader.orphan_fact_rows(session, [DAY_2]) == 1
        assert loader.orphan_fact_rows(session, [DAY_1, DAY_2]) == 2


def test_failure_inside_the_transaction_leaves_previous_state(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1])
        before = (loader.fact_figures(session, [DAY_1]), table_snapshot(session))
        # New lines for the day (fact delete + insert succeed), then a dimension row without
        # customer_id: the dim upsert violates NOT NULL after the fact rows were replaced.
        new_lines = [make_line("O-7", 1, DAY_1, unit_price="99.99")]
        customers, _ = dims_from_lines(new_lines)
        customers[0]["customer_id"] = None
        write_curated_day(lake_root, DAY_1, new_lines, customers=customers)
        with pytest.raises(Exception, match="(?i)not null|constraint"):
            loader.load_days(session, str(lake_root), [DAY_1])
        after = (loader.fact_figures(session, [DAY_1]), table_snapshot(session))
        # The session stays usable: a corrected re-run loads the new day.
        write_curated_day(lake_root, DAY_1, new_lines)
        loader.load_days(session, str(lake_root), [DAY_1])
        fixed = loader.fact_figures(session, [DAY_1])
    assert after == before
    assert fixed == {DAY_1: (1, Decimal("99.99"))}


def test_rows_dated_outside_the_loaded_days_are_refused(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    write_curated_day(lake_root, DAY_2, [])
    write_table(lake_root, "order_lines", DAY_2, [make_line("O-5", 1, DAY_1)], ORDER_LINES_SCHEMA)
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1])
        with pytest.raises(ValueError, match="hold rows dated"):
            loader.load_days(session, str(lake_root), [DAY_2])
        assert loader.fact_figures(session, [DAY_1, DAY_2])[DAY_1] == expected_figures(day_1_lines())


def test_parquet_with_columns_out_of_order_is_refused(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    reordered = DIM_CUSTOMER_SCHEMA.remove(DIM_CUSTOMER_SCHEMA.get_field_index("email")).append(DIM_CUSTOMER_SCHEMA.field("email"))
    customers, _ = dims_from_lines(day_1_lines())
    write_table(lake_root, "dim_customer", DAY_1, customers, reordered)
    with warehouse.session() as session:
        with pytest.raises(ValueError, match="maps parquet columns by position"):
            loader.load_days(session, str(lake_root), [DAY_1])


def test_calendar_rows_follow_iso_rules():
    rows = {r["date_key"]: r for r in loader.calendar_rows([2020, 2021])}
    assert len(rows) == 366 + 365
    jan1 = rows[dt.date(2021, 1, 1)]  # a Friday in ISO week 53 of 2020
    assert (jan1["iso_year"], jan1["iso_week"], jan1["day_of_week"], jan1["day_name"], jan1["is_weekend"]) == (
        2020, 53, 5, "Friday", False)
    assert rows[dt.date(2021, 1, 3)]["is_weekend"] and rows[dt.date(2021, 1, 3)]["day_of_week"] == 7
    assert rows[dt.date(2020, 11, 20)]["quarter"] == 4 and rows[dt.date(2020, 11, 20)]["month_name"] == "November"


def test_lake_locations_are_built_from_allow_listed_tables_and_dates():
    assert loader.curated_day_location("s3://b/lake/", "order_lines", DAY_1) == (
        "s3://b/lake/curated/order_lines/order_date=2026-11-20/")
    with pytest.raises(ValueError):
        loader.curated_day_location("/lake", "quarantine; DROP", DAY_1)
    with pytest.raises(TypeError):
        loader.curated_day_location("/lake", "order_lines", "2026-11-20")


def test_failure_between_delete_and_insert_keeps_exactly_the_previous_copy(warehouse, lake_root, monkeypatch):
    # The crash the day-replace exists for: the day's rows are deleted, then the insert dies.
    # Committed alone, the delete would lose the day; the transaction must restore it.
    write_curated_day(lake_root, DAY_1, day_1_lines())
    write_quarantine_day(lake_root, DAY_1, [make_quarantined("O-8", 1, DAY_1)])
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1])
        loader.load_days(session, str(lake_root), [DAY_1])  # a second run of the same day
        before = (loader.fact_figures(session, [DAY_1]), table_snapshot(session),
                  session.execute("SELECT quarantine_date, reason, quarantined_lines FROM sales.quarantine_daily"))
        real_execute_count = session.execute_count
        deleted = []

        def dies_on_insert(name, params=None):
            if name == "insert_fact_from_stage":
                deleted.append(session.execute("fact_day_figures", {"sale_date": DAY_1})[0][0])
                raise RuntimeError("simulated crash between delete and insert")
            return real_execute_count(name, params)

        monkeypatch.setattr(session, "execute_count", dies_on_insert)
        write_curated_day(lake_root, DAY_1, [make_line("O-7", 1, DAY_1, unit_price="99.99")])
        with pytest.raises(RuntimeError, match="simulated crash"):
            loader.load_days(session, str(lake_root), [DAY_1])
        after = (loader.fact_figures(session, [DAY_1]), table_snapshot(session),
                 session.execute("SELECT quarantine_date, reason, quarantined_lines FROM sales.quarantine_daily"))
        assert loader.duplicate_fact_keys(session, [DAY_1]) == 0
    assert deleted == [0]  # the failure really came after the day was deleted
    assert before[0] == {DAY_1: expected_figures(day_1_lines())}
    assert after == before
    assert before[2] == [(DAY_1, "negative_quantity", 1)]


def test_quarantine_counts_are_loaded_per_day_and_reason_and_replaced(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    write_quarantine_day(lake_root, DAY_1, [
        make_quarantined("O-8", 1, DAY_1), make_quarantined("O-8", 2, DAY_1),
        make_quarantined("O-9", 1, DAY_1, reason="invalid_json"),
    ])
    query = "SELECT quarantine_date, reason, quarantined_lines FROM sales.quarantine_daily ORDER BY 1, 2"
    with warehouse.session() as session:
        report = loader.load_days(session, str(lake_root), [DAY_1])
        first = session.execute(query)
        loader.load_days(session, str(lake_root), [DAY_1])
        again = session.execute(query)
        write_quarantine_day(lake_root, DAY_1, [])  # a corrected day: nothing quarantined
        loader.load_days(session, str(lake_root), [DAY_1])
        cleared = session.execute(query)
        # Quarantine rows dated outside the loaded days would leave a second copy of that day.
        write_curated_day(lake_root, DAY_2, [])
        write_quarantine_day(lake_root, DAY_2, [make_quarantined("O-5", 1, DAY_1)])
        with pytest.raises(ValueError, match="curated quarantine .* hold rows dated"):
            loader.load_days(session, str(lake_root), [DAY_2])
    assert first == again == [(DAY_1, "invalid_json", 1), (DAY_1, "negative_quantity", 2)]
    assert report.rows_inserted["quarantine_daily"] == 2
    assert cleared == []


def test_every_fact_row_has_its_date_dimension_row(warehouse, lake_root):
    write_curated_day(lake_root, DAY_1, day_1_lines())
    with warehouse.session() as session:
        loader.load_days(session, str(lake_root), [DAY_1])
        assert loader.orphan_fact_rows(session, [DAY_1]) == 0
        missing_dates = session.execute(
            "SELECT COUNT(*) FROM sales.fact_sales AS f LEFT JOIN sales.dim_date AS d ON d.date_key = f.sale_date "
            "WHERE d.date_key IS NULL"
        )
        session.execute("DELETE FROM sales.dim_date WHERE date_key = :d", {"d": DAY_1})
        assert loader.orphan_fact_rows(session, [DAY_1]) == 3
    assert missing_dates == [(0,)]
