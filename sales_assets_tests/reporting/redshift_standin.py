"""A Redshift stand-in for exactly the statements `bi-grants` runs, behind the two ways the code
reaches Redshift: a redshift_connector-like connection and a boto3 `redshift-data`-like client.

What it models, as Redshift does: CREATE GROUP / CREATE USER fail when the name exists (there
is no IF NOT EXISTS), CREATE USER ... IN GROUP and GRANT/REVOKE fail on a missing group or view,
BEGIN/ROLLBACK restore the catalog, a session closed inside a transaction discards it, a Data
API batch is one transaction. The pg_group/pg_user check is not interpreted: it is transpiled
from Redshift by sqlglot and executed by DuckDB on pg_group/pg_user tables built from the
stand-in's catalog (grolist an INTEGER[] like Redshift's), so a wrong query gives wrong answers.
Any other statement is an AssertionError.
"""
from __future__ import annotations

import copy
import itertools
import re

import duckdb
import sqlglot

from sales_assets.reporting.views import VIEW_NAMES


class StandInError(Exception):
    """Shaped like redshift_connector's errors: a dict of fields, the message under 'M'."""

    def __init__(self, message: str, code: str = "42000"):
        super().__init__({"S": "ERROR", "C": code, "M": message})


class StandInRedshift:
    def __init__(self, views=VIEW_NAMES, fail_on: str | None = None, fail_message: str = "simulated failure"):
        self.groups: dict[str, set[int]] = {}
        self.users: dict[str, int] = {}
        self.grants: set[tuple[str, str, str]] = set()
        self.views = {f"reporting.{v}" for v in views}
        self.fail_on, self.fail_message = fail_on, fail_message
        self.log: list[str] = []
        self._snapshot = None
        self._ids = itertools.count(100)

    # catalog ----------------------------------------------------------------------------
    def state(self):
        return copy.deepcopy((self.groups, self.users, self.grants))

    def add_user(self, name: str, group: str | None = None) -> None:
        self.users[name] = next(self._ids)
        if group:
            self.groups.setdefault(group, set()).add(self.users[name])

    @property
    def in_transaction(self) -> bool:
        return self._snapshot is not None

    def discard_transaction(self) -> None:
        if self._snapshot is not None:
            self.groups, self.users, self.grants = self._snapshot
            self._snapshot = None

    def _group(self, name: str) -> set[int]:
        if name not in self.groups:
            raise StandInError(f'group "{name}" does not exist', "42704")
        return self.groups[name]

    # statements -------------------------------------------------------------------------
    def execute(self, sql: str, params: dict | None = None) -> list[tuple]:
        self.log.append(sql)
        if self.fail_on and self.fail_on in sql:
            raise StandInError(self.fail_message)
        text = " ".join(sql.split())
        if text == "BEGIN":
            assert not self.in_transaction, "BEGIN inside a transaction"
            self._snapshot = self.state()
            return []
        if text == "COMMIT":
            self._snapshot = None
            return []
        if text == "ROLLBACK":
            self.discard_transaction()
            return []
        if text.startswith("SELECT") and "pg_group" in text:
            return self._catalog_query(sql, params or {})
        if m := re.fullmatch(r"CREATE GROUP (\w+)", text):
            if m[1] in self.groups:
                raise StandInError(f'group "{m[1]}" already exists', "42710")
            self.groups[m[1]] = set()
        elif m := re.fullmatch(r"CREATE USER (\w+) PASSWORD DISABLE IN GROUP (\w+)", text):
            if m[1] in self.users:
                raise StandInError(f'user "{m[1]}" already exists', "42710")
            members = self._group(m[2])
            self.users[m[1]] = next(self._ids)
            members.add(self.users[m[1]])
        elif m := re.fullmatch(r"ALTER GROUP (\w+) ADD USER (\w+)", text):
            if m[2] not in self.users:
                raise StandInError(f'user "{m[2]}" does not exist', "42704")
            self._group(m[1]).add(self.users[m[2]])
        elif m := re.fullmatch(r"REVOKE ALL ON (SCHEMA|ALL TABLES IN SCHEMA) (\w+) FROM GROUP (\w+)", text):
            self._group(m[3])
            schema = m[2]
            self.grants = {g for g in self.grants if not (g[2] == m[3] and g[1].split(".")[0] == schema)}
        elif m := re.fullmatch(r"GRANT USAGE ON SCHEMA (\w+) TO GROUP (\w+)", text):
            self._group(m[2])
            self.grants.add(("USAGE", m[1], m[2]))
        elif m := re.fullmatch(r"GRANT SELECT ON (\w+\.\w+) TO GROUP (\w+)", text):
            self._group(m[2])
            if m[1] not in self.views:
                raise StandInError(f'relation "{m[1]}" does not exist', "42P01")
            self.grants.add(("SELECT", m[1], m[2]))
        else:
            raise AssertionError(f"the stand-in does not know this statement: {sql}")
        return []

    def _catalog_query(self, sql: str, params: dict) -> list[tuple]:
        duck = duckdb.connect()
        try:
            duck.execute("CREATE TABLE pg_user (usename VARCHAR, usesysid INTEGER)")
            duck.execute("CREATE TABLE pg_group (groname VARCHAR, grosysid INTEGER, grolist INTEGER[])")
            for name, user_id in self.users.items():
                duck.execute("INSERT INTO pg_user VALUES (?, ?)", [name, user_id])
            for number, (name, members) in enumerate(self.groups.items()):
                # Redshift's grolist is NULL for a group without members.
                duck.execute("INSERT INTO pg_group VALUES (?, ?, ?)", [name, number, sorted(members) or None])
            (duck_sql,) = sqlglot.transpile(sql, read="redshift", write="duckdb")
            return duck.execute(duck_sql, params).fetchall()
        finally:
            duck.close()


# connection (redshift_connector) ------------------------------------------------------------


class StandInCursor:
    def __init__(self, connection):
        self.connection = connection
        self.paramstyle = "format"
        self.description = None
        self._rows: list[tuple] = []

    def execute(self, sql, args=None):
        if self.connection.closed:
            raise StandInError("connection is closed")
        if self.connection.fail_rollback and sql == "ROLLBACK":
            raise StandInError("server closed the connection unexpectedly")
        if args:
            assert self.paramstyle == "named", "bound parameters need paramstyle named"
        self._rows = self.connection.db.execute(sql, args)
        self.description = [("c",)] if self._rows else None
        return self

    def fetchall(self):
        return tuple(self._rows)


class StandInConnection:
    def __init__(self, db: StandInRedshift, fail_rollback: bool = False):
        self.db = db
        self.fail_rollback = fail_rollback
        self.autocommit = False
        self.closed = False

    def cursor(self):
        return StandInCursor(self)

    def close(self):
        self.closed = True
        self.db.discard_transaction()  # the server discards an unfinished transaction


# Data API (boto3 redshift-data) -------------------------------------------------------------


class StandInDataApi:
    def __init__(self, db: StandInRedshift):
        self.db = db
        self.descriptions: dict[str, dict] = {}
        self.results: dict[str, list[tuple]] = {}
        self.requests: list[tuple[str, dict]] = []
        self._ids = itertools.count(1)

    def execute_statement(self, **request):
        self.requests.append(("execute_statement", request))
        statement_id = f"s-{next(self._ids)}"
        params = {p["name"]: p["value"] for p in request.get("Parameters", [])}
        try:
            rows = self.db.execute(request["Sql"], params)
        except StandInError as error:
            self.descriptions[statement_id] = {"Id": statement_id, "Status": "FAILED", "Error": error.args[0]["M"]}
        else:
            self.results[statement_id] = rows
            self.descriptions[statement_id] = {"Id": statement_id, "Status": "FINISHED", "HasResultSet": bool(rows)}
        return {"Id": statement_id}

    def batch_execute_statement(self, **request):
        self.requests.append(("batch_execute_statement", request))
        statement_id = f"b-{next(self._ids)}"
        self.db.execute("BEGIN")
        subs, error = [], None
        for number, sql in enumerate(request["Sqls"], 1):
            if error is not None:
                subs.append({"Id": f"{statement_id}:{number}", "Status": "ABORTED"})
                continue
            try:
                self.db.execute(sql)
                subs.append({"Id": f"{statement_id}:{number}", "Status": "FINISHED"})
            except StandInError as failure:
                error = failure.args[0]["M"]
                subs.append({"Id": f"{statement_id}:{number}", "Status": "FAILED", "Error": error})
        self.db.execute("ROLLBACK" if error else "COMMIT")
        self.descriptions[statement_id] = {"Id": statement_id, "Status": "FAILED" if error else "FINISHED",
                                           "Error": error or "", "SubStatements": subs}
        return {"Id": statement_id}

    def describe_statement(self, Id):  # noqa: N803
        return self.descriptions[Id]

    def get_statement_result(self, Id, NextToken=None):  # noqa: N803
        rows = self.results[Id]
        return {"Records": [[{"longValue": int(v)} for v in row] for row in rows],
                "ColumnMetadata": [{"typeName": "int8"} for _ in (rows[0] if rows else ())]}

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.requests]
