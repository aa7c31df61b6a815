"""Guards the "write SQL once in Redshift's dialect" rule: every statement file must be valid
Redshift SQL, and every statement the local path runs must translate to DuckDB and execute
there, with Redshift-only physical design (ENCODE, DISTKEY, SORTKEY) removed."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlglot
from sqlglot import exp

from sales_assets.resources.warehouse import DuckDBWarehouseResource
from sales_assets.warehouse import loader, transpile

# Statements that only Redshift runs: COPY (DuckDB stages with read_parquet) and the lookup
# of Redshift's load-error system view (by session, and by query id for the Data API).
REDSHIFT_ONLY = {"copy_stage_parquet", "load_error_detail", "load_error_detail_for_query"}
SAMPLE_PARAMS = {
    "sale_date": dt.date(2026, 11, 20),
    "first_day": dt.date(2026, 1, 1),
    "last_day": dt.date(2026, 12, 31),
    "loaded_at": dt.datetime(2026, 11, 21, 1, 2, 3),
    **loader.calendar_rows([2026])[0],
}


def test_sql_folder_holds_the_expected_statements():
    names = set(transpile.sql_names())
    assert {"create_schema", "create_fact_sales", "create_dim_customer", "create_dim_product",
            "create_dim_date", "create_quarantine_daily", "delete_fact_days", "insert_fact_from_stage",
            "merge_dim_customer", "merge_dim_product", "copy_stage_parquet"} <= names
    # Day-replace deletes the day; a TRUNCATE would commit implicitly on Redshift.
    trees = [sqlglot.parse_one(transpile.redshift_sql(n), read="redshift") for n in names]
    assert not any(t.find(exp.TruncateTable) for t in trees)


@pytest.mark.parametrize("name", transpile.sql_names())
def test_every_file_is_one_redshift_statement(name):
    statements = [s for s in sqlglot.parse(transpile.redshift_sql(name), read="redshift") if s]
    assert len(statements) == 1


@pytest.mark.parametrize("name", sorted(set(transpile.sql_names()) - {"copy_stage_parquet"}))
def test_every_statement_transpiles_to_duckdb(name):
    duck = transpile.duckdb_sql(name)
    for placeholder in transpile.placeholders(name):
        assert f"${placeholder}" in duck
    assert " ENCODE " not in duck.upper()
    assert "DISTKEY" not in duck.upper() and "SORTKEY" not in duck.upper()


def test_every_local_statement_executes_on_duckdb(tmp_path):
    resource = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    stages = list(loader.STAGES.values()) + list(loader.LATEST_STAGES)
    ordered = list(loader.SCHEMA_STATEMENTS) + [f"drop_{s}" for s in stages] + stages
    rest = sorted(set(transpile.sql_names()) - REDSHIFT_ONLY - set(ordered))
    with resource.session() as session:
        for name in ordered + rest:
            session.execute(name, {k: SAMPLE_PARAMS[k] for k in transpile.placeholders(name)})
        tables = {r[0] for r in session.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'sales'")}
    assert tables == {"fact_sales", "dim_customer", "dim_product", "dim_date", "quarantine_daily"}
    assert len(rest) >= 12


def test_create_statements_are_idempotent(tmp_path):
    resource = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    with resource.session() as session:
        loader.ensure_schema(session)
        loader.ensure_schema(session)


def test_encode_and_physical_design_are_stripped_on_the_tree():
    redshift = transpile.redshift_sql("create_fact_sales")
    tree = sqlglot.parse_one(redshift, read="redshift")
    assert list(tree.find_all(exp.EncodeColumnConstraint))
    assert tree.find(exp.DistKeyProperty) and tree.find(exp.SortKeyProperty)
    duck = transpile.duckdb_sql("create_fact_sales")
    assert "ENCODE" not in duck.upper() and "az64" not in duck and "zstd" not in duck
    assert "PRIMARY KEY" not in duck.upper()  # informational on Redshift, so not enforced locally either
    # Column names that merely contain the word are untouched.
    assert transpile.to_duckdb("CREATE TABLE t (encoded VARCHAR(10) ENCODE zstd)") == "CREATE TABLE t (encoded TEXT(10))"


def test_named_placeholders_become_duckdb_parameters():
    assert transpile.to_duckdb("DELETE FROM sales.fact_sales WHERE sale_date = :sale_date") == (
        "DELETE FROM sales.fact_sales WHERE sale_date = $sale_date"
    )


def test_untranslatable_statement_names_its_file():
    with pytest.raises(transpile.TranspileError, match=r"sql/broken\.sql"):
        transpile.to_duckdb("SELECT FROM WHERE (", source="sql/broken.sql")
    with pytest.raises(transpile.TranspileError, match=r"copy_stage_parquet\.sql: COPY is Redshift-only"):
        transpile.duckdb_sql("copy_stage_parquet")
    with pytest.raises(transpile.TranspileError, match="exactly one statement"):
        transpile.to_duckdb("SELECT 1; SELECT 2", source="sql/two.sql")


def test_unknown_statement_name_is_refused():
    with pytest.raises(KeyError):
        transpile.redshift_sql("drop_everything")
    with pytest.raises(KeyError):
        transpile.redshift_sql("../secrets")


@pytest.mark.parametrize("name", ["merge_dim_customer", "merge_dim_product"])
def test_dimension_upsert_stays_a_merge_on_both_engines(name):
    # The README promises MERGE on Redshift and DuckDB alike; a sqlglot release rewriting it
    # (or dropping a WHEN branch) must fail here, not silently change the upsert.
    redshift = sqlglot.parse_one(transpile.redshift_sql(name), read="redshift")
    duck = sqlglot.parse_one(transpile.duckdb_sql(name), read="duckdb")
    for tree in (redshift, duck):
        assert isinstance(tree, exp.Merge)
        whens = list(tree.find_all(exp.When))
        assert [w.args.get("matched") for w in whens] == [True, False]
