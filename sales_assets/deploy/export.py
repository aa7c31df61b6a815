"""``export-stepfunctions``: write DIR/state_machine.asl.json and DIR/template.yaml.

A caller may rely on: both files derived from the same graph in one call, byte-stable for the
same code location; the returned ``Export`` lists the assets left out (no integration metadata).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg

from sales_assets.deploy import asl, template

ASL_FILE = "state_machine.asl.json"
TEMPLATE_FILE = "template.yaml"


@dataclasses.dataclass(frozen=True)
class Export:
    asl_path: Path
    template_path: Path
    steps: tuple[str, ...]
    skipped: tuple[str, ...]


def export(defs: dg.Definitions, out_dir: str | Path) -> Export:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = asl.pipeline_steps(defs)
    definition = asl.build_state_machine(pipeline)
    asl_path, template_path = out / ASL_FILE, out / TEMPLATE_FILE
    asl_path.write_text(asl.render(definition))
    template_path.write_text(template.render(template.build_template(definition)))
    return Export(asl_path, template_path, tuple(s.name for s in pipeline.steps), pipeline.skipped)
