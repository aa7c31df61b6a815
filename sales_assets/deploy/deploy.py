"""``deploy-stepfunctions``: create the state machine, or update it when one of that name exists.

The definition's ``${name}`` placeholders are replaced from ``substitutions`` first (what
CloudFormation's DefinitionSubstitutions does); ``DEFAULT_SUBSTITUTIONS`` fill what is not
given (the metrics namespace the template's parameter also defaults to); a placeholder left
unfilled raises ValueError before any AWS call. Returns the state machine ARN and whether it was created.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sales_assets.deploy import asl
from sales_assets.settings import DEFAULT_METRICS_NAMESPACE

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
