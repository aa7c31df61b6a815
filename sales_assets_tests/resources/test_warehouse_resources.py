"""Guards the warehouse resources: the DuckDB file lock held by another process becomes a
clear, retryable error naming the file (never a half-loaded day), readers can open the file
read-only, and the Redshift path issues the intended statement sequence (COPY with IAM_ROLE,
FORMAT AS PARQUET and a MANIFEST listing exactly the committed part files, then BEGIN /
DELETE / INSERT / MERGE / COMMIT, never TRUNCATE), binds values as named parameters, reports
COPY errors with SYS_LOAD_ERROR_DETAIL rows, rolls back on failure and never exposes the
password; the Data API path (against moto) sends one batch, binds its values and polls
until FINISHED, raising on FAILED/ABORTED."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap

import boto3
import dagster as dg
import pytest
import sqlglot
from moto import mock_aws
from sqlglot import exp

from sales_assets.resources import warehouse as warehouse_module
from sales_assets.resources.warehouse import (
    DuckDBWarehouseResource,
    RedshiftWarehouseResource,
    WarehouseLoadError,
    WarehouseLockedError,
)
from sales_assets.warehouse import loader, transpile
from sales_assets_tests.warehouse.curated_builders import put_s3_day

DAY_1 = dt.date(2026, 11, 20)
DAY_2 = dt.date(2026, 11, 21)
ROLE_ARN = "arn:aws:iam::123456789012:role/sales-redshift-copy"
BUCKET = "sales-lake-test"
SECRET = "s3cr3t-Pa55word"


# ------------------------------------------------------------------------------ DuckDB


def test_duckdb_session_creates_parent_folder_and_reads_back(tmp_path):
    path = tmp_path / "nested" / "deeper" / "warehouse.duckdb"
    with DuckDBWarehouseResource(path=str(path)).session() as session:
        loader.ensure_schema(session)
    assert path.exists()
    with DuckDBWarehouseResource(path=str(path), read_only=True).session() as reader:
        assert loader.fact_figures(reader, [DAY_1]) == {DAY_1: (0, loader.ZERO_MONEY)}
        with pytest.raises(Exception, match="(?i)read.only"):
            reader.execute("delete_fact_days", {"sale_date": DAY_1})


def test_file_named_like_the_schema_is_not_ambiguous(tmp_path):
    with DuckDBWarehouseResource(path=str(tmp_path / "sales.duckdb")).session() as session:
        loader.ensure_schema(session)
        assert session.execute("SELECT COUNT(*) FROM sales.fact_sales") == [(0,)]


def test_lock_held_by_another_process_is_a_clear_retryable_error(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time, duckdb
            con = duckdb.connect({str(path)!r})
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        for read_only in (False, True):
            resource = DuckDBWarehouseResource(path=str(path), read_only=read_only, lock_timeout_seconds=0)
            with pytest.raises(WarehouseLockedError) as caught:
                with resource.session():
                    pass
            message = str(caught.value.description)
            assert str(path) in message and "locked by another process" in message and "retry" in message
            assert isinstance(caught.value, dg.Failure) and caught.value.allow_retries
    finally:
        holder.communicate("", timeout=30)
    # Once the other process is gone the file opens normally.
    with DuckDBWarehouseResource(path=str(path), lock_timeout_seconds=0).session() as session:
        loader.ensure_schema(session)


# ------------------------------------------------------------------------------ Redshift


class FakeCursor:
    def __init__(self, connection):
        self.connection = connection
        self.paramstyle = "format"
        self.description = None
        self.rowcount = -1
        self._rows = []

    def execute(self, sql, args=None):
        self.connection.record(sql, args, self.paramstyle)
        self._rows, self.description, self.rowcount = self.connection.respond(sql)
        return self

    def executemany(self, sql, param_sets):
        for params in param_sets:
            self.execute(sql, params)
        return self

    def fetchall(self):
        return tuple(self._rows)


class FakeRedshiftConnection:
    """Records every statement; answers the few SELECTs the loader reads."""

    def __init__(self, fail_on=None, staged_per_day=None, error_rows=()):
        self.statements: list[tuple[str, object, str]] = []
        self.autocommit = False
        self.closed = False
        self.fail_on = fail_on
        self.staged_per_day = staged_per_day or {}
        self.error_rows = list(error_rows)

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True

    def record(self, sql, args, paramstyle):
        self.statements.append((sql, args, paramstyle))

    def respond(self, sql):
        if self.fail_on and self.fail_on in sql:
            raise RuntimeError(f"simulated failure in {self.fail_on}")
        if "FROM stage_order_lines" in sql and "GROUP BY order_date" in sql:
            return sorted(self.staged_per_day.items()), [("order_date",), ("line_count",)], len(self.staged_per_day)
        if "FROM stage_quarantine" in sql and "GROUP BY order_date" in sql:
            return [], [("order_date",), ("line_count",)], 0
        if "sys_load_error_detail" in sql:
            return self.error_rows, [("start_time",)], len(self.error_rows)
        if "COUNT(*)" in sql:  # fact_day_figures, orphan_fact_rows
            return [(0, None)], [("line_count",), ("net_sum",)], 1
        return [], None, 3

    def sql_texts(self):
        return [s for s, _, _ in self.statements]


@pytest.fixture
def s3_lake():
    """A moto S3 bucket with committed curated days: day 1 two part files per table (quarantine
    one, empty), day 2 one empty (schema-only) file per table, each listed by its record."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        for table in loader.STAGES:
            parts = ({"part-00000-a.snappy.parquet": b"PAR1", "part-00001-b.snappy.parquet": b"PAR1"}
                     if table != "quarantine" else {"part-00000-e.snappy.parquet": b"PAR1e"})
            put_s3_day(client, BUCKET, "lake", table, DAY_1, parts)
            put_s3_day(client, BUCKET, "lake", table, DAY_2, {"part-00000-e.snappy.parquet": b"PAR1e"})
        yield client


def redshift_resource(**overrides):
    config = dict(host="example.redshift.amazonaws.com", database="sales", user="loader",
                  password=SECRET, iam_role_arn=ROLE_ARN, region="us-east-1")
    config.update(overrides)
    return RedshiftWarehouseResource(**config)


def use_fake(monkeypatch, fake):
    import redshift_connector

    captured = {}

    def connect(**kwargs):
        captured.update(kwargs)
        return fake

    monkeypatch.setattr(redshift_connector, "connect", connect)
    return captured


def test_redshift_day_load_statement_sequence(monkeypatch, s3_lake):
    fake = FakeRedshiftConnection(staged_per_day={DAY_1: 2})
    captured = use_fake(monkeypatch, fake)
    with redshift_resource().session() as session:
        report = loader.load_days(session, f"s3://{BUCKET}/lake", [DAY_1, DAY_2])
    assert fake.autocommit is True and fake.closed
    assert captured["password"] == SECRET and captured["user"] == "loader"
    texts = fake.sql_texts()
    trees = [sqlglot.parse_one(t, read="redshift") for t in texts]  # every statement is Redshift SQL

    copies = [t for t in texts if t.startswith("COPY")]
    # One COPY per staging table for both days, each FROM a manifest built from their records.
    assert len(copies) == 4
    for copy_sql, (table, stage) in zip(copies, loader.STAGES.items()):
        tree = sqlglot.parse_one(copy_sql, read="redshift")
        (source,) = [f.name for f in tree.args["files"]]
        assert tree.this.name == stage
        assert source.startswith(f"s3://{BUCKET}/lake/_warehouse/copy_manifests/{stage}/") and source.endswith(".manifest")
        assert f"IAM_ROLE '{ROLE_ARN}'" in copy_sql and "FORMAT AS PARQUET" in copy_sql
        assert [p.this.name.upper() for p in tree.args["params"]] == ["FORMAT", "MANIFEST"]
    # Manifests are removed after a successful COPY; their content is checked in the next test.
    assert s3_lake.list_objects_v2(Bucket=BUCKET, Prefix="lake/_warehouse/").get("KeyCount") == 0
    assert all(isinstance(tree, exp.Copy) for tree in trees if tree.key == "copy")
    assert not any(t.find(exp.TruncateTable) for t in trees)
    assert not any("TRUNCATE" in t.upper() for t in texts)

    begin, commit = texts.index("BEGIN"), texts.index("COMMIT")
    assert texts.count("BEGIN") == 1 and texts.count("COMMIT") == 1 and "ROLLBACK" not in texts
    assert all(texts.index(c) < begin for c in copies)  # staging before the transaction
    inside = texts[begin + 1:commit]
    kinds = [sqlglot.parse_one(t, read="redshift").key for t in inside]
    # Both days' facts and quarantine counts deleted, then the inserts, then the MERGEs.
    assert kinds[:6] == ["delete"] * 4 + ["insert", "insert"]
    assert set(kinds) == {"delete", "insert", "merge", "select"} and kinds.count("merge") == 2
    # The one read inside: whether dim_date holds the year whole (the fake says no: it is written).
    assert [t for t in inside if sqlglot.parse_one(t, read="redshift").key == "select"] == [
        transpile.redshift_sql("count_dim_date_range")
    ]
    delete_params = [args for sql, args, _ in fake.statements[begin + 1:begin + 5]]
    assert delete_params == [{"sale_date": DAY_1}] * 2 + [{"sale_date": DAY_2}] * 2
    assert all(style == "named" for _, args, style in fake.statements if args)
    assert ":sale_date" in inside[0] and "2026-11-20" not in inside[0]  # bound, not formatted
    assert report.days_without_lines == (DAY_2,) and report.lines_per_day == {DAY_1: 2, DAY_2: 0}


def test_redshift_copy_failure_reports_load_error_rows(monkeypatch, s3_lake):
    rows = [(dt.datetime(2026, 11, 21, 1), "s3://x/part-0.parquet", 0, "net", 1201, "Invalid decimal")]
    fake = FakeRedshiftConnection(fail_on="COPY stage_order_lines", error_rows=rows)
    use_fake(monkeypatch, fake)
    with redshift_resource().session() as session:
        with pytest.raises(WarehouseLoadError) as caught:
            loader.load_days(session, f"s3://{BUCKET}/lake", [DAY_1])
    assert caught.value.error_rows == rows
    assert "Invalid decimal" in str(caught.value) and "stage_order_lines" in str(caught.value)
    assert "BEGIN" not in fake.sql_texts()  # nothing touched the warehouse tables


def test_redshift_failure_inside_transaction_rolls_back(monkeypatch, s3_lake):
    fake = FakeRedshiftConnection(fail_on="MERGE INTO sales.dim_customer", staged_per_day={DAY_1: 2})
    use_fake(monkeypatch, fake)
    with redshift_resource().session() as session:
        with pytest.raises(RuntimeError, match="simulated failure"):
            loader.load_days(session, f"s3://{BUCKET}/lake", [DAY_1])
    texts = fake.sql_texts()
    assert texts[-1] == "ROLLBACK" and "COMMIT" not in texts


def test_copy_source_and_role_are_validated(monkeypatch):
    session = warehouse_module.RedshiftSession(FakeRedshiftConnection(), ROLE_ARN, s3_client=None)
    with pytest.raises(ValueError):
        session.copy_statement("stage_order_lines", "s3://bucket/x' IAM_ROLE 'evil/part-")
    with pytest.raises(ValueError):
        session.copy_statement("sales.fact_sales", "s3://bucket/lake/_warehouse/copy_manifests/x.manifest")
    with pytest.raises(ValueError):  # a bare prefix would load whatever lies under it
        session.copy_statement("stage_order_lines", "s3://bucket/lake/curated/order_lines/order_date=2026-11-20/part-")
    with pytest.raises(ValueError):
        warehouse_module.RedshiftSession(FakeRedshiftConnection(), "arn:aws:iam::1:role/x' --", s3_client=None)
    with pytest.raises(ValueError, match="s3://"):
        session.stage_parquet("stage_order_lines", ["/local/folder/"])


def test_redshift_iam_auth_arguments():
    serverless = redshift_resource(password=None, host=None, workgroup="sales-wg").connect_kwargs()
    assert serverless["iam"] and serverless["is_serverless"] and serverless["serverless_work_group"] == "sales-wg"
    assert "password" not in serverless
    provisioned = redshift_resource(password=None, cluster_identifier="sales-cluster").connect_kwargs()
    assert provisioned["iam"] and provisioned["cluster_identifier"] == "sales-cluster"
    assert provisioned["db_user"] == "loader"
    with pytest.raises(ValueError):
        redshift_resource(password=None).connect_kwargs()


def test_password_never_appears_in_repr_or_connection_errors(monkeypatch):
    import redshift_connector

    def refuse(**kwargs):
        raise redshift_connector.InterfaceError(f"connection refused for {kwargs['user']}")

    monkeypatch.setattr(redshift_connector, "connect", refuse)
    resource = redshift_resource()
    assert SECRET not in repr(resource)
    with pytest.raises(ConnectionError) as caught:
        with resource.session():
            pass
    assert SECRET not in str(caught.value) and caught.value.__cause__ is None
    assert "example.redshift.amazonaws.com" in str(caught.value)


def test_password_can_come_from_env_var(monkeypatch):
    monkeypatch.setenv("SALES_AWS_REDSHIFT_PASSWORD", SECRET)
    fake = FakeRedshiftConnection()
    captured = use_fake(monkeypatch, fake)

    @dg.asset
    def probe(warehouse: RedshiftWarehouseResource):
        with warehouse.session() as session:
            session.execute("fact_day_figures", {"sale_date": DAY_1})

    resource = RedshiftWarehouseResource(
        host="h", user="loader", password=dg.EnvVar("SALES_AWS_REDSHIFT_PASSWORD"), iam_role_arn=ROLE_ARN
    )
    result = dg.materialize([probe], resources={"warehouse": resource})
    assert result.success and captured["password"] == SECRET


def test_copy_manifest_lists_exactly_the_committed_part_files(monkeypatch, s3_lake):
    # A writer's leftovers (_SUCCESS, a crashed run's part file, a staging folder) must not be
    # loaded; the manifest is what Redshift reads, so its entries are the contract.
    s3_lake.put_object(Bucket=BUCKET, Key=f"lake/curated/order_lines/order_date={DAY_1}/_SUCCESS", Body=b"")
    s3_lake.put_object(Bucket=BUCKET, Key=f"lake/curated/order_lines/order_date={DAY_1}/part-00009-crashed.snappy.parquet", Body=b"P")
    s3_lake.put_object(Bucket=BUCKET, Key=f"lake/curated/order_lines/order_date={DAY_1}/_staging_x/part-9.parquet", Body=b"P")
    manifests = {}

    class Capturing(FakeRedshiftConnection):
        def record(self, sql, args, paramstyle):
            super().record(sql, args, paramstyle)
            if sql.startswith("COPY"):
                uri = sqlglot.parse_one(sql, read="redshift").args["files"][0].name
                key = uri.split(f"s3://{BUCKET}/", 1)[1]
                manifests[sql.split()[1]] = json.loads(s3_lake.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    fake = Capturing(staged_per_day={DAY_1: 2})
    use_fake(monkeypatch, fake)
    with redshift_resource().session() as session:
        loader.load_days(session, f"s3://{BUCKET}/lake", [DAY_1, DAY_2])
    entries = manifests["stage_order_lines"]["entries"]
    assert [e["url"] for e in entries] == [
        f"s3://{BUCKET}/lake/curated/order_lines/order_date={DAY_1}/part-0000{i}-{x}.snappy.parquet"
        for i, x in ((0, "a"), (1, "b"))
    ] + [f"s3://{BUCKET}/lake/curated/order_lines/order_date={DAY_2}/part-00000-e.snappy.parquet"]
    assert all(e["mandatory"] is True for e in entries)
    assert [e["meta"]["content_length"] for e in entries] == [4, 4, 5]
    assert set(manifests) == set(loader.STAGES.values())


def test_failed_copy_keeps_its_manifest_for_diagnosis(monkeypatch, s3_lake):
    fake = FakeRedshiftConnection(fail_on="COPY stage_order_lines")
    use_fake(monkeypatch, fake)
    with redshift_resource().session() as session:
        with pytest.raises(WarehouseLoadError, match=r"_warehouse/copy_manifests/stage_order_lines/\w+\.manifest"):
            loader.load_days(session, f"s3://{BUCKET}/lake", [DAY_1])
    kept = s3_lake.list_objects_v2(Bucket=BUCKET, Prefix="lake/_warehouse/copy_manifests/")["Contents"]
    assert len(kept) == 1


# ------------------------------------------------------------------------------ Data API


@pytest.fixture
def data_api(monkeypatch):
    """moto's redshift-data, plus the BatchExecuteStatement moto 5.2 lacks.

    Statements stay STARTED until the resource sleeps between polls; the fake sleep then
    applies `outcome` (FINISHED, or FAILED/ABORTED with an error), so the poll loop really
    runs over the wire against moto.
    """
    from moto.redshiftdata import models as rsd_models
    from moto.redshiftdata import responses as rsd_responses

    def batch_execute_statement(self):
        statement = self.redshiftdata_backend.execute_statement(
            cluster_identifier=self._get_param("ClusterIdentifier"), database=self._get_param("Database"),
            db_user=self._get_param("DbUser"), parameters=self._get_param("Parameters"),
            secret_arn=self._get_param("SecretArn"), sql=";\n".join(self._get_param("Sqls")),
        )
        statement.sub_statements = [{"Id": f"{statement.id}:{i + 1}", "QueryString": q, "Status": "SUBMITTED"}
                                    for i, q in enumerate(self._get_param("Sqls"))]
        return 200, {}, json.dumps({"Id": statement.id, "Database": statement.database})

    original_iter = rsd_models.Statement.__iter__

    def with_error(self):
        yield from original_iter(self)
        if getattr(self, "error", None):
            yield "Error", self.error

    monkeypatch.setattr(rsd_responses.RedshiftDataAPIServiceResponse, "batch_execute_statement",
                        batch_execute_statement, raising=False)
    monkeypatch.setattr(rsd_models.Statement, "__iter__", with_error)
    with mock_aws():
        state = {"outcome": ("FINISHED", None), "polls": 0}
        resource = warehouse_module.RedshiftDataApiResource(
            workgroup="sales-wg", database="sales", region="us-east-1", poll_seconds=0, timeout_seconds=60,
            secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:redshift-abc",
        )

        def fake_sleep(_seconds):
            state["polls"] += 1
            backend = rsd_models.redshiftdata_backends["123456789012"]["us-east-1"]
            for statement in backend.statements.values():
                if statement.status == "STARTED":
                    statement.status, statement.error = state["outcome"]

        resource._sleep = fake_sleep
        yield resource, state, rsd_models.redshiftdata_backends["123456789012"]["us-east-1"]


def test_data_api_batch_runs_as_one_request_and_polls_until_finished(data_api):
    resource, state, backend = data_api
    sqls = [transpile.redshift_sql("delete_fact_days"), transpile.redshift_sql("insert_fact_from_stage")]
    description = resource.execute_batch(sqls, {"sale_date": DAY_1, "loaded_at": dt.datetime(2026, 11, 21, 1, 2, 3)})
    assert description["Status"] == "FINISHED" and state["polls"] == 1
    (statement,) = backend.statements.values()
    assert statement.query_string.split(";\n") == sqls
    assert statement.database == "sales" and statement.secret_arn.endswith("redshift-abc")
    # Bound, never formatted: the SQL keeps its :names, the values travel as parameters.
    assert statement.query_parameters == [
        {"name": "loaded_at", "value": "2026-11-21 01:02:03"}, {"name": "sale_date", "value": "2026-11-20"}]
    assert "2026-11-20" not in statement.query_string


@pytest.mark.parametrize("status", ["FAILED", "ABORTED"])
def test_data_api_failed_or_aborted_batch_raises_with_the_error(data_api, status):
    resource, state, _ = data_api
    state["outcome"] = (status, "relation \"sales.fact_sales\" does not exist")
    with pytest.raises(warehouse_module.RedshiftDataApiError, match=f"{status}: relation") as caught:
        resource.execute_batch(["DELETE FROM sales.fact_sales WHERE sale_date = :sale_date"], {"sale_date": DAY_1})
    assert caught.value.status == status


def test_data_api_query_returns_rows_and_batches_are_validated(data_api):
    resource, _, backend = data_api
    rows = resource.query("SELECT 1 AS n")
    assert rows == []  # moto reports no result set for an unknown statement
    next(iter(backend.statements.values())).has_result_set = True
    (statement_id,) = backend.statements
    resource_rows = [resource._field(f) for f in ({"longValue": 10}, {"stringValue": "x"}, {"isNull": True})]
    assert resource_rows == [10, "x", None]
    with pytest.raises(ValueError, match="1 to 40"):
        resource.execute_batch(["SELECT 1"] * 41)
    with pytest.raises(ValueError, match="need parameters"):
        resource.execute_batch(["DELETE FROM sales.fact_sales WHERE sale_date = :sale_date"])
    with pytest.raises(ValueError, match="exactly one of"):
        warehouse_module.RedshiftDataApiResource(database="d").target()
