"""Guards `sales-pipeline bi-grants --apply` in aws: it is ONE transaction on whichever warehouse
the settings choose (a redshift_connector connection: BEGIN ... COMMIT; with
SALES_AWS_REDSHIFT_ACCESS=data_api or --data-api-*: the pg_group/pg_user check, then one Data
API batch), it can be re-run any number of times (Redshift has no CREATE GROUP/USER IF NOT
EXISTS: what exists is not created again), and a failure exits 1 with one line naming the
failing statement's purpose, after rolling back, with no traceback and never the password.
Run against `redshift_standin` (see its docstring for what it models)."""
from __future__ import annotations

import itertools

import pytest
import sqlglot

from sales_assets import cli
from sales_assets.reporting import grants, views
from sales_assets.reporting.grants import Existing
from sales_assets.resources.warehouse import RedshiftDataApiResource
from sales_assets_tests.reporting.redshift_standin import StandInConnection, StandInDataApi, StandInRedshift

SECRET = "hunter2-bi-grants"
HOST = "sales.abc.us-east-1.redshift.amazonaws.com"
GRANTED = {("USAGE", "reporting", "bi_readers")} | {("SELECT", f"reporting.{v}", "bi_readers") for v in views.VIEW_NAMES}


@pytest.fixture
def aws_env(monkeypatch):
    for name in ("SALES_AWS_REDSHIFT_ACCESS", "SALES_AWS_REDSHIFT_WORKGROUP", "SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER",
                 "SALES_AWS_REDSHIFT_SECRET_ARN", "SALES_AWS_REDSHIFT_IAM_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "SALES_PIPELINE_ENV": "aws", "SALES_LAKE_ROOT": "s3://bucket/lake", "SALES_SOURCE_URL": "https://source.example",
        "SALES_SOURCE_TOKEN": "t", "SALES_AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def connection_env(aws_env):
    aws_env.setenv("SALES_AWS_REDSHIFT_HOST", HOST)
    aws_env.setenv("SALES_AWS_REDSHIFT_USER", "admin")
    aws_env.setenv("SALES_AWS_REDSHIFT_PASSWORD", SECRET)
    # No SALES_AWS_REDSHIFT_IAM_ROLE_ARN: granting runs no COPY, so it needs no COPY role.
    return aws_env


def connect_to(monkeypatch, db, **options):
    """redshift_connector.connect answers stand-in connections; (connections made, connect kwargs)."""
    import redshift_connector

    connections, captured = [], {}

    def connect(**kwargs):
        captured.update(kwargs)
        connections.append(StandInConnection(db, **options))
        return connections[-1]

    monkeypatch.setattr(redshift_connector, "connect", connect)
    return connections, captured


def use_data_api(monkeypatch, db):
    fake = StandInDataApi(db)
    monkeypatch.setattr(RedshiftDataApiResource, "client", lambda self: fake)
    return fake


def one_error_line(captured) -> str:
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    return lines[0]


def test_every_variant_parses_as_redshift():
    # Whatever the catalog holds, each statement applied is one Redshift statement.
    for group, user, member, with_user in itertools.product([False, True], repeat=4):
        existing = Existing(group=group, user=user, user_in_group=member)
        for statement in grants.bi_grant_statements("bi_readers", "powerbi" if with_user else None, existing):
            assert len(sqlglot.parse(statement, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)) == 1
    check = sqlglot.parse_one(grants.EXISTING_PRINCIPALS_SQL, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)
    assert {p.name for p in check.find_all(sqlglot.exp.Placeholder)} == {"group_name", "user_name"}
    assert grants.bi_grant_statements(existing=Existing(True, True, True))[0].startswith("REVOKE")
    assert grants.bi_grant_statements(existing=Existing(True, True, False))[0] == "ALTER GROUP bi_readers ADD USER powerbi"


def test_the_stand_in_refuses_what_redshift_refuses():
    # Without the check, the full script cannot run twice: the idempotency tests below can fail.
    db = StandInRedshift()
    for statement in grants.bi_grant_statements():
        db.execute(statement)
    with pytest.raises(Exception, match="already exists"):
        db.execute(grants.bi_grant_statements()[0])


def test_apply_through_a_connection_twice_is_one_transaction_each_and_idempotent(connection_env, capsys):
    db = StandInRedshift()
    connections, captured = connect_to(connection_env, db)
    assert cli.main(["bi-grants", "--apply"]) == 0
    first = capsys.readouterr()
    assert first.out == grants.render(grants.bi_grant_statements())
    full = grants.bi_grant_statements()
    assert db.log == ["BEGIN", grants.EXISTING_PRINCIPALS_SQL, *full, "COMMIT"]
    after_first = db.state()
    assert set(db.groups) == {"bi_readers"} and db.groups["bi_readers"] == {db.users["powerbi"]}
    assert db.grants == GRANTED

    db.log.clear()
    assert cli.main(["bi-grants", "--apply"]) == 0
    second = capsys.readouterr()
    assert "CREATE" not in second.out and "ALTER GROUP" not in second.out
    assert db.log[0] == "BEGIN" and db.log[-1] == "COMMIT" and not any("CREATE" in s for s in db.log)
    assert db.state() == after_first
    assert captured["password"] == SECRET and all(c.closed for c in connections)
    assert SECRET not in first.out + first.err + second.out + second.err


def test_an_existing_user_outside_the_group_is_added_to_it(connection_env, capsys):
    db = StandInRedshift()
    db.add_user("powerbi")  # created by hand earlier, in no group
    connect_to(connection_env, db)
    assert cli.main(["bi-grants", "--apply"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CREATE GROUP bi_readers;\nALTER GROUP bi_readers ADD USER powerbi;\n")
    assert db.groups["bi_readers"] == {db.users["powerbi"]} and db.grants == GRANTED


def test_apply_through_the_data_api_twice_is_one_batch_each_and_idempotent(aws_env, capsys):
    aws_env.setenv("SALES_AWS_REDSHIFT_ACCESS", "data_api")
    aws_env.setenv("SALES_AWS_REDSHIFT_WORKGROUP", "sales-wg")
    db = StandInRedshift()
    fake = use_data_api(aws_env, db)
    assert cli.main(["bi-grants", "--apply"]) == 0
    assert fake.kinds() == ["execute_statement", "batch_execute_statement"]
    check, batch = (request for _, request in fake.requests)
    assert check["Sql"] == grants.EXISTING_PRINCIPALS_SQL and check["WorkgroupName"] == "sales-wg"
    assert sorted(p["name"] for p in check["Parameters"]) == ["group_name", "user_name"]
    assert batch["Sqls"] == grants.bi_grant_statements() and batch["StatementName"] == "sales-bi-grants"
    assert capsys.readouterr().out == grants.render(grants.bi_grant_statements())
    after_first = db.state()

    # The explicit --data-api-workgroup path, run again: nothing to create, same grants.
    assert cli.main(["bi-grants", "--data-api-workgroup", "sales-wg"]) == 0
    *_, (_, batch) = fake.requests
    assert not any(s.startswith(("CREATE", "ALTER")) for s in batch["Sqls"])
    assert db.state() == after_first and db.grants == GRANTED


def test_a_failing_statement_on_a_connection_rolls_back_and_exits_with_one_line(connection_env, capsys):
    db = StandInRedshift(views=[v for v in views.VIEW_NAMES if v != "quarantine_rate"])
    connections, _ = connect_to(connection_env, db)
    assert cli.main(["bi-grants", "--apply"]) == 1
    line = one_error_line(capsys.readouterr())
    count = len(grants.bi_grant_statements())
    assert line == (f"error: bi-grants failed at statement {count} of {count} (grant select on "
                    'reporting.quarantine_rate to bi_readers): relation "reporting.quarantine_rate" does not exist; '
                    "rolled back, nothing was changed")
    assert db.log[-1] == "ROLLBACK" and "COMMIT" not in db.log
    assert db.groups == {} and db.users == {} and db.grants == set()
    assert connections[0].closed


def test_a_failing_batch_through_the_data_api_names_the_failed_statement(aws_env, capsys):
    aws_env.setenv("SALES_AWS_REDSHIFT_ACCESS", "data_api")
    aws_env.setenv("SALES_AWS_REDSHIFT_WORKGROUP", "sales-wg")
    db = StandInRedshift()
    db.groups["bi_readers"] = set()
    db.add_user("powerbi", "bi_readers")
    db.fail_on, db.fail_message = "REVOKE ALL ON ALL TABLES", "permission denied for schema sales"
    use_data_api(aws_env, db)
    before = db.state()
    assert cli.main(["bi-grants", "--apply"]) == 1
    line = one_error_line(capsys.readouterr())
    assert line.startswith("error: bi-grants failed at statement 2 of ")
    assert "(revoke tables of sales from bi_readers): permission denied for schema sales;" in line
    assert line.endswith("rolled back, nothing was changed") and db.state() == before


def test_the_error_line_never_carries_the_password(connection_env, capsys):
    db = StandInRedshift(fail_on="CREATE USER", fail_message=f"odd driver echo password={SECRET}\nsecond line")
    connect_to(connection_env, db)
    assert cli.main(["bi-grants", "--apply"]) == 1
    line = one_error_line(capsys.readouterr())
    assert SECRET not in line and "***" in line and "(create user powerbi)" in line
    assert db.groups == {}  # the CREATE GROUP before it was rolled back


def test_a_failed_rollback_still_exits_with_one_line_and_the_session_discards_the_work(connection_env, capsys):
    db = StandInRedshift(fail_on="GRANT USAGE")
    connect_to(connection_env, db, fail_rollback=True)
    assert cli.main(["bi-grants", "--apply"]) == 1
    line = one_error_line(capsys.readouterr())
    assert "(grant usage on schema reporting to bi_readers)" in line and "ROLLBACK failed too" in line
    assert db.groups == {} and not db.in_transaction


def test_a_connection_failure_is_one_line_without_the_password(connection_env, capsys):
    import redshift_connector

    def refuse(**kwargs):
        raise OSError(f"connection refused (password {kwargs['password']})")

    connection_env.setattr(redshift_connector, "connect", refuse)
    assert cli.main(["bi-grants", "--apply"]) == 1
    line = one_error_line(capsys.readouterr())
    assert line.startswith("error: bi-grants could not connect to Redshift") and SECRET not in line
