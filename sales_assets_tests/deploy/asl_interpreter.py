"""A small interpreter of the exported ASL's JSONPath subset, driven by scripted task responses.

It runs Pass/Task/Wait/Choice/Parallel/Fail/Succeed with Parameters, ResultSelector,
ResultPath and Catch as Step Functions defines them; Retry is not replayed (a scripted error
is the error left after retries). Intrinsics are evaluated only as far as the exported
definition uses them (States.JsonToString, States.MathAdd of a path and a literal; States.Format,
States.Array keep their text).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping


class TaskError(Exception):
    def __init__(self, error: str, cause: str = ""):
        super().__init__(error)
        self.error, self.cause = error, cause


def get_path(data, path: str, context: Mapping):
    """``$.a.b[2].c`` (dots and literal array indexes, the subset the export uses); KeyError if absent."""
    root, rest = (context, path[2:]) if path.startswith("$$") else (data, path[1:])
    value = root
    for part in [p for p in rest.split(".") if p]:
        name, _, indexes = part.partition("[")
        if not isinstance(value, Mapping) or name not in value:
            raise KeyError(path)
        value = value[name]
        for index in (int(i) for i in indexes.rstrip("]").split("][") if i) if indexes else ():
            if not isinstance(value, list) or not -len(value) <= index < len(value):
                raise KeyError(path)
            value = value[index]
    return value


def _set_path(data, path: str | None, result):
    if path is None:
        return data
    if path == "$":
        return result
    data = copy.deepcopy(data)
    node = data
    parts = path[2:].split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = result
    return data


def _evaluate(expr: str, data, context):
    if expr.startswith("States.JsonToString("):
        return json.dumps(get_path(data, expr[len("States.JsonToString("):-1], context))
    if expr.startswith("States.MathAdd("):
        path, step = (part.strip() for part in expr[len("States.MathAdd("):-1].split(","))
        return get_path(data, path, context) + int(step)
    if expr.startswith("States."):
        return expr  # text kept: the interpreter proves control flow, not SQL or message text
    return get_path(data, expr, context)


def _template(value, data, context):
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if key.endswith(".$"):
                out[key[:-2]] = _evaluate(item, data, context)
            else:
                out[key] = _template(item, data, context)
        return out
    if isinstance(value, list):
        return [_template(v, data, context) for v in value]
    return value


def _choice(rule: Mapping, data, context) -> bool:
    if "Or" in rule:
        return any(_choice(r, data, context) for r in rule["Or"])
    if "And" in rule:
        return all(_choice(r, data, context) for r in rule["And"])
    try:
        value = get_path(data, rule["Variable"], context)
    except KeyError:
        return False
    if "StringEquals" in rule:
        return value == rule["StringEquals"]
    if "BooleanEquals" in rule:
        return value is rule["BooleanEquals"]
    if "StringMatches" in rule:  # "*" matches any text; Step Functions has no other wildcard
        pattern = ".*".join(re.escape(part) for part in rule["StringMatches"].split("*"))
        return isinstance(value, str) and re.fullmatch(pattern, value, re.DOTALL) is not None
    if "NumericLessThan" in rule:
        return isinstance(value, (int, float)) and value < rule["NumericLessThan"]
    raise NotImplementedError(rule)


class Execution:
    """Runs one (sub)machine; ``calls`` records (state name, resource, parameters) in order."""

    def __init__(self, respond: Callable[[str, str, dict], dict], max_steps: int = 500):
        self.respond, self.max_steps = respond, max_steps
        self.calls: list[tuple[str, str, dict]] = []
        self.visited: list[str] = []
        self.waits = 0

    def run(self, machine: Mapping, data, context=None):
        """(outcome, output): outcome is "Succeeded" or ("Failed", Error)."""
        context = context or {}
        name = machine["StartAt"]
        for _ in range(self.max_steps):
            state = machine["States"][name]
            self.visited.append(name)
            kind = state["Type"]
            if kind == "Fail":
                return ("Failed", state.get("Error")), data
            if kind == "Succeed":
                return "Succeeded", data
            nxt = state.get("Next")
            if kind == "Pass":
                result = _template(state.get("Parameters", {}), data, context) if "Parameters" in state else data
                data = _set_path(data, state.get("ResultPath", "$"), result)
            elif kind == "Wait":
                self.waits += 1
            elif kind == "Choice":
                nxt = next((r["Next"] for r in state["Choices"] if _choice(r, data, context)), state.get("Default"))
                if nxt is None:
                    return ("Failed", "States.NoChoiceMatched"), data
            elif kind in ("Task", "Parallel"):
                try:
                    if kind == "Task":
                        params = _template(state.get("Parameters", {}), data, context)
                        self.calls.append((name, state["Resource"], params))
                        result = self.respond(name, state["Resource"], params)
                        if "ResultSelector" in state:
                            result = _template(state["ResultSelector"], result, context)
                    else:
                        result = []
                        for branch in state["Branches"]:
                            outcome, output = self.run(branch, data, context)
                            if outcome != "Succeeded":
                                raise TaskError(outcome[1] or "States.BranchFailed")
                            result.append(output)
                    data = _set_path(data, state.get("ResultPath", "$"), result)
                except (TaskError, KeyError) as exc:
                    error = exc.error if isinstance(exc, TaskError) else "States.Runtime"
                    catcher = next((c for c in state.get("Catch", [])
                                    if error in c["ErrorEquals"] or "States.ALL" in c["ErrorEquals"]), None)
                    if catcher is None:
                        return ("Failed", error), data
                    data = _set_path(data, catcher.get("ResultPath", "$"), {"Error": error, "Cause": getattr(exc, "cause", "")})
                    nxt = catcher["Next"]
            else:
                raise NotImplementedError(kind)
            if state.get("End"):
                return "Succeeded", data
            name = nxt
        raise RuntimeError("too many steps (a poll loop that never ends?)")
