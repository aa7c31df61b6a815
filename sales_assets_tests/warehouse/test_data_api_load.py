"""Guards the Redshift Data API day-load (the path a Lambda or the Step Functions export uses):
every statement it sends must be one valid Redshift statement (sqlglot, redshift dialect) with
its values bound, never formatted in (COPY's validated manifest and role aside); every batch
must respect the Data API's 40-statement limit, for a day and for a year of days; a day batch
must stage, COPY through a manifest listing exactly the committed files, then delete and
re-insert each of its days and upsert the dimensions in that one batch (= one transaction),
without TRUNCATE; the renamed per-day and per-row parameters must still hit the right days and
rows (run on DuckDB); and against moto the batches must go out in order with their parameters,
manifests deleted after success and kept, with SYS_LOAD_ERROR_DETAIL rows, after a failure."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
import sqlglot
from sqlglot import exp

from sales_assets.resources import warehouse as warehouse_module
from sales_assets.resources.warehouse import DATA_API_MAX_BATCH, DuckDBWarehouseResource, RedshiftDataApiResource
from sales_assets.warehouse import data_api_load, loader, transpile
from sales_assets_tests.resources.test_warehouse_resources import data_api  # noqa: F401  (fixture)
from sales_assets_tests.warehouse.curated_builders import put_s3_day

LAKE = "s3://sales-lake-test/lake"
ROLE = "arn:aws:iam::123456789012:role/sales-redshift-copy"
LOADED_AT = dt.datetime(2026, 11, 21, 1, 2, 3)
DAY_1, DAY_2, DAY_3 = dt.date(2026, 11, 20), dt.date(2026, 11, 21), dt.date(2026, 11, 22)


def _days(first: dt.date, count: int) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range(count)]


def _kind(sql: str) -> str:
    return type(transpile.parse_redshift(sql)).__name__


@pytest.mark.parametrize("days", [[DAY_1], _days(dt.date(2025, 1, 1), 365), _days(dt.date(2025, 12, 25), 14)])
def test_every_statement_parses_as_redshift_and_every_batch_fits_the_data_api(days):
    batches = data_api_load.day_load_statements(LAKE, days, ROLE, LOADED_AT)
    years = sorted({d.year for d in days})
    assert [b.name for b in batches[: 1 + len(years)]] == ["sales-schema"] + [f"sales-calendar-{y}" for y in years]
    day_batches = batches[1 + len(years) :]
    assert [d for b in day_batches for d in b.days] == sorted(days)
    assert max(len(b.days) for b in day_batches) <= data_api_load.MAX_DAYS_PER_BATCH
    for batch in batches:
        assert 1 <= len(batch.sqls) <= DATA_API_MAX_BATCH, batch.name
        for sql in batch.sqls:
            statements = [s for s in sqlglot.parse(sql, read="redshift") if s is not None]
            assert len(statements) == 1, sql[:120]
            assert not statements[0].find(exp.TruncateTable)
            assert statements[0].key not in ("commit", "transaction", "rollback")  # the batch is the transaction
        # Exactly the declared parameters are bound, and no bound value is spelled in the SQL.
        bound = RedshiftDataApiResource.parameters(batch.sqls, batch.params)
        assert {p["name"] for p in bound} == set(batch.params)
        values = {p["value"] for p in bound if len(p["value"]) >= 8}  # dates, timestamps, month names
        for sql in batch.sqls:
            if _kind(sql) != "Copy":
                assert not [v for v in values if v in sql], (batch.name, sql[:120])
    assert len(day_batches) == -(-len(days) // data_api_load.MAX_DAYS_PER_BATCH)


def test_a_day_batch_stages_copies_then_replaces_its_days_in_order():
    batch = data_api_load.day_batch(LAKE, [DAY_2, DAY_1], ROLE, LOADED_AT)
    kinds = [_kind(sql) for sql in batch.sqls]
    first_delete = kinds.index("Delete")
    # Stage and COPY (all four curated tables) before anything is deleted.
    assert kinds[:first_delete].count("Copy") == 4 and "Copy" not in kinds[first_delete:]
    copies = [transpile.parse_redshift(s) for s in batch.sqls if _kind(s) == "Copy"]
    assert {c.this.name for c in copies} == set(loader.STAGES.values())
    for copy in copies:
        [source] = [f.name for f in copy.args["files"]]
        assert source == data_api_load.manifest_uri(LAKE, copy.this.name, [DAY_1, DAY_2])
        assert source.endswith("/_warehouse/copy_manifests/" + copy.this.name + "/2026-11-20_2026-11-21.manifest")
    deletes = list(batch.sqls[first_delete : first_delete + 4])
    assert deletes == [
        "DELETE FROM sales.fact_sales WHERE sale_date = :sale_date_0",
        "DELETE FROM sales.quarantine_daily WHERE quarantine_date = :sale_date_0",
        "DELETE FROM sales.fact_sales WHERE sale_date = :sale_date_1",
        "DELETE FROM sales.quarantine_daily WHERE quarantine_date = :sale_date_1",
    ]
    assert batch.params == {"loaded_at": LOADED_AT, "sale_date_0": DAY_1, "sale_date_1": DAY_2}
    assert kinds[first_delete + 4 :] == ["Insert", "Insert", "Delete", "Merge", "Delete", "Merge"]
    # A curated table without files is staged empty, not COPYd (an empty manifest fails on Redshift).
    without = data_api_load.day_batch(LAKE, [DAY_1], ROLE, LOADED_AT, staged_tables=["order_lines"])
    assert [transpile.parse_redshift(s).this.name for s in without.sqls if _kind(s) == "Copy"] == ["stage_order_lines"]
    assert set(without.manifests) == {"stage_order_lines"}


def test_day_batches_refuse_bad_input():
    with pytest.raises(ValueError, match="1 to 12 days"):
        data_api_load.day_batch(LAKE, _days(DAY_1, 13), ROLE, LOADED_AT)
    with pytest.raises(ValueError, match="IAM role ARN"):
        data_api_load.day_batch(LAKE, [DAY_1], "arn:aws:iam::1:role/x'; DROP TABLE t; --", LOADED_AT)
    with pytest.raises(ValueError, match="refusing COPY source"):
        data_api_load.day_batch("s3://bucket/x'y", [DAY_1], ROLE, LOADED_AT)
    with pytest.raises(ValueError, match="unknown curated tables"):
        data_api_load.day_batch(LAKE, [DAY_1], ROLE, LOADED_AT, staged_tables=["orders"])


def _sample(kind: str, day: dt.date):
    """A value of a DuckDB column type, for a filler fact row."""
    kind = kind.upper()
    if kind.startswith(("VARCHAR", "TEXT")):
        return "x"
    if kind == "DATE":
        return day
    if kind.startswith("TIMESTAMP"):
        return dt.datetime.combine(day, dt.time())
    if kind == "BOOLEAN":
        return False
    return 1


def _run_on_duckdb(session, batch):
    for sql in batch.sqls:
        if _kind(sql) != "Copy":  # DuckDB cannot COPY from S3; staging stays empty here
            session.execute(sql, batch.params)


def test_renamed_parameters_hit_the_right_days_and_rows_on_duckdb(tmp_path):
    resource = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    with resource.session() as session:
        _run_on_duckdb(session, data_api_load.schema_batch())
        _run_on_duckdb(session, data_api_load.calendar_batch(2026))
        expected = loader.calendar_rows([2026])
        names = list(expected[0])
        held = session.execute(f"SELECT {', '.join(names)} FROM sales.dim_date ORDER BY date_key")
        assert [dict(zip(names, row)) for row in held] == expected
        # Days 1 and 3 held; a batch replacing days 1 and 2 (with nothing) leaves day 3 alone.
        columns = session.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'sales' AND table_name = 'fact_sales' ORDER BY ordinal_position")
        for day in (DAY_1, DAY_3):
            row = {name: _sample(kind, day) for name, kind in columns}
            row["sale_date"], row["order_id"] = day, f"o-{day}"
            session.execute(
                f"INSERT INTO sales.fact_sales ({', '.join(row)}) VALUES ({', '.join(':' + n for n in row)})", row)
        _run_on_duckdb(session, data_api_load.day_batch(LAKE, [DAY_1, DAY_2], ROLE, LOADED_AT))
        assert session.execute("SELECT sale_date FROM sales.fact_sales") == [(DAY_3,)]


def _committed_lake(s3):
    """DAY_1: two files per table (quarantine: one empty), DAY_2: one empty file per table; beside
    them a crashed run's stale part file and a _SUCCESS, which no manifest may list."""
    s3.create_bucket(Bucket="sales-lake-test")
    for table in loader.STAGES:
        parts = ({"part-00000-a.snappy.parquet": b"PAR1", "part-00001-b.snappy.parquet": b"PAR1"}
                 if table != "quarantine" else {"part-00000-e.snappy.parquet": b"PAR1e"})
        stale = {"part-00000-stale.snappy.parquet": b"PAR1old", "_SUCCESS": b""}
        put_s3_day(s3, "sales-lake-test", "lake", table, DAY_1, parts, stale)
        put_s3_day(s3, "sales-lake-test", "lake", table, DAY_2, {"part-00000-e.snappy.parquet": b"PAR1e"})


def _manifests(s3):
    listed = s3.list_objects_v2(Bucket="sales-lake-test", Prefix="lake/_warehouse/").get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_the_data_api_load_sends_its_batches_in_order_against_moto(data_api):  # noqa: F811
    resource, state, backend = data_api
    s3 = boto3.client("s3", region_name="us-east-1")
    _committed_lake(s3)
    written = {}
    original_put = s3.put_object

    def recording_put(**kwargs):
        if kwargs["Key"].endswith(".manifest"):
            written[kwargs["Key"]] = json.loads(kwargs["Body"])
        return original_put(**kwargs)

    s3.put_object = recording_put
    report = data_api_load.load_days_with_data_api(resource, s3, LAKE, [DAY_2, DAY_1], ROLE)

    assert report.batches == ("sales-schema", "sales-calendar-2026", "sales-days-2026-11-20-2026-11-21")
    assert report.files == {"order_lines": 3, "dim_customer": 3, "dim_product": 3, "quarantine": 2}
    statements = sorted(backend.statements.values(), key=lambda s: s.created_at)
    assert [len(s.query_string.split(";\n")) for s in statements] == [6, 13, 4 + 4 + 2 + 4 + 6]
    day_statement = statements[-1]
    copies = [q for q in day_statement.query_string.split(";\n") if q.startswith("COPY")]
    assert len(copies) == 4  # every day's record lists a file (an empty day a schema-only one)
    bound = {p["name"]: p["value"] for p in day_statement.query_parameters}
    assert set(bound) == {"loaded_at", "sale_date_0", "sale_date_1"}  # loaded_at: the load's own clock
    assert (bound["sale_date_0"], bound["sale_date_1"]) == ("2026-11-20", "2026-11-21")
    # The manifests listed exactly the files the records commit (never the stale one), and are
    # gone after success.
    entries = written["lake/_warehouse/copy_manifests/stage_order_lines/2026-11-20_2026-11-21.manifest"]["entries"]
    assert [e["url"] for e in entries] == [
        f"s3://sales-lake-test/lake/curated/order_lines/order_date={DAY_1}/part-0000{i}-{c}.snappy.parquet"
        for i, c in ((0, "a"), (1, "b"))] + [
        f"s3://sales-lake-test/lake/curated/order_lines/order_date={DAY_2}/part-00000-e.snappy.parquet"]
    assert [e["meta"]["content_length"] for e in entries] == [4, 4, 5] and all(e["mandatory"] for e in entries)
    assert _manifests(s3) == []


def test_a_failed_copy_reports_load_errors_and_keeps_its_manifests(data_api):  # noqa: F811
    resource, state, backend = data_api
    s3 = boto3.client("s3", region_name="us-east-1")
    _committed_lake(s3)

    def fail_the_copy_batch(_seconds):
        for statement in backend.statements.values():
            if statement.status != "STARTED":
                continue
            if "COPY stage_" in statement.query_string:
                statement.status, statement.error = "FAILED", "Spectrum Scan Error: column type mismatch"
                for sub in statement.sub_statements:
                    if sub["QueryString"].startswith("COPY stage_dim_customer"):
                        sub.update(Status="FAILED", RedshiftQueryId=4242)
            else:
                statement.status, statement.error = "FINISHED", None

    resource._sleep = fail_the_copy_batch
    with pytest.raises(warehouse_module.WarehouseLoadError, match="sales-days-2026-11-20-2026-11-20 FAILED: Spectrum"):
        data_api_load.load_days_with_data_api(resource, s3, LAKE, [DAY_1], ROLE)
    lookups = [s for s in backend.statements.values() if "sys_load_error_detail" in s.query_string]
    [lookup] = lookups
    assert "query_id = :query_id" in lookup.query_string
    assert lookup.query_parameters == [{"name": "query_id", "value": "4242"}]
    assert len(_manifests(s3)) == 4  # kept for diagnosis
