"""The configuration surface: the only module that reads ``os.environ``.

Every setting has a local default so that a fresh clone runs with no cloud
account. Values are validated here, once, so a typo fails at load time with a
message naming the variable rather than deep inside a run. Secrets are kept out
of ``repr`` so they never reach logs or asset metadata.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path

ENVIRONMENTS = ("local", "aws")
DEFAULT_DATA_DIR = Path(".sales_data")
DEFAULT_PARTITION_START = "2020-01-01"
DEFAULT_DEMO_ORDERS_PER_DAY = 400
# A Slack-style webhook URL embeds its credential in the path, so it is a secret too.
SECRET_FIELDS = frozenset({"source_token", "aws_redshift_password", "alert_webhook_url"})
DEFAULT_UI_BASE_URL = "http://127.0.0.1:3000"
DEFAULT_METRICS_NAMESPACE = "SalesPipeline"
# How the aws warehouse reaches Redshift: a redshift_connector connection, or the Data API
# (boto3 `redshift-data`; no network path to the cluster needed).
REDSHIFT_ACCESS_MODES = ("connection", "data_api")
SECRET_ARN_PATTERN = r"^arn:aws[a-z\-]*:secretsmanager:[a-z0-9\-]+:\d{12}:secret:[A-Za-z0-9/_+=.@\-]+$"


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def _parse_date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a date in YYYY-MM-DD form, got {value!r}") from exc


def _parse_bounded(name: str, value: str, convert, kind: str, minimum, maximum):
    try:
        number = convert(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be {kind}, got {value!r}") from exc
    if not minimum <= number <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {number}")
    return number


def _parse_int(name: str, value: str, *, minimum: int, maximum: int) -> int:
    return _parse_bounded(name, value, int, "an integer", minimum, maximum)


def _parse_float(name: str, value: str, *, minimum: float, maximum: float) -> float:
    return _parse_bounded(name, value, float, "a number", minimum, maximum)


def _local_path(value: str) -> str:
    # Resolved once so that the Pipes subprocess and every step agree on the
    # same folder whatever their working directory.
    return str(Path(value).expanduser().resolve())


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated configuration; see ARCHITECTURE.md's table for the meaning of each value."""

    env: str = "local"
    source_url: str | None = None
    source_token: str | None = dataclasses.field(default=None, repr=False)
    lake_root: str = _local_path(str(DEFAULT_DATA_DIR / "lake"))
    catalog_path: str = _local_path(str(DEFAULT_DATA_DIR / "catalog.sqlite"))
    warehouse_path: str = _local_path(str(DEFAULT_DATA_DIR / "warehouse.duckdb"))
    partition_start: dt.date = dt.date.fromisoformat(DEFAULT_PARTITION_START)
    demo_orders_per_day: int = DEFAULT_DEMO_ORDERS_PER_DAY
    schedule_hour_utc: int = 2
    # operations: trailing-window re-runs, check thresholds, alerts and metrics
    trailing_window_days: int = 3
    trailing_window_hour_utc: int = 4
    quarantine_rate_max: float = 0.05
    volume_deviation_max: float = 0.5
    volume_lookback_days: int = 7
    ui_base_url: str = DEFAULT_UI_BASE_URL
    alerts_path: str = _local_path(str(DEFAULT_DATA_DIR / "alerts.jsonl"))
    alert_webhook_url: str | None = dataclasses.field(default=None, repr=False)
    metrics_namespace: str = DEFAULT_METRICS_NAMESPACE
    # aws only
    aws_region: str | None = None
    aws_glue_job: str = "sales-curate-orders"
    aws_glue_crawler: str | None = None
    aws_pipes_bucket: str | None = None
    aws_redshift_host: str | None = None
    aws_redshift_port: int = 5439
    aws_redshift_database: str = "dev"
    aws_redshift_user: str | None = None
    aws_redshift_password: str | None = dataclasses.field(default=None, repr=False)
    aws_redshift_iam_role_arn: str | None = None
    aws_redshift_workgroup: str | None = None
    aws_redshift_cluster_identifier: str | None = None
    # The ARN names the secret; it is not the secret (its value is read at connect time).
    aws_redshift_secret_arn: str | None = None
    aws_redshift_access: str = "connection"
    aws_sns_topic_arn: str | None = None

    @property
    def lake_is_s3(self) -> bool:
        return self.lake_root.startswith("s3://")

    def public_dict(self) -> dict[str, object]:
        """Settings safe to print or attach as metadata: secrets are reduced to set/unset."""
        out: dict[str, object] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in SECRET_FIELDS:
                out[field.name] = "<set>" if value else "<unset>"
            else:
                out[field.name] = value.isoformat() if isinstance(value, dt.date) else value
        return out


def _check_redshift(values: Mapping[str, object]) -> None:
    """Redshift settings that contradict each other fail here, naming the variables (never a value
    of SALES_AWS_REDSHIFT_PASSWORD)."""
    access = values["aws_redshift_access"]
    if access not in REDSHIFT_ACCESS_MODES:
        raise SettingsError(f"SALES_AWS_REDSHIFT_ACCESS must be one of {', '.join(REDSHIFT_ACCESS_MODES)}, got {access!r}")
    if values["aws_redshift_workgroup"] and values["aws_redshift_cluster_identifier"]:
        raise SettingsError(
            "set only one of SALES_AWS_REDSHIFT_WORKGROUP (Serverless) and SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER (provisioned)"
        )
    if values["aws_redshift_password"] and values["aws_redshift_secret_arn"]:
        raise SettingsError("set only one of SALES_AWS_REDSHIFT_PASSWORD and SALES_AWS_REDSHIFT_SECRET_ARN")
    secret_arn = values["aws_redshift_secret_arn"]
    if secret_arn and not re.match(SECRET_ARN_PATTERN, str(secret_arn)):
        raise SettingsError(
            f"SALES_AWS_REDSHIFT_SECRET_ARN must be a Secrets Manager secret ARN "
            f"(arn:aws:secretsmanager:<region>:<account>:secret:<name>), got {secret_arn!r}"
        )
    if access == "data_api":
        if not (values["aws_redshift_workgroup"] or values["aws_redshift_cluster_identifier"]):
            raise SettingsError(
                "SALES_AWS_REDSHIFT_ACCESS=data_api needs SALES_AWS_REDSHIFT_WORKGROUP or "
                "SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER (the Data API addresses a workgroup or cluster, not a host)"
            )
        if values["aws_redshift_password"]:
            raise SettingsError(
                "SALES_AWS_REDSHIFT_ACCESS=data_api cannot use SALES_AWS_REDSHIFT_PASSWORD: "
                "store the credentials in Secrets Manager (SALES_AWS_REDSHIFT_SECRET_ARN) or use IAM"
            )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the configuration from ``environ`` (default: the process environment)."""
    env_vars = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env_vars.get(name)
        return value.strip() if value and value.strip() else None

    env = (get("SALES_PIPELINE_ENV") or "local").lower()
    if env not in ENVIRONMENTS:
        raise SettingsError(f"SALES_PIPELINE_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")

    lake_root = get("SALES_LAKE_ROOT") or str(DEFAULT_DATA_DIR / "lake")
    if not lake_root.startswith("s3://"):
        lake_root = _local_path(lake_root)
    elif env == "local":
        raise SettingsError("SALES_LAKE_ROOT is an s3:// URI but SALES_PIPELINE_ENV is local; set it to aws")
    if env == "aws" and not lake_root.startswith("s3://"):
        raise SettingsError("SALES_PIPELINE_ENV=aws needs SALES_LAKE_ROOT=s3://bucket/prefix")

    source_url = get("SALES_SOURCE_URL")
    if source_url and not source_url.startswith(("http://", "https://")):
        raise SettingsError(f"SALES_SOURCE_URL must start with http:// or https://, got {source_url!r}")
    if env == "aws" and not source_url:
        raise SettingsError("SALES_PIPELINE_ENV=aws needs SALES_SOURCE_URL (the bundled demo source is local only)")

    values: dict[str, object] = {
        "env": env,
        "source_url": source_url.rstrip("/") if source_url else None,
        "source_token": get("SALES_SOURCE_TOKEN"),
        "lake_root": lake_root.rstrip("/"),
        "catalog_path": _local_path(get("SALES_CATALOG_PATH") or str(DEFAULT_DATA_DIR / "catalog.sqlite")),
        "warehouse_path": _local_path(get("SALES_WAREHOUSE_PATH") or str(DEFAULT_DATA_DIR / "warehouse.duckdb")),
        "partition_start": _parse_date(
            "SALES_PARTITION_START", get("SALES_PARTITION_START") or DEFAULT_PARTITION_START
        ),
        "demo_orders_per_day": _parse_int(
            "SALES_DEMO_ORDERS_PER_DAY",
            get("SALES_DEMO_ORDERS_PER_DAY") or str(DEFAULT_DEMO_ORDERS_PER_DAY),
            minimum=0,
            maximum=10_000_000,
        ),
        "schedule_hour_utc": _parse_int(
            "SALES_SCHEDULE_HOUR_UTC", get("SALES_SCHEDULE_HOUR_UTC") or "2", minimum=0, maximum=23
        ),
        "trailing_window_days": _parse_int(
            "SALES_TRAILING_WINDOW_DAYS", get("SALES_TRAILING_WINDOW_DAYS") or "3", minimum=0, maximum=366
        ),
        "trailing_window_hour_utc": _parse_int(
            "SALES_TRAILING_WINDOW_HOUR_UTC", get("SALES_TRAILING_WINDOW_HOUR_UTC") or "4", minimum=0, maximum=23
        ),
        "quarantine_rate_max": _parse_float(
            "SALES_QUARANTINE_RATE_MAX", get("SALES_QUARANTINE_RATE_MAX") or "0.05", minimum=0.0, maximum=1.0
        ),
        "volume_deviation_max": _parse_float(
            "SALES_VOLUME_DEVIATION_MAX", get("SALES_VOLUME_DEVIATION_MAX") or "0.5", minimum=0.0, maximum=1000.0
        ),
        "volume_lookback_days": _parse_int(
            "SALES_VOLUME_LOOKBACK_DAYS", get("SALES_VOLUME_LOOKBACK_DAYS") or "7", minimum=1, maximum=366
        ),
        "ui_base_url": (get("SALES_UI_BASE_URL") or DEFAULT_UI_BASE_URL).rstrip("/"),
        "alerts_path": _local_path(get("SALES_ALERTS_PATH") or str(DEFAULT_DATA_DIR / "alerts.jsonl")),
        "alert_webhook_url": get("SALES_ALERT_WEBHOOK_URL"),
        "metrics_namespace": get("SALES_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE,
        "aws_region": get("SALES_AWS_REGION"),
        "aws_glue_job": get("SALES_AWS_GLUE_JOB") or "sales-curate-orders",
        "aws_glue_crawler": get("SALES_AWS_GLUE_CRAWLER"),
        "aws_pipes_bucket": get("SALES_AWS_PIPES_BUCKET"),
        "aws_redshift_host": get("SALES_AWS_REDSHIFT_HOST"),
        "aws_redshift_port": _parse_int(
            "SALES_AWS_REDSHIFT_PORT", get("SALES_AWS_REDSHIFT_PORT") or "5439", minimum=1, maximum=65535
        ),
        "aws_redshift_database": get("SALES_AWS_REDSHIFT_DATABASE") or "dev",
        "aws_redshift_user": get("SALES_AWS_REDSHIFT_USER"),
        "aws_redshift_password": get("SALES_AWS_REDSHIFT_PASSWORD"),
        "aws_redshift_iam_role_arn": get("SALES_AWS_REDSHIFT_IAM_ROLE_ARN"),
        "aws_redshift_workgroup": get("SALES_AWS_REDSHIFT_WORKGROUP"),
        "aws_redshift_cluster_identifier": get("SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER"),
        "aws_redshift_secret_arn": get("SALES_AWS_REDSHIFT_SECRET_ARN"),
        "aws_redshift_access": (get("SALES_AWS_REDSHIFT_ACCESS") or "connection").lower(),
        "aws_sns_topic_arn": get("SALES_AWS_SNS_TOPIC_ARN"),
    }
    for name in ("SALES_UI_BASE_URL", "SALES_ALERT_WEBHOOK_URL"):
        url = get(name)
        if url and not url.startswith(("http://", "https://")):
            # Never echo the webhook URL: it carries its credential.
            raise SettingsError(f"{name} must start with http:// or https://")
    if values["source_url"] and not values["source_token"]:
        raise SettingsError("SALES_SOURCE_URL is set but SALES_SOURCE_TOKEN is not")
    _check_redshift(values)
    return Settings(**values)  # type: ignore[arg-type]
