"""Guards the public connection surface bi-grants uses on `RedshiftWarehouseResource`: the
`connection()` context manager closes the connection whatever happens inside it, and `redact`
masks the password however it was given (a plain value or a `dg.EnvVar` resolved outside a
run), so callers outside the resource never need its private `_connect`/`_password`."""
from __future__ import annotations

import ast
from pathlib import Path

import dagster as dg
import pytest

from sales_assets.reporting import grants
from sales_assets.resources.warehouse import RedshiftWarehouseResource
from sales_assets_tests.reporting.redshift_standin import StandInConnection, StandInRedshift

SECRET = "hunter2-connection"
ROLE = "arn:aws:iam::123456789012:role/copy"


def resource(**overrides) -> RedshiftWarehouseResource:
    fields = {"host": "sales.example.redshift.amazonaws.com", "user": "admin", "password": SECRET, "iam_role_arn": ROLE}
    return RedshiftWarehouseResource(**{**fields, **overrides})


@pytest.fixture
def stand_in(monkeypatch):
    import redshift_connector

    made = []

    def connect(**kwargs):
        made.append(StandInConnection(StandInRedshift()))
        return made[-1]

    monkeypatch.setattr(redshift_connector, "connect", connect)
    return made


def test_connection_is_autocommit_and_closed_on_exit_and_on_error(stand_in):
    with resource().connection() as connection:
        assert connection.autocommit is True and not connection.closed
    assert stand_in[0].closed
    with pytest.raises(RuntimeError, match="inside"):
        with resource().connection():
            raise RuntimeError("inside")
    assert stand_in[1].closed


def test_redact_masks_a_plain_and_an_env_var_password(monkeypatch):
    assert resource().redact(f"echo {SECRET} twice {SECRET}") == "echo *** twice ***"
    monkeypatch.setenv("H4_TEST_REDSHIFT_PASSWORD", SECRET)
    from_env = resource(password=dg.EnvVar("H4_TEST_REDSHIFT_PASSWORD"))
    assert from_env.redact(f"password={SECRET}") == "password=***"
    assert resource(password=None, workgroup="wg").redact("nothing to hide") == "nothing to hide"


def test_grants_uses_no_private_member_of_the_warehouse_resource():
    tree = ast.parse(Path(grants.__file__).read_text())
    private = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
               and isinstance(node.value, ast.Name) and node.value.id == "warehouse" and node.attr.startswith("_")}
    assert private == set()
