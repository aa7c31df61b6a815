"""AWS Lambda entry point: land one day of orders to the S3 lake.

Handler: ``sales_assets.ingest.lambda_handler.handler``; event ``{"date": "YYYY-MM-DD"}``.
It runs the very code the ``raw/sales_orders`` asset runs (``SalesSourceClient`` and
``landing.land_day``: the day's lease, pages, manifest last, stale-run cleanup), and
imports neither Dagster nor pyarrow, so its zip holds only this package's source and
ingest code plus ``requests`` (boto3 comes with the Lambda runtime).

What a caller (Step Functions, a test) may rely on:
- success returns ``LandingResult.summary()``: date, run_id, pages, orders, lines, bytes,
  requests, retries, waits, wall time, source URL without credentials, manifest key;
- any failure raises (never a 500-shaped return value), so the Lambda invocation fails
  and Step Functions' Retry/Catch applies; nothing is committed and the previously
  committed day is untouched;
- the source token comes from ``SALES_SOURCE_TOKEN``, or, when that is unset, from the
  Secrets Manager secret named by ``SALES_SOURCE_TOKEN_SECRET_ID`` (a plain string, or
  JSON with a ``token`` key); it never appears in logs, the result or exception text.

Environment: ``SALES_SOURCE_URL``, ``SALES_LAKE_ROOT=s3://bucket/prefix``, the token as
above, optionally ``SALES_AWS_REGION``; ``SALES_PIPELINE_ENV`` defaults to ``aws`` here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from sales_assets.ingest.landing import land_day
from sales_assets.ingest.store import S3ObjectStore
from sales_assets.settings import load_settings
from sales_assets.source.client import TOKEN_ENV_VAR, SalesSourceClient

HANDLER = "sales_assets.ingest.lambda_handler.handler"
TOKEN_SECRET_ENV_VAR = "SALES_SOURCE_TOKEN_SECRET_ID"
SECRET_TOKEN_FIELD = "token"
# fromisoformat alone would also take "20261120"; the event's contract is the dashed form.
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

LOGGER = logging.getLogger(__name__)


class LambdaConfigurationError(ValueError):
    """The event or the Lambda's environment is wrong; the message names what to fix."""


def parse_event(event: Any) -> dt.date:
    """The day to land from ``{"date": "YYYY-MM-DD"}``."""
    raw = event.get("date") if isinstance(event, Mapping) else None
    if not isinstance(raw, str):
        raise LambdaConfigurationError('the event must be {"date": "YYYY-MM-DD"}')
    try:
        if not _DATE_RE.fullmatch(raw):
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise LambdaConfigurationError(f'event "date" must be a calendar date YYYY-MM-DD, got {raw[:40]!r}') from None


def token_from_secret(secret_id: str, secrets_client: Any) -> str:
    """The bearer token stored in Secrets Manager (plain string or JSON ``{"token": ...}``)."""
    try:
        value = secrets_client.get_secret_value(SecretId=secret_id)
    except Exception as exc:  # botocore's ClientError and friends: name the secret, not its value
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise LambdaConfigurationError(
            f"could not read the source token from Secrets Manager secret {secret_id!r} "
            f"({TOKEN_SECRET_ENV_VAR}): {code}") from None
    secret = (value.get("SecretString") or "").strip()
    if secret.startswith("{"):
        try:
            secret = str(json.loads(secret).get(SECRET_TOKEN_FIELD) or "").strip()
        except (ValueError, AttributeError):
            secret = ""
    if not secret:
        raise LambdaConfigurationError(
            f"Secrets Manager secret {secret_id!r} holds no token (a plain string or JSON with a "
            f"{SECRET_TOKEN_FIELD!r} key)")
    return secret


def handler(
    event: Any,
    context: Any = None,
    *,
    environ: Mapping[str, str] | None = None,
    s3_client: Any = None,
    secrets_client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Land the event's day to S3; raise on any failure. Keyword arguments are for tests."""
    order_date = parse_event(event)
    # The Lambda's entry point is a process boundary of its own: it hands the environment
    # to settings.load_settings (the one parser of it) after resolving the secret.
    env = dict(os.environ if environ is None else environ)
    env.setdefault("SALES_PIPELINE_ENV", "aws")
    if not env.get(TOKEN_ENV_VAR, "").strip() and env.get(TOKEN_SECRET_ENV_VAR, "").strip():
        if secrets_client is None:
            import boto3

            secrets_client = boto3.client("secretsmanager", region_name=env.get("SALES_AWS_REGION") or None)
        env[TOKEN_ENV_VAR] = token_from_secret(env[TOKEN_SECRET_ENV_VAR].strip(), secrets_client)
    settings = load_settings(env)
    if not settings.lake_is_s3:
        raise LambdaConfigurationError("the Lambda lands to S3: set SALES_LAKE_ROOT=s3://bucket/prefix")
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3", region_name=settings.aws_region)
    lake = S3ObjectStore.from_uri(settings.lake_root, s3_client)
    request_id = getattr(context, "aws_request_id", None) or "local"
    with SalesSourceClient(settings.source_url, settings.source_token or "", sleep=sleep) as client:
        result = land_day(lake, client, order_date, owner=f"lambda request {request_id}")
    summary = result.summary()
    LOGGER.info("landed %s", json.dumps(summary, sort_keys=True))
    return summary
