"""``deploy-stepfunctions``: create the state machine, or update it when one of that name exists.

The definition's ``${name}`` placeholders are replaced from ``substitutions`` first (what
CloudFormation's DefinitionSubstitutions does); ``DEFAULT_SUBSTITUTIONS`` fill what is not
given (the metrics namespace the template's parameter also defaults to); a placeholder left
unfilled raises ValueError before any AWS call. Returns the state machine ARN and whether it was created.

``upload_glue_artifacts`` puts what the template's Glue job runs into the artifact bucket: the
script at ``template.GLUE_SCRIPT_KEY`` and the day-lease zip (``packaging.build_glue_lease_zip``)
at ``template.GLUE_LEASE_ZIP_KEY``, the job's ``--extra-py-files``. Upload both together: a
script without its zip fails every run that takes its own leases (before writing anything).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pathlib import Path

from sales_assets.deploy import asl, template
from sales_assets.ingest import packaging
from sales_assets.resources.etl import GLUE_SCRIPTS_DIR
from sales_assets.settings import DEFAULT_METRICS_NAMESPACE

GLUE_SCRIPT_PATH = GLUE_SCRIPTS_DIR / template.GLUE_SCRIPT_KEY.rsplit("/", 1)[1]

DEFAULT_SUBSTITUTIONS = {"MetricsNamespace": DEFAULT_METRICS_NAMESPACE}


def substitute(definition: Mapping, substitutions: Mapping[str, str]) -> str:
    substitutions = {**DEFAULT_SUBSTITUTIONS, **substitutions}
    missing = asl.placeholders(definition) - substitutions.keys()
    if missing:
        raise ValueError(f"no value for ${{...}} placeholders {sorted(missing)}")
    text = json.dumps(definition, sort_keys=True)
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", json.dumps(str(value))[1:-1])
    return text


def deploy_state_machine(
    client: Any, name: str, definition: Mapping, role_arn: str, substitutions: Mapping[str, str]
) -> tuple[str, bool]:
    text = substitute(definition, substitutions)
    pages = client.get_paginator("list_state_machines").paginate()
    existing = next((m["stateMachineArn"] for p in pages for m in p["stateMachines"] if m["name"] == name), None)
    if existing:
        client.update_state_machine(stateMachineArn=existing, definition=text, roleArn=role_arn)
        return existing, False
    return client.create_state_machine(name=name, definition=text, roleArn=role_arn, type="STANDARD")["stateMachineArn"], True


def upload_glue_artifacts(s3_client: Any, bucket: str, build_dir: str | Path,
                          script_path: str | Path = GLUE_SCRIPT_PATH) -> dict[str, str]:
    """Build the lease zip in ``build_dir``, upload it and the Glue script to ``bucket``; returns
    {key: local file uploaded}."""
    uploads = {
        template.GLUE_LEASE_ZIP_KEY: packaging.build_glue_lease_zip(build_dir),
        template.GLUE_SCRIPT_KEY: Path(script_path),
    }
    for key, path in uploads.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=Path(path).read_bytes())
    return {key: str(path) for key, path in uploads.items()}
