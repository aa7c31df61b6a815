"""Read-only access for BI: a Redshift group (and optional user) that can read `reporting` only.

Callers may rely on:
- `bi_grant_statements(group, user)` returns Redshift statements (one per item, no trailing
  semicolons) that create the group, optionally a password-less user in it (IAM or a password
  set by an administrator later), revoke everything on schema `sales`, grant USAGE on schema
  `reporting` and SELECT on each reporting view. With `existing=` (what `pg_group`/`pg_user`
  already hold) the CREATEs of what exists are left out, and an existing user outside the
  group is added to it with ALTER GROUP, so the result can be run again and again.
- `bi_grant_steps(...)` is the same list as `GrantStep`s, each with a short purpose
  ("create group bi_readers") for error messages.
- `apply_bi_grants(target, group, user)` applies them idempotently as ONE transaction: on a
  connection (`RedshiftWarehouseResource`) BEGIN, the pg_group/pg_user check, the statements,
  COMMIT; through the Data API (`RedshiftDataApiResource` or the Data API warehouse) the check,
  then one batch (a batch is a transaction). Any failure rolls back and raises `GrantError`, a
  one-line message naming the failing statement's purpose and never a secret.
Names are validated against a strict identifier pattern before they reach SQL text (GRANT
and CREATE GROUP take no parameters); the existence check binds them as parameters.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any, Optional

from sales_assets.reporting.views import SCHEMA, VIEW_NAMES, qualified

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_GROUP = "bi_readers"
DEFAULT_USER = "powerbi"
WAREHOUSE_SCHEMA = "sales"
MESSAGE_LIMIT = 240

# Redshift has no CREATE GROUP / CREATE USER ... IF NOT EXISTS (see the CREATE GROUP and
# CREATE USER reference), so re-runs ask the catalog first. Leader-node catalog views only;
# `usesysid = ANY(grolist)` is how Redshift lists a group's members (pg_group.grolist).
EXISTING_PRINCIPALS_SQL = (
    "SELECT"
    " (SELECT COUNT(*) FROM pg_group WHERE groname = :group_name) AS group_exists,"
    " (SELECT COUNT(*) FROM pg_user WHERE usename = :user_name) AS user_exists,"
    " (SELECT COUNT(*) FROM pg_user AS u JOIN pg_group AS g ON u.usesysid = ANY(g.grolist)"
    " WHERE g.groname = :group_name AND u.usename = :user_name) AS user_in_group"
)


class GrantError(RuntimeError):
    """Applying the BI grants failed and was rolled back; the message is one line, no secret."""


@dataclasses.dataclass(frozen=True)
class Existing:
    """What the warehouse already holds (from `EXISTING_PRINCIPALS_SQL`)."""

    group: bool = False
    user: bool = False
    user_in_group: bool = False

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> "Existing":
        (group, user, member), = rows
        return cls(group=int(group) > 0, user=int(user) > 0, user_in_group=int(member) > 0)


@dataclasses.dataclass(frozen=True)
class GrantStep:
    purpose: str
    sql: str


def _identifier(kind: str, value: str) -> str:
    if not IDENTIFIER.match(value or ""):
        raise ValueError(f"{kind} {value!r} is not a plain lowercase Redshift identifier")
    return value


def bi_grant_steps(
    group: str = DEFAULT_GROUP, user: Optional[str] = DEFAULT_USER, existing: Existing = Existing()
) -> list[GrantStep]:
    """The statements that give `group` (and `user`) read access to the reporting views only."""
    group = _identifier("group", group)
    steps = [] if existing.group else [GrantStep(f"create group {group}", f"CREATE GROUP {group}")]
    if user:
        user = _identifier("user", user)
        if not existing.user:
            # PASSWORD DISABLE: the user signs in with IAM (GetClusterCredentials / Serverless
            # IAM) or an administrator sets a password out of band; none ever appears here.
            steps.append(GrantStep(f"create user {user}", f"CREATE USER {user} PASSWORD DISABLE IN GROUP {group}"))
        elif not existing.user_in_group:
            steps.append(GrantStep(f"add user {user} to group {group}", f"ALTER GROUP {group} ADD USER {user}"))
    steps += [
        GrantStep(f"revoke schema {WAREHOUSE_SCHEMA} from {group}", f"REVOKE ALL ON SCHEMA {WAREHOUSE_SCHEMA} FROM GROUP {group}"),
        GrantStep(f"revoke tables of {WAREHOUSE_SCHEMA} from {group}",
                  f"REVOKE ALL ON ALL TABLES IN SCHEMA {WAREHOUSE_SCHEMA} FROM GROUP {group}"),
        GrantStep(f"grant usage on schema {SCHEMA} to {group}", f"GRANT USAGE ON SCHEMA {SCHEMA} TO GROUP {group}"),
    ]
    steps += [GrantStep(f"grant select on {qualified(view)} to {group}", f"GRANT SELECT ON {qualified(view)} TO GROUP {group}")
              for view in VIEW_NAMES]
    return steps


def bi_grant_statements(
    group: str = DEFAULT_GROUP, user: Optional[str] = DEFAULT_USER, existing: Existing = Existing()
) -> list[str]:
    """The SQL of `bi_grant_steps`."""
    return [step.sql for step in bi_grant_steps(group, user, existing)]


def render(statements: list[str]) -> str:
    """One script, a statement per line, for `sales-pipeline bi-grants`."""
    return "".join(f"{statement};\n" for statement in statements)


def _reason(error: BaseException, redact: Callable[[str], str] = lambda text: text) -> str:
    """The server's message in one short line (redshift_connector puts a dict of fields,
    the message under 'M', in args[0]), secrets masked by `redact` before it is shortened."""
    first = error.args[0] if error.args else None
    text = str(first.get("M") or first) if isinstance(first, dict) else str(error) or type(error).__name__
    text = " ".join(redact(text).split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _failed(step: Optional[GrantStep], position: str, reason: str, outcome: str) -> GrantError:
    where = f"at {position} ({step.purpose})" if step else "before any grant"
    return GrantError(f"bi-grants failed {where}: {reason}; {outcome}")


def _principal_params(group: str, user: Optional[str]) -> dict[str, str]:
    # Without a user the user counts are ignored; the group's name stands in because the Data
    # API refuses an empty parameter value.
    return {"group_name": group, "user_name": user or group}


def _apply_on_connection(
    warehouse: Any, group: str, user: Optional[str], show: Callable[[list[GrantStep]], None]
) -> list[GrantStep]:
    with contextlib.ExitStack() as stack:
        try:
            connection = stack.enter_context(warehouse.connection())  # ConnectionError, without any secret
        except Exception as error:
            raise GrantError(f"bi-grants could not connect to Redshift: {_reason(error, warehouse.redact)}") from None
        return _apply_in_transaction(connection, warehouse.redact, group, user, show)


def _apply_in_transaction(
    connection: Any, redact: Callable[[str], str], group: str, user: Optional[str],
    show: Callable[[list[GrantStep]], None],
) -> list[GrantStep]:
    cursor = connection.cursor()
    cursor.paramstyle = "named"
    step, position = None, "the pg_group/pg_user check"
    try:
        cursor.execute("BEGIN")
        # Inside the transaction: what it sees is what the CREATEs below act on.
        cursor.execute(EXISTING_PRINCIPALS_SQL, _principal_params(group, user))
        steps = bi_grant_steps(group, user, Existing.from_rows(cursor.fetchall()))
        show(steps)
        for number, step in enumerate(steps, 1):
            position = f"statement {number} of {len(steps)}"
            cursor.execute(step.sql)
        step, position = None, "COMMIT"
        cursor.execute("COMMIT")
    except Exception as error:
        reason = _reason(error, redact)
        try:
            cursor.execute("ROLLBACK")
            outcome = "rolled back, nothing was changed"
        except Exception:  # the server discards an unfinished transaction when the session ends
            outcome = "ROLLBACK failed too; the session is closed, so the server discards the transaction"
        raise _failed(step, position, reason, outcome) from None
    return steps


def _apply_with_data_api(
    data_api: Any, group: str, user: Optional[str], show: Callable[[list[GrantStep]], None]
) -> list[GrantStep]:
    from sales_assets.resources.warehouse import RedshiftDataApiError

    try:
        existing = Existing.from_rows(data_api.query(EXISTING_PRINCIPALS_SQL, _principal_params(group, user)))
    except Exception as error:
        raise GrantError(f"bi-grants failed at the pg_group/pg_user check: {_reason(error)}; nothing was changed") from None
    steps = bi_grant_steps(group, user, existing)
    show(steps)
    try:
        data_api.execute_batch([step.sql for step in steps], name="sales-bi-grants")  # one batch: all or nothing
    except RedshiftDataApiError as error:
        if error.status not in ("FAILED", "ABORTED"):
            raise GrantError(
                f"bi-grants batch {error.statement_id} {error.status}: {_reason(error)}; "
                "check it with `aws redshift-data describe-statement` before running again"
            ) from None
        failed = _failed_sub_statement(data_api, error.statement_id, len(steps))
        step = steps[failed - 1] if failed else None
        position = f"statement {failed} of {len(steps)}" if failed else "the batch"
        raise _failed(step, position, _reason(RuntimeError(error.error)),
                      "the batch is one transaction: rolled back, nothing was changed") from None
    except Exception as error:
        raise GrantError(f"bi-grants batch could not run: {_reason(error)}; nothing was changed") from None
    return steps


def _failed_sub_statement(data_api: Any, statement_id: str, count: int) -> Optional[int]:
    """The 1-based position of the batch's failed statement (sub-statement ids end `:N`)."""
    try:
        subs = data_api.client().describe_statement(Id=statement_id).get("SubStatements") or []
    except Exception:  # only used to make the message more precise
        return None
    for sub in subs:
        if sub.get("Status") == "FAILED":  # those after it are ABORTED, not at fault
            number = str(sub.get("Id", "")).rpartition(":")[2]
            if number.isdigit() and 1 <= int(number) <= count:
                return int(number)
    return None


def apply_bi_grants(
    target: Any,
    group: str = DEFAULT_GROUP,
    user: Optional[str] = DEFAULT_USER,
    show: Callable[[list[GrantStep]], None] = lambda steps: None,
) -> list[GrantStep]:
    """Apply the grants idempotently as one transaction; the steps run (after `show(steps)`).

    `target`: a `RedshiftWarehouseResource`, a `RedshiftDataApiWarehouseResource` or a
    `RedshiftDataApiResource`. Raises `GrantError` (rolled back) on any failure.
    """
    from sales_assets.resources.warehouse import (
        RedshiftDataApiResource,
        RedshiftDataApiWarehouseResource,
        RedshiftWarehouseResource,
    )

    group = _identifier("group", group)
    if user:
        user = _identifier("user", user)
    if isinstance(target, RedshiftWarehouseResource):
        return _apply_on_connection(target, group, user, show)
    if isinstance(target, RedshiftDataApiWarehouseResource):
        target = target.data_api
    if isinstance(target, RedshiftDataApiResource):
        return _apply_with_data_api(target, group, user, show)
    raise GrantError(f"bi-grants applies to Redshift only, not to {type(target).__name__} (it has no users)")
