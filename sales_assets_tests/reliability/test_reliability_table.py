"""Guards RELIABILITY.md against drifting from the suite: every fault row of the table must
name at least one test, and each named node id must be one pytest really collects (a renamed
or deleted test fails here), unless the row says which issue it is pending on. Every fault of
issue 10 (1-22, disk full, warehouse locked) and the cross-table crash (C) must have its row."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "RELIABILITY.md"
# C: a transform crash between two tables' commits (a gap found on the way, kept in the table).
EXPECTED_ROWS = [str(n) for n in range(1, 23)] + ["D", "L", "C"]
NODE_ID = re.compile(r"`([^`]+\.py::[^`]+)`")
PENDING = re.compile(r"^pending: issue \d+$")


def table_rows() -> dict[str, list[str]]:
    """Row label -> cells, for the table rows of RELIABILITY.md (header and rule skipped)."""
    rows = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 4 and re.fullmatch(r"\d+|[A-Z]", cells[0]):
            assert cells[0] not in rows, f"row {cells[0]} appears twice"
            rows[cells[0]] = cells
    return rows


def collected_node_ids(files: set[str]) -> set[str]:
    """Node ids pytest collects from ``files`` (its own collection, in a subprocess)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *sorted(files)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {line.strip() for line in done.stdout.splitlines() if "::" in line}


def test_every_fault_has_a_row_with_tests_or_a_pending_issue():
    rows = table_rows()
    assert list(rows) == EXPECTED_ROWS
    for label, (_, fault, guarantee, tests) in rows.items():
        assert fault and guarantee, f"row {label} needs a fault and a guarantee"
        assert NODE_ID.findall(tests) or PENDING.fullmatch(tests), f"row {label} names no test: {tests!r}"


@pytest.mark.slow  # a pytest subprocess collects the named files
def test_every_named_test_is_collected_by_pytest():
    named = {node for cells in table_rows().values() for node in NODE_ID.findall(cells[3])}
    collected = collected_node_ids({node.split("::", 1)[0] for node in named})
    # A parametrized test is named without its parameters: any collected instance proves it.
    functions = collected | {node.split("[", 1)[0] for node in collected}
    missing = sorted(node for node in named if node not in functions)
    assert missing == [], f"RELIABILITY.md names tests pytest does not collect: {missing}"
