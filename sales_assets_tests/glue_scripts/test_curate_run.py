"""Guards the Spark job end to end on a hand-built lake: only manifest-listed pages are read,
re-sent orders are deduplicated (newer updated_at, then later page, then later position),
every unit lands in exactly one of curated / quarantine / superseded, the curated files have
the exact schema with order_date inside, a re-run replaces partitions without leftovers, and a
page altered after its manifest was committed fails the run before anything is written."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import types as T

from .conftest import DAY_1, DAY_1_PAGE_1, DAY_2, DAY_2_PAGE_1, build_demo_lake, line, order, write_raw_day

EXPECTED_REASONS_DAY_1 = {
    "invalid_json": 3, "missing_order_id": 3, "missing_lines": 2, "bad_order_timestamp": 1,
    "wrong_order_date": 2, "bad_updated_at": 1, "bad_status": 1, "bad_channel": 1,
    "unknown_currency": 1, "missing_customer_id": 2, "line_not_object": 1, "bad_line_number": 2,
    "duplicate_line_number": 1, "missing_product_id": 1, "bad_quantity": 3,
    "quantity_below_one": 1, "bad_unit_price": 3, "negative_unit_price": 1, "bad_discount": 2,
    "bad_tax_rate": 1,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory, spark, curate):
    """The demo lake curated once for both days; shared by the read-only tests below."""
    lake_root = tmp_path_factory.mktemp("curate") / "lake"
    lake_root.mkdir()
    manifests = build_demo_lake(lake_root)
    summary = curate.run(spark, str(lake_root), [DAY_2, DAY_1], log=lambda message: None)
    return lake_root, manifests, summary


def read_table(spark, lake_root: Path, table: str, day: str):
    return spark.read.parquet(f"file://{lake_root}/curated/{table}/order_date={day}")


def rows_by_key(frame, *keys):
    return {tuple(row[k] for k in keys): row for row in frame.collect()}


def test_figures_reconcile_and_match_hand_counts(demo, curate):
    _, manifests, summary = demo
    assert summary["order_dates"] == [DAY_1, DAY_2]
    assert summary["figures_by_day"] == {
        DAY_1: {"raw_lines": 49, "curated_lines": 10, "quarantine_lines": 33,
                "superseded_lines": 6, "net": "147.06"},
        DAY_2: {"raw_lines": 2, "curated_lines": 2, "quarantine_lines": 0,
                "superseded_lines": 0, "net": "3.50"},
    }
    for day, figure in summary["figures_by_day"].items():
        assert figure["raw_lines"] == manifests[day]["line_count"]
        assert figure["raw_lines"] == (
            figure["curated_lines"] + figure["quarantine_lines"] + figure["superseded_lines"]
        )
    assert summary["quarantine_by_reason"] == {DAY_1: EXPECTED_REASONS_DAY_1, DAY_2: {}}
    assert set(EXPECTED_REASONS_DAY_1) == set(curate.REASON_CODES)
    tables = summary["tables"]
    assert {t: tables[t]["rows_by_day"] for t in tables} == {
        "order_lines": {DAY_1: 10, DAY_2: 2},
        "quarantine": {DAY_1: 33, DAY_2: 0},
        "dim_customer": {DAY_1: 5, DAY_2: 1},
        "dim_product": {DAY_1: 5, DAY_2: 2},
    }
    assert tables["order_lines"]["row_count"] == 12
    assert summary["manifests"][DAY_1]["run_id"] == "20261121T010203Z-aaaaaa"


def test_dedup_keeps_newest_then_later_page_then_later_position(demo, spark):
    lake_root, _, _ = demo
    lines = rows_by_key(read_table(spark, lake_root, "order_lines", DAY_1), "order_id", "line_number")
    assert sorted(lines) == [
        ("O-1", 1), ("O-1", 2), ("O-2", 1), ("O-2", 2), ("O-3", 1), ("O-4", 1), ("O-5", 1),
        ("O-L", 1), ("O-L", 12), ("O-L", 15),
    ]
    assert lines[("O-2", 2)]["unit_price"] == Decimal("20.00")  # newer updated_at, page 2
    assert lines[("O-3", 1)]["unit_price"] == Decimal("4.00")  # equal updated_at: later page
    assert lines[("O-3", 1)]["source_page"] == 2
    assert lines[("O-4", 1)]["quantity"] == 2  # equal updated_at, same page: later position
    assert lines[("O-5", 1)]["unit_price"] == Decimal("3.00")  # unparseable updated_at loses
    # Only the committed run's pages are read.
    everything = spark.read.parquet(f"file://{lake_root}/curated/order_lines/order_date={DAY_1}")
    assert everything.filter("order_id = 'O-X'").count() == 0
    # Dedup is per day: O-1 exists on both days.
    day_2 = rows_by_key(read_table(spark, lake_root, "order_lines", DAY_2), "order_id", "line_number")
    assert sorted(day_2) == [("O-1", 1), ("O-6", 1)]


def test_units_count_each_superseded_record_once_in_the_same_pass_as_the_live_ones(spark, curate):
    # The superseded rows come out of the same pass as the live units (no second branch): a
    # superseded copy is one row carrying its line units, never validated, quarantined or priced,
    # whatever its own lines or order fields hold.
    def raw(order_id, updated_at, lines, **fields):
        return json.dumps(order(order_id, lines, updated_at=updated_at, **fields))

    pages = [
        [raw("O-A", "2026-11-20T10:00:00Z", [line(1), line(1), {"line_number": 3}], status="lost"),
         raw("O-B", "2026-11-20T10:00:00Z", []),
         json.dumps({"lines": [line(1)]})],
        [raw("O-A", "2026-11-20T11:00:00Z", [line(1), line(2)]),
         raw("O-B", "2026-11-20T11:00:00Z", [line(1, quantity=0)]),
         json.dumps({"lines": [line(1)]})],
    ]
    rows = [(dt.date.fromisoformat(DAY_1), page, position, "run-1", value, True)
            for page, values in enumerate(pages, start=1) for position, value in enumerate(values, start=1)]
    frame = spark.createDataFrame(
        rows, "order_date date, source_page int, position int, ingest_run_id string, value string, line_ok boolean"
    )
    units = [row.asDict() for row in curate.units_from_lines(frame).collect()]
    superseded = sorted((u["order_id"], u["source_page"], u["n"]) for u in units if u["kind"] == "superseded")
    assert superseded == [("O-A", 1, 3), ("O-B", 1, 1)]
    for unit in units:
        assert unit["superseded"] == (unit["kind"] == "superseded")
        if unit["superseded"]:
            assert (unit["reason"], unit["detail"], unit["unit_index"], unit["net"]) == (None, None, 0, None)
    outcomes = sorted((u["order_id"] or "", u["line_number"] or 0, u["kind"], u["reason"] or "")
                      for u in units if u["kind"] != "superseded")
    assert outcomes == [
        ("", 1, "quarantine", "missing_order_id"), ("", 1, "quarantine", "missing_order_id"),
        ("O-A", 1, "curated", ""), ("O-A", 2, "curated", ""),
        ("O-B", 1, "quarantine", "quantity_below_one"),
    ]
    assert all(u["n"] == 1 for u in units if u["kind"] != "superseded")


def test_order_line_values_are_exact(demo, spark):
    lake_root, _, _ = demo
    lines = rows_by_key(read_table(spark, lake_root, "order_lines", DAY_1), "order_id", "line_number")
    first = lines[("O-1", 1)]
    assert (first["quantity"], first["unit_price"], first["discount"], first["tax_rate"]) == (
        3, Decimal("19.99"), Decimal("0.1000000000"), Decimal("0.0825000000")
    )
    assert [first[k] for k in ("gross", "discount_amount", "net", "tax_amount", "total")] == [
        Decimal("59.97"), Decimal("6.00"), Decimal("53.97"), Decimal("4.45"), Decimal("58.42")
    ]
    assert first["order_timestamp"] == dt.datetime(2026, 11, 20, 21, 0)  # +05:00 converted to UTC
    assert first["updated_at"] == dt.datetime(2026, 11, 20, 21, 5)
    assert first["order_date"] == dt.date(2026, 11, 20)
    assert (first["customer_id"], first["customer_city"], first["product_name"]) == ("C-1", "Berlin", "Widget v2")
    assert first["ingest_run_id"] == "20261121T010203Z-aaaaaa" and first["source_page"] == 1
    half_up = lines[("O-1", 2)]
    assert (half_up["discount_amount"], half_up["net"], half_up["total"]) == (
        Decimal("1.01"), Decimal("1.00"), Decimal("1.00")
    )
    tiny = lines[("O-L", 15)]
    assert (tiny["discount_amount"], tiny["net"], tiny["tax_amount"], tiny["total"]) == (
        Decimal("0.01"), Decimal("0.09"), Decimal("0.05"), Decimal("0.14")
    )
    integer_valued = lines[("O-L", 12)]
    assert (integer_valued["quantity"], integer_valued["discount"], integer_valued["gross"]) == (
        3, Decimal("0E-10"), Decimal("30.00")
    )


def test_quarantine_rows_name_reason_and_keep_the_raw_line(demo, spark):
    lake_root, _, _ = demo
    rows = read_table(spark, lake_root, "quarantine", DAY_1).collect()
    invalid = [row for row in rows if row["reason"] == "invalid_json"]
    assert sorted(row["raw_record"] for row in invalid) == sorted(DAY_1_PAGE_1[6:9])
    assert all(row["order_id"] is None and row["line_number"] is None for row in invalid)
    o_l = {row["line_number"]: row["reason"] for row in rows if row["order_id"] == "O-L" and row["line_number"]}
    assert o_l == {
        1: "duplicate_line_number", 2: "missing_product_id", 3: "bad_quantity", 4: "bad_quantity",
        5: "quantity_below_one", 6: "bad_unit_price", 7: "bad_unit_price", 8: "negative_unit_price",
        9: "bad_discount", 10: "bad_discount", 11: "bad_tax_rate", 13: "bad_quantity",
        14: "bad_unit_price",
    }
    wrong_day = sorted(row["line_number"] for row in rows if row["reason"] == "wrong_order_date")
    assert wrong_day == [1, 2]
    assert all(row["detail"] for row in rows)
    assert {row["order_date"] for row in rows} == {dt.date(2026, 11, 20)}
    # The superseded bad copy of O-5 is not quarantined.
    assert not [row for row in rows if row["order_id"] == "O-5"]


def test_dimensions_take_latest_attributes(demo, spark):
    lake_root, _, _ = demo
    customers = rows_by_key(read_table(spark, lake_root, "dim_customer", DAY_1), "customer_id")
    assert sorted(customers) == [("C-1",), ("C-2",), ("C-3",), ("C-4",), ("C-5",)]
    assert customers[("C-2",)]["city"] == "Berlin"  # O-3 (12:00) beats O-2 (11:00)
    assert customers[("C-2",)]["updated_at"] == dt.datetime(2026, 11, 20, 12, 0)
    products = rows_by_key(read_table(spark, lake_root, "dim_product", DAY_1), "product_id")
    assert sorted(products) == [("P-1",), ("P-2",), ("P-3",), ("P-4",), ("P-9",)]
    assert products[("P-1",)]["product_name"] == "Widget v2"  # O-1 (21:05) beats O-L (20:00)


def test_curated_schemas_are_exact(demo, spark, curate):
    lake_root, _, _ = demo
    for table, columns in curate.TABLE_COLUMNS.items():
        schema = read_table(spark, lake_root, table, DAY_1).schema
        assert [(f.name, f.dataType.simpleString()) for f in schema.fields] == list(columns)
    lines = read_table(spark, lake_root, "order_lines", DAY_1).schema
    assert lines["unit_price"].dataType == T.DecimalType(18, 2)
    assert lines["discount"].dataType == T.DecimalType(12, 10)
    assert lines["order_date"].dataType == T.DateType()
    assert lines["order_timestamp"].dataType == T.TimestampType()


def test_order_date_is_inside_each_single_parquet_file(demo, curate):
    lake_root, _, _ = demo
    for table in curate.TABLES:
        for day in (DAY_1, DAY_2):
            files = list((lake_root / "curated" / table / f"order_date={day}").glob("part-*.parquet"))
            assert len(files) == 1, (table, day, files)
            parquet = pq.read_table(files[0])
            assert parquet.schema.field("order_date").type == pa.date32()
            assert set(parquet.column("order_date").to_pylist()) <= {dt.date.fromisoformat(day)}
    lines = pq.read_table(next((lake_root / f"curated/order_lines/order_date={DAY_1}").glob("part-*.parquet")))
    assert lines.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert lines.schema.field("net").type == pa.decimal128(18, 2)


def test_rerun_gives_identical_output_and_no_temp_folders(tmp_path, spark, curate):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)

    def snapshot():
        return {
            table: sorted(
                json.dumps(row.asDict(), default=str, sort_keys=True)
                for row in spark.read.parquet(f"file://{lake_root}/curated/{table}/order_date={DAY_1}").collect()
            )
            for table in curate.TABLES
        }

    first = curate.run(spark, f"file://{lake_root}", [DAY_1], log=lambda message: None)
    before = snapshot()
    second = curate.run(spark, str(lake_root), [DAY_1], log=lambda message: None)
    assert second["figures_by_day"] == first["figures_by_day"]
    assert snapshot() == before
    for table in curate.TABLES:
        table_dir = lake_root / "curated" / table
        assert sorted(p.name for p in table_dir.iterdir()) == [f"order_date={DAY_1}"]
        assert len(list((table_dir / f"order_date={DAY_1}").glob("part-*.parquet"))) == 1


def test_missing_manifest_names_the_date_and_writes_nothing(tmp_path, spark, curate):
    lake_root = tmp_path / "lake"
    build_demo_lake(lake_root)
    with pytest.raises(curate.ManifestMissingError, match="2026-11-22"):
        curate.run(spark, str(lake_root), [DAY_1, "2026-11-22"], log=lambda message: None)
    assert not (lake_root / "curated").exists()


def test_page_changed_after_commit_fails_before_writing(tmp_path, spark, curate):
    lake_root = tmp_path / "lake"
    manifests = build_demo_lake(lake_root)
    page = lake_root / manifests[DAY_1]["pages"][1]["key"]
    body = page.read_bytes()
    page.write_bytes(body.replace(b"O-2", b"O-7", 1))  # same size, different bytes
    with pytest.raises(curate.PageIntegrityError, match="page-00002.jsonl does not match its manifest"):
        curate.run(spark, str(lake_root), [DAY_1], log=lambda message: None)
    assert not (lake_root / "curated").exists()


def test_crlf_and_blank_lines_are_not_records(tmp_path, spark, curate):
    lake_root = tmp_path / "lake"
    manifest = write_raw_day(lake_root, DAY_2, "run-crlf", [DAY_2_PAGE_1])
    page = lake_root / manifest["pages"][0]["key"]
    body = page.read_bytes().replace(b"\n", b"\r\n") + b" \t\r\n\n"
    page.write_bytes(body)
    manifest["pages"][0].update(bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
    (page.parent.parent / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    summary = curate.run(spark, str(lake_root), [DAY_2], log=lambda message: None)
    assert summary["figures_by_day"][DAY_2] == {
        "raw_lines": 2, "curated_lines": 2, "quarantine_lines": 0, "superseded_lines": 0, "net": "3.50"
    }
