"""Amazon States Language from the code location's asset graph: pure functions, no AWS calls.

What a caller may rely on:
- ``pipeline_steps(defs)`` reads the graph only through public Dagster APIs (``Definitions.assets``
  → each ``AssetsDefinition``'s ``specs`` with their ``deps`` and ``metadata``); one step per
  computation (a multi-asset is one Glue job run / one Redshift batch), mapped by the
  ``aws/integration`` metadata its specs declare, never by asset names. Steps without it are
  returned in ``skipped`` and bridged (their dependencies pass through).
- ``build_state_machine(steps)`` is deterministic (same graph → byte-identical JSON): the
  execution input is ``{"order_date": "YYYY-MM-DD"}`` or ``{"order_dates": [...]}`` (a backfill),
  or nothing: then a JSONata ``Pass`` computes yesterday (UTC) from the execution's start time.
  Dates are validated against ``YYYY-MM-DD`` before any state sees them, then a ``Map``
  (``MaxConcurrency`` = ``BACKFILL_MAX_CONCURRENCY``) runs the per-day pipeline: steps on one
  topological level with more than one step run in a ``Parallel``.
- Every ``Task`` has ``TimeoutSeconds``, ``Retry`` (float ``BackoffRate``, ``MaxAttempts``) and a
  ``Catch`` to the scope's ``sns:publish`` then ``Fail``; a failed crawl (FAILED/CANCELLED), a
  FAILED/ABORTED Redshift statement and a failed Glue job run all reach that publish + ``Fail``.
- The Glue job is started without lease arguments, so it takes the day's lease itself (the
  Dagster asset's ``curated/_leases/order_date=D.json``) and fails before writing anything when
  another run (a Dagster run, another execution, a run by hand) holds it. Such a refusal (a
  ``States.TaskFailed`` whose cause matches ``LEASE_HELD_PATTERN``) waits ``LEASE_WAIT_SECONDS``
  and starts the job again, its ``$.failure`` dropped, at most ``LEASE_WAIT_ATTEMPTS`` times;
  then, like every other Glue failure, it reaches the publish + ``Fail`` with the job's message
  (the holder, its expiry).
- The Redshift batch (one transaction) is the loader's day-replace plus the day's ``dim_date``
  row (``ensure_dim_date_sql``); once it is FINISHED, the step owning ``warehouse/fact_sales``
  puts the fact INSERT's ``ResultRows`` to CloudWatch as ``Rows`` (``MetricsResource``'s
  namespace, metric and dimensions), which the template's "no rows loaded" alarm watches.
- Deploy-time names are ``${...}`` placeholders filled by CloudFormation's
  ``DefinitionSubstitutions`` (``SUBSTITUTIONS``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence

import dagster as dg

INTEGRATION_KEY = "aws/integration"
# Optional per-asset override of the substitution variable naming its AWS resource.
RESOURCE_KEY = "aws/resource"
LAMBDA = "lambda"
GLUE_CRAWLER = "glue_crawler"
GLUE_JOB = "glue_job"
REDSHIFT_DATA = "redshift_data"
INTEGRATIONS = (LAMBDA, GLUE_CRAWLER, GLUE_JOB, REDSHIFT_DATA)
DEFAULT_RESOURCE = {
    LAMBDA: "IngestFunctionArn",
    GLUE_CRAWLER: "CrawlerName",
    GLUE_JOB: "GlueJobName",
    REDSHIFT_DATA: "RedshiftWorkgroup",
}
# Every ${name} the definition uses besides the per-step resources.
SUBSTITUTIONS = ("AlertTopicArn", "LakeRoot", "LakeBucket", "RedshiftDatabase", "RedshiftCopyRoleArn",
                 "MetricsNamespace")
# The asset whose loaded rows the state machine publishes as the pipeline's Rows metric.
FACT_ASSET = "warehouse/fact_sales"

# One Glue job and one crawler serve all days: more than a couple of days at once only queue on
# CrawlerRunningException / ConcurrentRunsExceededException retries.
BACKFILL_MAX_CONCURRENCY = 2
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# A Glue run refused for a day lease another run holds says so in its ErrorMessage (the script's
# LEASE_HELD_MARKER, tested equal); the .sync integration puts that JSON job run in the cause.
LEASE_HELD_PATTERN = "*LeaseHeldError*"
# Past the 90 s lease TTL, so a crashed holder's lease has expired by the next start; a live
# holder (a day's job takes minutes) gets LEASE_WAIT_SECONDS x LEASE_WAIT_ATTEMPTS to finish.
LEASE_WAIT_SECONDS = 300
LEASE_WAIT_ATTEMPTS = 6
# The state a day's pipeline starts with, and every field it holds besides $.failure (a caught
# error) and $.notify_error: step results go under $.results, and a Parallel keeps its input.
# lease_waits: the day's Glue starts refused for a held lease so far (see _step_states).
DAY_STATE = {"order_date.$": "$$.Map.Item.Value", "results": {}, "lease_waits": {"count": 0}}
POLL_SECONDS = {GLUE_CRAWLER: 30, REDSHIFT_DATA: 15}
TIMEOUT_SECONDS = {LAMBDA: 900, GLUE_CRAWLER: 120, GLUE_JOB: 3600, REDSHIFT_DATA: 120, "sns": 60, "cloudwatch": 60}
EXECUTION_TIMEOUT_SECONDS = 6 * 3600
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
CRAWL_FAILED = ("FAILED", "CANCELLED")
STATEMENT_FAILED = ("FAILED", "ABORTED")
CURATED_STAGES = {  # curated table -> the loader's staging table
    "order_lines": "stage_order_lines",
    "quarantine": "stage_quarantine",
    "dim_customer": "stage_dim_customer",
    "dim_product": "stage_dim_product",
}


class GraphError(ValueError):
    """The asset graph cannot be exported; the message names the asset and what to fix."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One computation of the graph: its state-name prefix, integration and upstream steps."""

    name: str
    integration: str
    asset_keys: tuple[str, ...]
    upstream: tuple[str, ...]
    resource: str


@dataclasses.dataclass(frozen=True)
class PipelineSteps:
    levels: tuple[tuple[Step, ...], ...]
    skipped: tuple[str, ...]  # asset keys with no integration metadata

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(s for level in self.levels for s in level)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("/", "_").split("_") if part)


def pipeline_steps(defs: dg.Definitions) -> PipelineSteps:
    """The graph's steps in topological levels (see module docstring)."""
    owner: dict[dg.AssetKey, str] = {}
    integration: dict[str, str | None] = {}
    resource: dict[str, str] = {}
    keys: dict[str, list[str]] = {}
    deps: dict[str, set[dg.AssetKey]] = {}
    for assets_def in defs.assets or ():
        if not isinstance(assets_def, dg.AssetsDefinition):
            specs, node = [assets_def], assets_def.key.to_user_string()
        else:
            specs, node = list(assets_def.specs), assets_def.node_def.name
        found = {(s.metadata or {}).get(INTEGRATION_KEY) for s in specs}
        if len(found) > 1:
            raise GraphError(f"{node}: its assets declare different {INTEGRATION_KEY} values {sorted(map(str, found))}")
        kind = found.pop()
        if kind is not None and kind not in INTEGRATIONS:
            raise GraphError(f"{node}: {INTEGRATION_KEY}={kind!r} is not one of {INTEGRATIONS}")
        integration[node] = kind
        resource[node] = next(
            (str(s.metadata[RESOURCE_KEY]) for s in specs if RESOURCE_KEY in (s.metadata or {})),
            DEFAULT_RESOURCE.get(kind or "", ""),
        )
        keys[node] = sorted(s.key.to_user_string() for s in specs)
        deps[node] = {d.asset_key for s in specs for d in getattr(s, "deps", ())}  # a SourceAsset has none
        for s in specs:
            owner[s.key] = node

    def upstream_nodes(node: str, seen: frozenset = frozenset()) -> set[str]:
        found: set[str] = set()
        for key in deps[node]:
            parent = owner.get(key)
            if parent is None or parent == node:
                continue  # external source asset, or a dep inside the multi-asset
            if parent in seen:
                raise GraphError(f"cycle through {parent}")
            if integration[parent] is None:  # skipped: bridge to its own upstream
                found |= upstream_nodes(parent, seen | {parent})
            else:
                found.add(parent)
        return found

    exported = sorted(n for n, k in integration.items() if k is not None)
    upstream = {n: upstream_nodes(n) for n in exported}
    level: dict[str, int] = {}

    def level_of(node: str, path: tuple = ()) -> int:
        if node in path:
            raise GraphError(f"cycle: {' -> '.join(path + (node,))}")
        if node not in level:
            level[node] = 1 + max((level_of(p, path + (node,)) for p in upstream[node]), default=-1)
        return level[node]

    for node in exported:
        level_of(node)
    names = {n: _camel(n) for n in exported}
    levels = [
        tuple(
            Step(names[n], integration[n], tuple(keys[n]), tuple(sorted(names[p] for p in upstream[n])), resource[n])
            for n in sorted(exported, key=names.get)
            if level[n] == depth
        )
        for depth in range(max(level.values(), default=-1) + 1)
    ]
    skipped = tuple(sorted(k for n, kind in integration.items() if kind is None for k in keys[n]))
    return PipelineSteps(levels=tuple(levels), skipped=skipped)


# --- states -----------------------------------------------------------------------------------


def _retry(errors: Sequence[str], interval: int, attempts: int, backoff: float = 2.0) -> dict:
    return {"ErrorEquals": list(errors), "IntervalSeconds": interval, "MaxAttempts": attempts, "BackoffRate": float(backoff)}


def _task(resource: str, parameters: dict, timeout: int, retry: list[dict], scope: Scope, nxt: str | None, **extra) -> dict:
    state = {
        "Type": "Task",
        "Resource": resource,
        "Parameters": parameters,
        "TimeoutSeconds": timeout,
        "Retry": retry,
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": scope.notify}],
        **extra,
    }
    return {**state, "Next": nxt} if nxt else {**state, "End": True}


@dataclasses.dataclass
class Scope:
    """States of one scope (Map iteration or Parallel branch); each has its own notify + Fail."""

    prefix: str
    states: dict = dataclasses.field(default_factory=dict)

    @property
    def notify(self) -> str:
        return f"{self.prefix}NotifyFailure"

    @property
    def fail(self) -> str:
        return f"{self.prefix}PipelineFailed"

    def failed_pass(self, name: str, error: str, cause_path: str) -> str:
        """A Pass that records why a poll loop gave up, then goes to the scope's notify."""
        state_name = f"{name}Failed"
        self.states[state_name] = {
            "Type": "Pass",
            "Parameters": {"Error": error, "Cause.$": f"States.JsonToString({cause_path})"},
            "ResultPath": "$.failure",
            "Next": self.notify,
        }
        return state_name

    def close(self) -> dict:
        self.states[self.notify] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::sns:publish",
            "Parameters": {
                "TopicArn": "${AlertTopicArn}",
                "Subject": "sales pipeline failed",
                "Message.$": "States.Format('order_date {} failed: {}', $.order_date, States.JsonToString($.failure))",
            },
            "TimeoutSeconds": TIMEOUT_SECONDS["sns"],
            "Retry": [_retry(["States.ALL"], 5, 3)],
            # A lost alert must not turn into a success: the Fail below still runs.
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.notify_error", "Next": self.fail}],
            "ResultPath": None,
            "Next": self.fail,
        }
        self.states[self.fail] = {"Type": "Fail", "Error": "SalesPipelineFailed", "Cause": "see the SNS alert for the failed step"}
        return self.states


def _intrinsic_literal(text: str) -> str:
    """``text`` as an intrinsic string literal; escapes ``\\`` and ``'`` only.

    Braces stay: ``{}`` is States.Format's placeholder and ``${Name}`` is replaced by
    CloudFormation before Step Functions parses the definition; the SQL holds no other braces.
    """
    for char in ("\\", "'"):
        text = text.replace(char, "\\" + char)
    return text


MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def ensure_dim_date_sql() -> str:
    """One Redshift INSERT ... SELECT adding the ``{}`` date's dim_date row when it is missing.

    The row equals ``loader.calendar_rows`` for that day (a test runs it, transpiled to DuckDB,
    for every day of several years). Insert-when-missing, not replace: a held row already has
    these values (the local and Data API loaders write the same ``calendar_rows``), and it keeps
    the batch free of deletes on a table other loads share.

    Only date functions whose Redshift semantics are documented without ambiguity are used
    (Redshift docs, "Date parts for date or timestamp functions", DATE_PART, DATEADD, DATEDIFF,
    DATE_TRUNC), and each matches Python's ``date`` / ``isocalendar()``:
    - ``DATE_PART(year|quarter|month|day, d)``: calendar fields, same as Python's. DATE_PART
      returns DOUBLE in Redshift, so each is CAST to the column's SMALLINT.
    - ``DATE_PART(dow, d)``: 0-6 starting with Sunday (documented; unlike the ``D`` format string,
      1-7 with Sunday = 1); the ISO weekday is ``7`` for Sunday, else dow (DuckDB's
      ``EXTRACT(DAYOFWEEK)`` is also 0 = Sunday).
    - The ISO year and week are derived, not read: Redshift documents no ``isoyear`` date part, and
      does not state that ``week`` is ISO 8601. ISO 8601 puts a week in the year of its Thursday,
      and week 1 holds the year's first Thursday; so ``thu = DATEADD(day, 4 - isodow, d)``,
      ``iso_year = DATE_PART(year, thu)``, ``iso_week = FLOOR(DATEDIFF(day, DATE_TRUNC('year', thu),
      thu) / 7.0) + 1``. ``7.0`` and FLOOR because ``/`` on integers truncates in Redshift but is
      float division in DuckDB; with FLOOR both give the same integer.
    - Month and day names are literals, not ``TO_CHAR(d, 'Month')`` (blank-padded to 9 characters
      in Redshift, locale-dependent elsewhere).
    """
    isodow = "(CASE DATE_PART(dow, c.d) WHEN 0 THEN 7 ELSE DATE_PART(dow, c.d) END)"
    thursday = f"DATEADD(day, 4 - CAST({isodow} AS INTEGER), c.d)"

    def names(number: str, values: Sequence[str]) -> str:
        return f"CASE CAST({number} AS INTEGER) " + " ".join(
            f"WHEN {i} THEN '{v}'" for i, v in enumerate(values, 1)) + " END"

    return (
        "INSERT INTO sales.dim_date (date_key, year, quarter, month, month_name, day_of_month, iso_year, iso_week,"
        " day_of_week, day_name, is_weekend)"
        " SELECT c.d, CAST(DATE_PART(year, c.d) AS SMALLINT), CAST(DATE_PART(quarter, c.d) AS SMALLINT),"
        f" CAST(DATE_PART(month, c.d) AS SMALLINT), {names('DATE_PART(month, c.d)', MONTH_NAMES)},"
        f" CAST(DATE_PART(day, c.d) AS SMALLINT), CAST(DATE_PART(year, {thursday}) AS SMALLINT),"
        f" CAST(FLOOR(DATEDIFF(day, DATE_TRUNC('year', {thursday}), {thursday}) / 7.0) + 1 AS SMALLINT),"
        f" CAST({isodow} AS SMALLINT), {names(isodow, DAY_NAMES)},"
        " CASE WHEN DATE_PART(dow, c.d) IN (0, 6) THEN TRUE ELSE FALSE END"
        " FROM (SELECT CAST('{}' AS DATE) AS d) AS c"
        " LEFT JOIN sales.dim_date AS held ON held.date_key = c.d WHERE held.date_key IS NULL"
    )


def redshift_day_load_sqls() -> list[str]:
    """The loader's day-replace in Redshift SQL, one statement each, ``{}`` = order_date (validated).

    COPY takes no bind parameters, so the date enters through States.Format; only dates that
    matched ``DATE_PATTERN`` reach this state. ``:loaded_at`` becomes GETDATE().
    """
    from sales_assets.warehouse import transpile

    def sql(name: str) -> str:
        text = "\n".join(l for l in transpile.redshift_sql(name).splitlines() if not l.lstrip().startswith("--"))
        return " ".join(text.split()).replace(":loaded_at", "GETDATE()")

    statements = [sql(n) for n in ("create_schema", "create_fact_sales", "create_dim_customer", "create_dim_product",
                                    "create_quarantine_daily")]
    for table, stage in CURATED_STAGES.items():
        statements.append(sql(stage))
        statements.append(
            # The day's commit record (written last by the Glue job) is a COPY manifest of
            # exactly its committed files: never whatever the prefix holds mid-write.
            f"COPY {stage} FROM 's3://${{LakeBucket}}/curated/{table}/order_date={{}}/_manifest.json' "
            "IAM_ROLE '${RedshiftCopyRoleArn}' FORMAT AS PARQUET MANIFEST"
        )
    statements += [sql("stage_latest_dim_customer"), sql("stage_latest_dim_product")]
    statements += [sql("delete_fact_days").replace(":sale_date", "'{}'"),
                   sql("delete_quarantine_days").replace(":sale_date", "'{}'")]
    statements += [sql(n) for n in ("insert_fact_from_stage", "insert_quarantine_daily_from_stage",
                                     "discard_stale_dim_customer", "merge_dim_customer",
                                     "discard_stale_dim_product", "merge_dim_product")]
    # The day's calendar row, in the same transaction (the loaders fill dim_date too).
    statements += [sql("create_dim_date"), ensure_dim_date_sql()]
    return statements


def fact_insert_index(statements: Sequence[str]) -> int:
    """Position of the fact_sales INSERT in the batch: its sub-statement's ResultRows is the day's rows."""
    matches = [i for i, q in enumerate(statements) if q.upper().startswith("INSERT INTO SALES.FACT_SALES")]
    if len(matches) != 1:
        raise GraphError(f"the Redshift day load must hold exactly one fact_sales INSERT, found {len(matches)}")
    return matches[0]


def _day_state_fields() -> list[str]:
    return [key.removesuffix(".$") for key in DAY_STATE]


def _step_states(step: Step, scope: Scope, nxt: str | None) -> str:
    """Add ``step``'s states to ``scope``; return its first state's name."""
    n, r = step.name, f"${{{step.resource}}}"
    result = f"$.results.{n}"
    after = nxt
    s = scope.states
    if step.integration == LAMBDA:
        s[n] = _task(
            "arn:aws:states:::lambda:invoke",
            {"FunctionName": r, "Payload": {"date.$": "$.order_date"}},
            TIMEOUT_SECONDS[LAMBDA],
            [_retry(LAMBDA_SERVICE_ERRORS, 2, 6)],
            scope, after, ResultSelector={"summary.$": "$.Payload"}, ResultPath=result,
        )
        return n
    if step.integration == GLUE_JOB:
        held, wait, count = f"{n}LeaseHeld", f"{n}WaitForLease", f"{n}CountLeaseWait"
        # No lease arguments: the job takes the day's lease itself (see the module docstring).
        s[n] = _task(
            "arn:aws:states:::glue:startJobRun.sync",
            {"JobName": r, "Arguments": {"--lake_root": "${LakeRoot}", "--order_date.$": "$.order_date"}},
            TIMEOUT_SECONDS[GLUE_JOB],
            [_retry(["Glue.ConcurrentRunsExceededException", "Glue.ThrottlingException"], 60, 5)],
            scope, after, ResultSelector={"JobRunId.$": "$.Id", "JobRunState.$": "$.JobRunState"}, ResultPath=result,
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": held}],
        )
        s[held] = {
            "Type": "Choice",
            "Choices": [{"And": [
                {"Variable": "$.failure.Error", "StringEquals": "States.TaskFailed"},
                {"Variable": "$.failure.Cause", "StringMatches": LEASE_HELD_PATTERN},
                {"Variable": "$.lease_waits.count", "NumericLessThan": LEASE_WAIT_ATTEMPTS},
            ], "Next": wait}],
            "Default": scope.notify,
        }
        s[wait] = {"Type": "Wait", "Seconds": LEASE_WAIT_SECONDS, "Next": count}
        # The day's state rebuilt, not one path set: a ResultPath can add or replace a field
        # but never drop one, and the refusal's $.failure must not outlive it (a run that then
        # succeeds would carry it on to every later state and the iteration's output).
        s[count] = {"Type": "Pass", "Parameters": {
            **{f"{name}.$": f"$.{name}" for name in _day_state_fields() if name != "lease_waits"},
            "lease_waits": {"count.$": "States.MathAdd($.lease_waits.count, 1)"}}, "Next": n}
        return n
    if step.integration == GLUE_CRAWLER:
        start, wait, get, state_choice, status_choice = (f"{n}Start", f"{n}Wait", f"{n}Get", f"{n}State", f"{n}Status")
        failed = scope.failed_pass(n, "CrawlFailed", f"{result}.Crawler.LastCrawl")
        s[start] = _task(
            "arn:aws:states:::aws-sdk:glue:startCrawler", {"Name": r}, TIMEOUT_SECONDS[GLUE_CRAWLER],
            # Another day's crawl (a backfill) holds the crawler: wait for it rather than fail.
            [_retry(["Glue.CrawlerRunningException"], POLL_SECONDS[GLUE_CRAWLER], 20, 1.5),
             _retry(["Glue.ThrottlingException", "Glue.OperationTimeoutException"], 5, 4)],
            scope, wait, ResultPath=None,
        )
        s[wait] = {"Type": "Wait", "Seconds": POLL_SECONDS[GLUE_CRAWLER], "Next": get}
        s[get] = _task(
            "arn:aws:states:::aws-sdk:glue:getCrawler", {"Name": r}, TIMEOUT_SECONDS[GLUE_CRAWLER],
            [_retry(["Glue.ThrottlingException", "Glue.OperationTimeoutException"], 5, 4)],
            scope, state_choice, ResultSelector={"Crawler.$": "$.Crawler"}, ResultPath=result,
        )
        # READY alone is not success: the finished crawl's LastCrawl.Status decides.
        s[state_choice] = {
            "Type": "Choice",
            "Choices": [{"Variable": f"{result}.Crawler.State", "StringEquals": "READY", "Next": status_choice}],
            "Default": wait,
        }
        ok = {"Variable": f"{result}.Crawler.LastCrawl.Status", "StringEquals": "SUCCEEDED"}
        s[status_choice] = {
            "Type": "Choice",
            "Choices": [
                {"Or": [{"Variable": f"{result}.Crawler.LastCrawl.Status", "StringEquals": v} for v in CRAWL_FAILED],
                 "Next": failed},
                {**ok, "Next": after} if after else {**ok, "Next": f"{n}Done"},
            ],
            "Default": failed,
        }
        if not after:
            s[f"{n}Done"] = {"Type": "Succeed"}
        return start
    if step.integration == REDSHIFT_DATA:
        start, wait, describe, check = (f"{n}Start", f"{n}Wait", f"{n}Describe", f"{n}Status")
        failed = scope.failed_pass(n, "StatementFailed", result)
        statements = redshift_day_load_sqls()
        sqls = {
            f"Sqls[{i}]": sql for i, sql in enumerate(statements)
        }
        s[start] = _task(
            "arn:aws:states:::aws-sdk:redshiftdata:batchExecuteStatement",
            {
                "WorkgroupName": r,
                "Database": "${RedshiftDatabase}",
                "StatementName": "sales-day-load",
                # One batch = one transaction: the day is replaced completely or not at all.
                "Sqls.$": "States.Array("
                + ", ".join(
                    f"States.Format('{_intrinsic_literal(q)}', {', '.join(['$.order_date'] * q.count('{}'))})"
                    if "{}" in q else f"'{_intrinsic_literal(q)}'"
                    for q in sqls.values()
                )
                + ")",
            },
            TIMEOUT_SECONDS[REDSHIFT_DATA],
            [_retry(["RedshiftData.ThrottlingException", "RedshiftData.InternalServerException"], 5, 4)],
            scope, wait, ResultSelector={"Id.$": "$.Id"}, ResultPath=result,
        )
        s[wait] = {"Type": "Wait", "Seconds": POLL_SECONDS[REDSHIFT_DATA], "Next": describe}
        s[describe] = _task(
            "arn:aws:states:::aws-sdk:redshiftdata:describeStatement", {"Id.$": f"{result}.Id"},
            TIMEOUT_SECONDS[REDSHIFT_DATA],
            [_retry(["RedshiftData.ThrottlingException", "RedshiftData.InternalServerException"], 5, 4)],
            scope, check, ResultSelector={"Id.$": "$.Id", "Status.$": "$.Status"}, ResultPath=result,
        )
        done = after or f"{n}Done"
        finished = done
        if FACT_ASSET in step.asset_keys:
            finished = _publish_rows_states(step, scope, result, fact_insert_index(statements), done)
        s[check] = {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"{result}.Status", "StringEquals": "FINISHED", "Next": finished},
                {"Or": [{"Variable": f"{result}.Status", "StringEquals": v} for v in STATEMENT_FAILED], "Next": failed},
            ],
            "Default": wait,
        }
        if not after:
            s[done] = {"Type": "Succeed"}
        return start
    raise GraphError(f"{step.name}: no states for integration {step.integration!r}")


def _publish_rows_states(step: Step, scope: Scope, result: str, fact_index: int, nxt: str) -> str:
    """After FINISHED: read the fact INSERT's row count, put it as the pipeline's ``Rows`` metric.

    Without Dagster nobody else publishes it, and the template's alarm on it means "no rows
    loaded". Same namespace, metric name and dimensions (Asset, Stage) as ``MetricsResource``.
    The count is read once the batch is FINISHED, when every sub-statement carries ResultRows.
    """
    from sales_assets.operations.sensors import stage_of
    from sales_assets.resources import metrics

    count, publish = f"{step.name}CountRows", f"{step.name}PublishRows"
    retry = [_retry(["RedshiftData.ThrottlingException", "RedshiftData.InternalServerException"], 5, 4)]
    scope.states[count] = _task(
        "arn:aws:states:::aws-sdk:redshiftdata:describeStatement", {"Id.$": f"{result}.Id"},
        TIMEOUT_SECONDS[REDSHIFT_DATA], retry, scope, publish,
        ResultSelector={"Id.$": "$.Id", "Status.$": "$.Status", "Rows.$": f"$.SubStatements[{fact_index}].ResultRows"},
        ResultPath=result,
    )
    scope.states[publish] = _task(
        "arn:aws:states:::aws-sdk:cloudwatch:putMetricData",
        {
            "Namespace": "${MetricsNamespace}",
            "MetricData": [{
                "MetricName": metrics.METRIC_ROWS,
                "Dimensions": [{"Name": metrics.DIMENSION_ASSET, "Value": FACT_ASSET},
                               {"Name": metrics.DIMENSION_STAGE, "Value": stage_of(FACT_ASSET)}],
                "Unit": "Count",
                "Value.$": f"{result}.Rows",
            }],
        },
        TIMEOUT_SECONDS["cloudwatch"],
        # SDK v2 names: a 500 is InternalServiceException; throttling has no subclass (CloudWatchException).
        [_retry(["CloudWatch.InternalServiceException", "CloudWatch.CloudWatchException"], 5, 4)],
        scope, nxt, ResultPath=None,
    )
    return count


def _day_pipeline(pipeline: PipelineSteps) -> dict:
    """The Map iteration: one day through every level."""
    scope = Scope(prefix="")
    first = None
    # Built last level first, so each level knows the entry state of the one after it.
    for index in reversed(range(len(pipeline.levels))):
        level, nxt = pipeline.levels[index], first
        if len(level) == 1:
            entry = _step_states(level[0], scope, nxt)
        else:
            branches = []
            for step in level:
                branch = Scope(prefix=f"{step.name}")
                branch_start = _step_states(step, branch, None)
                branches.append({"StartAt": branch_start, "States": branch.close()})
            entry = f"Level{index}"
            state = {
                "Type": "Parallel",
                "Branches": branches,
                # Branch outputs are an array; the day's input continues unchanged.
                "ResultPath": None,
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": f"{entry}Failed"}],
            }
            scope.states[entry] = {**state, "Next": nxt} if nxt else {**state, "End": True}
            # A branch already alerted; fail without a second message.
            scope.states[f"{entry}Failed"] = {"Type": "Fail", "Error": "SalesPipelineFailed",
                                             "Cause": "a parallel branch failed and alerted"}
        first = entry
    if first is None:
        scope.states["NothingToRun"] = {"Type": "Succeed"}
        first = "NothingToRun"
    return {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": first, "States": scope.close()}


def build_state_machine(pipeline: PipelineSteps) -> dict:
    """The whole ASL document (see module docstring)."""
    comment = "Sales pipeline exported from the Dagster asset graph: " + " -> ".join(
        "[" + ", ".join(s.name for s in level) + "]" for level in pipeline.levels
    )
    if pipeline.skipped:
        comment += "; not exported (no aws/integration metadata): " + ", ".join(pipeline.skipped)
    dates = (
        "{% ($d := $exists($states.input.order_dates) ? $states.input.order_dates"
        " : $exists($states.input.order_date) ? [$states.input.order_date]"
        " : [$fromMillis($toMillis($states.context.Execution.StartTime) - 86400000, '[Y0001]-[M01]-[D01]')];"
        f" {{'order_dates': $d, 'valid': $count($d) > 0 and $count($d[$not($type($) = 'string' and $contains($, /{DATE_PATTERN}/))]) = 0}}) %}}"
    )
    return {
        "Comment": comment,
        "TimeoutSeconds": EXECUTION_TIMEOUT_SECONDS,
        "StartAt": "ResolveDates",
        "States": {
            # JSONPath intrinsics have no date arithmetic; JSONata computes yesterday (UTC) from
            # the execution's start time, so the EventBridge rule passes no input at all.
            "ResolveDates": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": dates, "Next": "DatesValid"},
            "DatesValid": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.valid", "BooleanEquals": True, "Next": "Days"}],
                "Default": "InvalidInput",
            },
            "InvalidInput": {"Type": "Fail", "Error": "InvalidInput",
                             "Cause": 'input must be {}, {"order_date": "YYYY-MM-DD"} or {"order_dates": [...]}'},
            "Days": {
                "Type": "Map",
                "ItemsPath": "$.order_dates",
                "ItemSelector": copy.deepcopy(DAY_STATE),
                "MaxConcurrency": BACKFILL_MAX_CONCURRENCY,
                "ItemProcessor": _day_pipeline(pipeline),
                "ResultSelector": {"days.$": "$[*].order_date"},
                "End": True,
            },
        },
    }


def render(document: Mapping) -> str:
    """Stable JSON text (sorted keys, 2-space indent, trailing newline) for files and goldens."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def placeholders(document: Mapping | str) -> set[str]:
    """The ``${name}`` substitution variables the document uses."""
    import re

    text = document if isinstance(document, str) else json.dumps(document)
    return set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text))

