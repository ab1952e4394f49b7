"""Shared fixtures for the audit tests: the annotated legacy codebase.

Helpers live here (not in an importable module) so the tests work under
pytest's ``--import-mode=importlib``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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


@pytest.fixture(scope="session")
def synthetic() -> Callable[[int], AuditReport]:
    """``synthetic(n)``: a report of ``n`` made-up findings (see :func:`synthetic_report`)."""
    return synthetic_report


def synthetic_report(n: int = 1000) -> AuditReport:
    """A report of ``n`` made-up findings across kinds, risks, folders and helpers
    (long paths and excerpts), for the size and browser tests of the reports."""
    from codemods.audit import Fix, Hotspot, Kind, Risk

    kinds = list(Kind)
    risks = [Risk.HIGH, Risk.MEDIUM, Risk.LOW, Risk.LOW]
    report = AuditReport(root="synthetic", base="/srv/synthetic", files_scanned=n // 3)
    for i in range(n):
        folder = f"services/team_{i % 7}/very/deeply/nested/package_{i % 13}"
        body = "\n".join(f"        step_{j}(payload, attempt)  # line {j}" for j in range(40))
        report.hotspots.append(
            Hotspot(
                kind=kinds[i % len(kinds)],
                pattern="for-range",
                path=f"{folder}/module_{i % 29}.py",
                start_line=10 + i,
                end_line=50 + i,
                function=f"Handler{i % 11}.process_{i}",
                excerpt=f"for attempt in range({i % 5 + 2}):\n    try:\n{body}",
                risk=risks[i % len(risks)],
                reason=f"retries an HTTP write with no idempotency key, variant {i}",
                fix=Fix("codemod", "retry-loop", i % 3 == 0, "rewrites the loop into a step"),
                start_col=4,
                end_col=30,
                group=f"myproject.retrying.helper_{i % 4}" if i % 5 == 0 else None,
                why=("It sends a POST that creates an order.", "Nothing marks it idempotent."),
            )
        )
    report.sort()
    return report
