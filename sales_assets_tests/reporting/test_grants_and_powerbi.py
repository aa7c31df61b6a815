"""Guards what ships for BI users: the bi-grants SQL parses as Redshift, grants SELECT on the
reporting views only (nothing on `sales`, no write privilege), refuses injected names, and
is printed by `sales-pipeline bi-grants`; the Power BI files are valid (.pbids JSON for the
amazon-redshift protocol, M that navigates to every star view) and refuse odd endpoints."""
from __future__ import annotations

import json

import pytest
import sqlglot
from sqlglot import exp

from sales_assets import cli
from sales_assets.reporting import grants, powerbi, views


def test_grant_statements_parse_as_redshift_and_grant_read_only_on_reporting_views():
    statements = grants.bi_grant_statements("bi_readers", "powerbi")
    trees = [sqlglot.parse_one(s, read="redshift", error_level=sqlglot.ErrorLevel.RAISE) for s in statements]
    granted = [t for t in trees if isinstance(t, exp.Grant)]
    revoked = [t for t in trees if isinstance(t, exp.Revoke)]
    assert statements[:2] == ["CREATE GROUP bi_readers", "CREATE USER powerbi PASSWORD DISABLE IN GROUP bi_readers"]
    privileges = {p.this.name.upper() for t in granted for p in t.args["privileges"]}
    assert privileges == {"USAGE", "SELECT"}
    selected = sorted(t.args["securable"].sql(dialect="redshift") for t in granted
                      if t.args["privileges"][0].this.name.upper() == "SELECT")
    assert selected == sorted(f"reporting.{v}" for v in views.VIEW_NAMES)
    assert all(p.args.get("kind") == "GROUP" and p.name == "bi_readers"
               for t in granted for p in t.args["principals"])
    # Nothing is granted on the warehouse schema; everything there is revoked.
    assert not any(t.args["securable"].sql().startswith("sales") for t in granted)
    assert len(revoked) == 1 and any(s.startswith("REVOKE ALL ON ALL TABLES IN SCHEMA sales FROM") for s in statements)
    assert all(t.find(exp.Placeholder) is None for t in trees)


@pytest.mark.parametrize("bad", ["bi; DROP TABLE sales.fact_sales", "BI", "a b", "", "x" * 70])
def test_grant_names_are_validated(bad):
    with pytest.raises(ValueError):
        grants.bi_grant_statements(group=bad)
    if bad:  # an empty user means "no user", not a name
        with pytest.raises(ValueError):
            grants.bi_grant_statements(user=bad)


def test_bi_grants_command_prints_the_script_and_refuses_apply_locally(capsys, monkeypatch):
    assert cli.main(["bi-grants", "--no-user"]) == 0
    printed = capsys.readouterr().out
    assert printed == grants.render(grants.bi_grant_statements("bi_readers", None))
    assert "CREATE USER" not in printed and printed.count(";\n") == len(views.VIEW_NAMES) + 4
    monkeypatch.setenv("SALES_PIPELINE_ENV", "local")
    assert cli.main(["bi-grants", "--apply"]) == 2


def test_powerbi_command_writes_the_connection_and_queries(tmp_path, capsys):
    host = "sales.abc123.eu-west-1.redshift.amazonaws.com"
    assert cli.main(["powerbi", "--host", host, "--database", "sales", "--out", str(tmp_path)]) == 0
    pbids = json.loads((tmp_path / "sales_redshift.pbids").read_text())
    (connection,) = pbids["connections"]
    assert connection["details"] == {"protocol": "amazon-redshift", "address": {"server": f"{host}:5439", "database": "sales"}}
    assert connection["mode"] == "DirectQuery"
    for mode in ("import", "directquery"):
        m = (tmp_path / f"queries_{mode}.pq").read_text()
        assert f'AmazonRedshift.Database("{host}:5439", "sales")' in m
        for view in views.STAR_VIEWS:
            assert f'Reporting{{[Name="{view}"]}}[Data]' in m
    assert '{"net", Currency.Type}' in (tmp_path / "queries_import.pq").read_text()
    assert "TransformColumnTypes" not in (tmp_path / "queries_directquery.pq").read_text()


@pytest.mark.parametrize("host", ['evil") in Source', "a b", ""])
def test_powerbi_refuses_hosts_that_would_break_the_files(host):
    with pytest.raises(ValueError):
        powerbi.render_queries(host)


def test_shipped_powerbi_folder_matches_the_generator():
    # The committed files are the generator's output for the placeholder host; the model
    # description names every measure the issue asks for.
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "powerbi"
    host = json.loads((folder / "sales_redshift.pbids").read_text())["connections"][0]["details"]["address"]["server"]
    name, port = host.rsplit(":", 1)
    assert (folder / "queries_import.pq").read_text() == powerbi.render_queries(name, int(port), "dev", "Import")
    measures = (folder / "measures.dax").read_text()
    for measure in ("Net Revenue :=", "Orders :=", "Average Order Value :=", "Units :=", "Discount Rate :=",
                    "Returns Rate :=", "Net Revenue YoY % :="):
        assert measure in measures
    model = (folder / "model.md").read_text()
    assert "Mark `calendar` as the date table" in model and "sales[sale_date]" in model
