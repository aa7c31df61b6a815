"""Guards the aws warehouse chosen with SALES_AWS_REDSHIFT_ACCESS=data_api: the warehouse asset
must then load through Redshift Data API batches (no connection), and its checks, the reporting
views and the dashboard must read the real warehouse through the Data API with the same Python
types as the connection path (Decimal money, dates), so a check cannot pass on an empty or
mistyped answer. Re-running a day must leave exactly one copy, and a bad row must fail its check.

The Data API here is a stand-in `redshift-data` client that runs each request on a DuckDB
warehouse (the statements transpiled as on the local path), one request = one session (temporary
tables dropped after it) and a batch = one transaction; COPY reads its manifest and the listed
parquet from moto's S3, so the manifests written by the load are what gets loaded.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import boto3
import dagster as dg
import pytest
from moto import mock_aws
from sqlglot import exp

from sales_assets.reporting.assets import reporting_views, sales_dashboard
from sales_assets.resources import build_resources
from sales_assets.resources.lake import S3LakeResource
from sales_assets.resources.warehouse import (
    DuckDBSession,
    DuckDBWarehouseResource,
    RedshiftDataApiResource,
    RedshiftDataApiWarehouseResource,
    _bind,
)
from sales_assets.settings import load_settings
from sales_assets.warehouse import transpile
from sales_assets.warehouse.assets import (
    CHECK_HAS_DIMENSIONS,
    CHECK_MATCHES_CURATED,
    CHECK_NO_NEGATIVE_QUANTITIES,
    CHECK_UNIQUE_KEYS,
    FACT_SALES,
    warehouse_tables,
)
from sales_assets_tests.warehouse.curated_builders import (
    commit_curated_day,
    expected_figures,
    make_line,
    make_quarantined,
)

BUCKET = "sales-lake-test"
LAKE = f"s3://{BUCKET}/lake"
ROLE = "arn:aws:iam::123456789012:role/sales-redshift-copy"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redshift-abc"
DAY_1, DAY_2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
PAGE_SIZE = 3  # small, so multi-page results are read


def _field(value) -> dict:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, dt.datetime):
        return {"stringValue": value.isoformat(sep=" ")}
    if isinstance(value, dt.date):
        return {"stringValue": value.isoformat()}
    return {"stringValue": str(value)}  # Decimal and text travel as strings, as on Redshift


def _type_name(duckdb_type: str) -> str:
    duckdb_type = str(duckdb_type).upper()
    for prefix, name in (("DECIMAL", "numeric"), ("TIMESTAMP", "timestamp"), ("DATE", "date"),
                         ("VARCHAR", "varchar"), ("BOOLEAN", "bool"), ("DOUBLE", "float8")):
        if duckdb_type.startswith(prefix):
            return name
    return "int8"


class DuckDBDataApi:
    """A `redshift-data` client backed by a DuckDB warehouse session (see the module docstring)."""

    def __init__(self, session: DuckDBSession, s3, workdir: Path):
        self.session, self.s3, self.workdir = session, s3, workdir
        self.statements: dict[str, dict] = {}
        self.requests: list[dict] = []

    def _run(self, sql: str, params: dict) -> dict:
        tree = transpile.parse_redshift(sql)
        if isinstance(tree, exp.Copy):
            return {"rows": None, "count": self._copy(tree.this.name, tree.args["files"][0].name)}
        name, bound = _bind(sql, params)
        cursor = self.session.connection.execute(DuckDBSession._sql(name), bound or None)
        rows = cursor.fetchall() if cursor.description else []
        if isinstance(tree, exp.Query):
            return {"rows": rows, "types": [_type_name(d[1]) for d in cursor.description], "count": len(rows)}
        return {"rows": None, "count": int(rows[0][0]) if rows and isinstance(rows[0][0], int) else -1}

    def _copy(self, stage: str, manifest_uri: str) -> int:
        bucket, key = manifest_uri[len("s3://"):].split("/", 1)
        entries = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())["entries"]
        folder = self.workdir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        files = []
        for n, entry in enumerate(entries):
            assert entry["mandatory"]
            bucket, key = entry["url"][len("s3://"):].split("/", 1)
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert len(body) == entry["meta"]["content_length"]
            files.append(folder / f"part-{n:05d}.parquet")
            files[-1].write_bytes(body)
        assert stage in {"stage_order_lines", "stage_dim_customer", "stage_dim_product", "stage_quarantine"}
        # By position, as Redshift's parquet COPY maps columns.
        self.session.connection.execute(
            f"INSERT INTO {stage} SELECT * FROM read_parquet($files, hive_partitioning = false)",
            {"files": [str(f) for f in files]},
        )
        return len(files)

    def _end_session(self) -> None:
        # A Data API request is its own database session: its temporary tables end with it.
        for (name,) in self.session.connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary"
        ).fetchall():
            self.session.connection.execute(f'DROP TABLE temp.main."{name}"')

    def _request(self, sqls: list[str], request: dict) -> dict:
        self.requests.append(request)
        params = {p["name"]: p["value"] for p in request.get("Parameters", [])}
        statement_id = str(uuid.uuid4())
        record = {"Id": statement_id, "Status": "FINISHED", "HasResultSet": False, "ResultRows": -1}
        self.session.connection.execute("BEGIN TRANSACTION")
        try:
            results = [self._run(sql, params) for sql in sqls]
            self.session.connection.execute("COMMIT")
            last = results[-1]
            record.update(HasResultSet=last["rows"] is not None, ResultRows=last["count"], _result=last)
        except Exception as error:  # the whole batch rolls back, as on Redshift
            self.session.connection.execute("ROLLBACK")
            record.update(Status="FAILED", Error=f"{type(error).__name__}: {error}")
        finally:
            self._end_session()
        self.statements[statement_id] = record
        return {"Id": statement_id}

    def batch_execute_statement(self, *, Sqls, **request):  # noqa: N803 (boto3's names)
        return self._request(list(Sqls), request)

    def execute_statement(self, *, Sql, **request):  # noqa: N803
        return self._request([Sql], request)

    def describe_statement(self, *, Id):  # noqa: N803
        return {k: v for k, v in self.statements[Id].items() if not k.startswith("_")}

    def get_statement_result(self, *, Id, NextToken=None):  # noqa: N803
        result = self.statements[Id]["_result"]
        start = int(NextToken or 0)
        page = {
            "Records": [[_field(v) for v in row] for row in result["rows"][start:start + PAGE_SIZE]],
            "ColumnMetadata": [{"typeName": t} for t in result["types"]],
        }
        if start + PAGE_SIZE < len(result["rows"]):
            page["NextToken"] = str(start + PAGE_SIZE)
        return page


def _lines():
    day_1 = [
        make_line("O-1", 1, DAY_1, quantity=3, unit_price="19.99", discount="0.15", tax_rate="0.0825"),
        make_line("O-1", 2, DAY_1, quantity=1, unit_price="0.05", discount="0.5", customer_id="C2", product_id="P2"),
        make_line("O-2", 1, DAY_1, quantity=7, unit_price="1234567.89", hour=23),
    ]
    day_2 = [make_line("O-3", 1, DAY_2, quantity=2, unit_price="5.55", hour=0, product_id="P3")]
    return {DAY_1: day_1, DAY_2: day_2}


@pytest.fixture
def data_api_world(tmp_path, monkeypatch):
    """moto S3 holding two curated days, a DuckDB-backed Data API, the aws resources with it."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        warehouse_file = DuckDBWarehouseResource(path=str(tmp_path / "redshift.duckdb"))
        with warehouse_file.session() as session:
            fake = DuckDBDataApi(session, s3, tmp_path / "copied")
            # Dagster re-creates resources per run, so the stand-in is installed on the class.
            monkeypatch.setattr(RedshiftDataApiResource, "client", lambda self: fake)
            settings = load_settings({
                "SALES_PIPELINE_ENV": "aws", "SALES_LAKE_ROOT": LAKE, "SALES_SOURCE_URL": "https://source.example",
                "SALES_SOURCE_TOKEN": "t", "SALES_AWS_REGION": "us-east-1", "SALES_AWS_REDSHIFT_ACCESS": "data_api",
                "SALES_AWS_REDSHIFT_WORKGROUP": "sales-wg", "SALES_AWS_REDSHIFT_SECRET_ARN": SECRET_ARN,
                "SALES_AWS_REDSHIFT_IAM_ROLE_ARN": ROLE,
            })
            resources = build_resources(settings)
            for day, lines in _lines().items():
                quarantine = [make_quarantined("Q-1", 1, DAY_1)] if day == DAY_1 else []
                commit_curated_day(resources["lake"], day, lines, quarantine=quarantine)
            yield fake, session, resources, tmp_path


def _materialize(resources, day, tmp_path):
    return dg.materialize(
        [warehouse_tables, reporting_views, sales_dashboard],
        partition_key=day.isoformat(),
        resources={"warehouse": resources["warehouse"], "lake": resources["lake"]},
        run_config={"ops": {"reporting__sales_dashboard": {"config": {"output_path": str(tmp_path / "dash.html")}}}},
        raise_on_error=False,
    )


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_build_resources_picks_the_data_api_warehouse(data_api_world):
    _, _, resources, _ = data_api_world
    warehouse = resources["warehouse"]
    assert isinstance(warehouse, RedshiftDataApiWarehouseResource)
    assert warehouse.data_api.target() == {"Database": "dev", "WorkgroupName": "sales-wg", "SecretArn": SECRET_ARN}
    assert warehouse.iam_role_arn == ROLE and isinstance(resources["lake"], S3LakeResource)


def test_the_warehouse_loads_and_checks_through_the_data_api(data_api_world):
    fake, session, resources, tmp_path = data_api_world
    for day in (DAY_1, DAY_2, DAY_1, DAY_1):  # day 1 re-run twice
        result = _materialize(resources, day, tmp_path)
        assert result.success, day
        checks = _checks(result)
        assert {name: c.passed for name, c in checks.items()} == dict.fromkeys(
            [CHECK_MATCHES_CURATED, CHECK_UNIQUE_KEYS, CHECK_HAS_DIMENSIONS, CHECK_NO_NEGATIVE_QUANTITIES], True)

    # Loaded through batches only: no connection, every request to the workgroup with the secret.
    assert all(r["WorkgroupName"] == "sales-wg" and r["SecretArn"] == SECRET_ARN for r in fake.requests)
    # Exactly one copy of each day, with the exact money.
    held = session.execute("SELECT sale_date, COUNT(*), SUM(net) FROM sales.fact_sales GROUP BY 1 ORDER BY 1")
    assert [(d, n, net) for d, n, net in held] == [(day, *expected_figures(lines)) for day, lines in _lines().items()]
    assert session.execute("SELECT COUNT(*) FROM sales.quarantine_daily") == [(1,)]

    # The check compared real figures read back through the Data API (typed, not strings).
    by_day = _checks(result)[CHECK_MATCHES_CURATED].metadata["by_day"].value
    count, net = expected_figures(_lines()[DAY_1])
    assert by_day == {DAY_1.isoformat(): {"curated_lines": count, "warehouse_lines": count,
                                          "curated_net": str(net), "warehouse_net": str(net)}}
    [materialization] = [m for m in result.get_asset_materialization_events() if m.asset_key == FACT_SALES]
    metadata = materialization.materialization.metadata
    assert metadata["rows_loaded_this_run"].value == count
    assert metadata["data_api_batches"].value == ["sales-schema", "sales-calendar-2026", "sales-days-2026-11-20-2026-11-20"]
    assert metadata["parquet_files_copied"].value == {"order_lines": 1, "dim_customer": 1, "dim_product": 1,
                                                       "quarantine": 1}
    assert metadata["dagster/row_count"].value == 4  # both days' lines
    # Views and the dashboard read through the Data API too; the page charts both days.
    page = (tmp_path / "dash.html").read_text()
    assert DAY_1.isoformat() in page and DAY_2.isoformat() in page and "<svg" in page
    # Temporary staging tables never outlive their request.
    assert session.connection.execute("SELECT COUNT(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)


def test_a_bad_row_fails_its_check_through_the_data_api(data_api_world):
    fake, session, resources, tmp_path = data_api_world
    commit_curated_day(resources["lake"], DAY_2, [make_line("O-9", 1, DAY_2, quantity=-2, unit_price="3.00")])
    result = _materialize(resources, DAY_2, tmp_path)
    check = _checks(result)[CHECK_NO_NEGATIVE_QUANTITIES]
    assert not check.passed and check.metadata["by_day"].value == {DAY_2.isoformat(): 1}
    assert _checks(result)[CHECK_MATCHES_CURATED].passed


def test_a_data_api_session_refuses_what_needs_a_database_session():
    session = RedshiftDataApiWarehouseResource(
        data_api=RedshiftDataApiResource(workgroup="wg"), iam_role_arn=ROLE
    )
    with session.session() as opened:
        with pytest.raises(NotImplementedError, match="temporary tables"):
            opened.stage_parquet("stage_order_lines", [f"{LAKE}/curated/order_lines/order_date={DAY_1}/"])
        with pytest.raises(NotImplementedError, match="execute_batch"):
            with opened.transaction():
                pass
    with pytest.raises(ValueError, match="exactly one of"):
        with RedshiftDataApiWarehouseResource(data_api=RedshiftDataApiResource(), iam_role_arn=ROLE).session():
            pass
