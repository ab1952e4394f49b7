"""Expectations read from the annotated fixture codebase (helpers for the audit tests)."""

from __future__ import annotations

import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY = FIXTURES / "legacy"
_MARK = re.compile(r"(?:#|--)\s*expect(-next)?:\s*([\w-]+)\s+(low|medium|high)(\s+fixable)?")

# JSON cannot hold comments: its expectations are listed here.
EXTRA_EXPECTED = {("deploy/queues.json", 4, "dead-letter", "low", False)}
EXPECTED_ERRORS = {("app/broken.py", 5), ("app/py2_script.py", 3)}


def expected_findings(root: Path = LEGACY) -> set[tuple[str, int, str, str, bool]]:
    """(path, start line, kind, risk, fixable) for every `expect:` marker under root."""
    found: set[tuple[str, int, str, str, bool]] = set(EXTRA_EXPECTED)
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        for i, line in enumerate(path.read_text().splitlines(), 1):
            m = _MARK.search(line)
            if m:
                lineno = i + 1 if m.group(1) else i
                found.add((rel, lineno, m.group(2), m.group(3), bool(m.group(4))))
    return found
