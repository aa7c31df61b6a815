"""Read-only access for BI: a Redshift group (and optional user) that can read `reporting` only.

Callers may rely on: `bi_grant_statements(group, user)` returns Redshift statements (one per
item, no trailing semicolons) that create the group, optionally a password-less user in it
(IAM or a password set by an administrator later), grant USAGE on schema `reporting` and
SELECT on each reporting view, and revoke everything on schema `sales`. Names are validated
against a strict identifier pattern before they reach SQL text (GRANT takes no parameters).
"""
from __future__ import annotations

import re

from sales_assets.reporting.views import SCHEMA, VIEW_NAMES, qualified

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_GROUP = "bi_readers"
DEFAULT_USER = "powerbi"
WAREHOUSE_SCHEMA = "sales"


def _identifier(kind: str, value: str) -> str:
    if not IDENTIFIER.match(value or ""):
        raise ValueError(f"{kind} {value!r} is not a plain lowercase Redshift identifier")
    return value


def bi_grant_statements(group: str = DEFAULT_GROUP, user: str | None = DEFAULT_USER) -> list[str]:
    """The SQL that gives `group` (and `user`) read access to the reporting views only."""
    group = _identifier("group", group)
    statements = [f"CREATE GROUP {group}"]
    if user:
        user = _identifier("user", user)
        # PASSWORD DISABLE: the user signs in with IAM (GetClusterCredentials / Serverless
        # IAM) or an administrator sets a password out of band; none ever appears here.
        statements.append(f"CREATE USER {user} PASSWORD DISABLE IN GROUP {group}")
    statements += [
        f"REVOKE ALL ON SCHEMA {WAREHOUSE_SCHEMA} FROM GROUP {group}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {WAREHOUSE_SCHEMA} FROM GROUP {group}",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO GROUP {group}",
    ]
    statements += [f"GRANT SELECT ON {qualified(view)} TO GROUP {group}" for view in VIEW_NAMES]
    return statements


def render(statements: list[str]) -> str:
    """One script, a statement per line, for `sales-pipeline bi-grants`."""
    return "".join(f"{statement};\n" for statement in statements)
