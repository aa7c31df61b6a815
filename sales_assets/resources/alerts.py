"""Alerting: one interface, a local file (+ optional webhook) or an SNS topic.

``local`` appends every alert as one JSON line to a file and, when a webhook URL
is configured, POSTs a Slack-compatible ``{"text": ...}`` body to it; ``aws``
publishes to an SNS topic. Callers build an :class:`Alert` and call
:meth:`AlertsResource.send`; what an alert says is decided here, once, so every
channel carries the same words.

An alert names the asset, the partition, what failed and a link to the run. It
never carries a secret: the text is scrubbed of bearer tokens, passwords, AWS
keys and URL credentials before it leaves, and the webhook URL itself (which
embeds a credential) is never part of an alert.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
from pydantic import Field

SEVERITIES = ("error", "warning")
MAX_FAILURE_CHARS = 2000
SNS_SUBJECT_MAX = 100

# What a failure message may leak; each pattern keeps its label and drops the value.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1<redacted>"),
    (re.compile(r"(?i)((?:password|passwd|pwd|token|secret|api[_-]?key)\s*[=:]\s*)[^\s,;&'\"]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(aws_secret_access_key\s*[=:]\s*)\S+"), r"\1<redacted>"),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "<redacted-aws-key>"),
    (re.compile(r"(https?://)[^/\s:@]+:[^/\s@]+@"), r"\1<redacted>@"),
)


def scrub(text: str) -> str:
    """``text`` with credentials replaced by ``<redacted>`` (see the module docstring)."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@dataclasses.dataclass(frozen=True)
class Alert:
    """One thing an administrator must look at.

    ``kind`` is ``run_failure`` or ``check_failure``; ``severity`` is ``error`` or
    ``warning``; ``assets`` are asset keys as user strings (``warehouse/fact_sales``);
    ``partition`` is a day, a ``first...last`` range, or None for unpartitioned runs.
    """

    kind: str
    severity: str
    title: str
    assets: tuple[str, ...]
    partition: str | None
    failure: str
    run_id: str
    job_name: str | None = None
    check_name: str | None = None
    details: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")


def run_url(ui_base_url: str, run_id: str) -> str:
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}"


def alert_payload(alert: Alert, ui_base_url: str, now: dt.datetime | None = None) -> dict:
    """The JSON document every channel carries (scrubbed, with the run link)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    failure = scrub(alert.failure)
    if len(failure) > MAX_FAILURE_CHARS:
        failure = failure[:MAX_FAILURE_CHARS] + " …(truncated)"
    return {
        "sent_at": now.isoformat(),
        "kind": alert.kind,
        "severity": alert.severity,
        "title": scrub(alert.title),
        "assets": list(alert.assets),
        "partition": alert.partition,
        "check_name": alert.check_name,
        "failure": failure,
        "run_id": alert.run_id,
        "job_name": alert.job_name,
        "run_url": run_url(ui_base_url, alert.run_id),
        "details": json.loads(scrub(json.dumps(alert.details, default=str))),
    }


def alert_text(payload: dict) -> str:
    """A human message for chat and e-mail: what broke, where, and the link."""
    icon = ":red_circle:" if payload["severity"] == "error" else ":warning:"
    lines = [
        f"{icon} {payload['title']}",
        f"asset: {', '.join(payload['assets']) or '-'}",
        f"partition: {payload['partition'] or '-'}",
    ]
    if payload["check_name"]:
        lines.append(f"check: {payload['check_name']}")
    lines += [f"failure: {payload['failure']}", f"run: {payload['run_url']}"]
    return "\n".join(lines)


class AlertsResource(dg.ConfigurableResource, ABC):
    """Delivers alerts. ``send`` returns the payload it delivered."""

    ui_base_url: str = Field(
        default="http://127.0.0.1:3000", description="Base URL of the Dagster UI, for the run link in alerts."
    )

    def send(self, alert: Alert) -> dict:
        payload = alert_payload(alert, self.ui_base_url)
        self._deliver(payload)
        dg.get_dagster_logger().info(f"alert sent: {payload['title']} ({payload['run_url']})")
        return payload

    @abstractmethod
    def _deliver(self, payload: dict) -> None: ...


class LocalAlertsResource(AlertsResource):
    """Appends alerts to a JSON Lines file; also POSTs them to a Slack-compatible webhook when set."""

    path: str = Field(description="The alerts JSONL file (created with its folder when absent).")
    webhook_url: str | None = Field(default=None, description="Slack-compatible incoming webhook; a secret.")
    webhook_timeout_seconds: float = 10.0

    def _deliver(self, payload: dict) -> None:
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(payload, sort_keys=True) + "\n")
        if self.webhook_url:
            self._post(payload)

    def _post(self, payload: dict) -> None:
        body = json.dumps({"text": alert_text(payload), "alert": payload}).encode()
        request = urllib.request.Request(
            self.webhook_url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.webhook_timeout_seconds) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            # The file already holds the alert; name the failure without the URL (it is a credential).
            status = getattr(exc, "code", None)
            raise RuntimeError(
                f"alert webhook POST failed ({'HTTP ' + str(status) if status else type(exc).__name__}); "
                f"the alert is in {self.path}"
            ) from None


class SnsAlertsResource(AlertsResource):
    """Publishes alerts to an SNS topic: the title as subject; the text, then the JSON payload, as message."""

    topic_arn: str
    region_name: str | None = None
    endpoint_url: str | None = Field(default=None, description="For tests against moto.")

    def _deliver(self, payload: dict) -> None:
        import boto3

        client = boto3.client("sns", region_name=self.region_name, endpoint_url=self.endpoint_url)
        subject = payload["title"]
        if len(subject) > SNS_SUBJECT_MAX:
            subject = subject[: SNS_SUBJECT_MAX - 1] + "…"
        # SNS subjects must be ASCII without newlines.
        subject = subject.encode("ascii", "replace").decode().replace("\n", " ")
        client.publish(
            TopicArn=self.topic_arn,
            Subject=subject,
            # Text first for e-mail subscribers, then the JSON payload for machines.
            Message=alert_text(payload) + "\n\n" + json.dumps(payload, sort_keys=True),
        )
