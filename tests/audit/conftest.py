"""Shared fixtures for the audit tests: the annotated legacy codebase.

Helpers live here (not in an importable module) so the tests work under
pytest's ``--import-mode=importlib``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codemods.audit import AuditReport, run_audit

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


@pytest.fixture(scope="session")
def legacy() -> Path:
    """The annotated fixture codebase."""
    return LEGACY


@pytest.fixture(scope="session")
def expected() -> set[tuple[str, int, str, str, bool]]:
    """(path, line, kind, risk, fixable) of every hotspot the audit must report."""
    return expected_findings()


@pytest.fixture(scope="session")
def expected_errors() -> set[tuple[str, int]]:
    return set(EXPECTED_ERRORS)


@pytest.fixture(scope="session")
def legacy_report() -> AuditReport:
    return run_audit([LEGACY], jobs=1)
