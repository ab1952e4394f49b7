"""The shapes real codebases hold, in our own minimal reproductions (fixtures/shapes).

Every `# expect: KIND RISK` marker (`expect-next:` for the line below) is a
finding the audit must report at that level; anything else reported is a
false positive (the fixtures hold readiness polls, failover over hosts,
pagination and a supervisor loop, which must stay silent).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codemods.audit import AuditReport, Hotspot, Kind, run_audit

SHAPES = Path(__file__).parent / "fixtures" / "shapes"
_MARK = re.compile(r"(?:#|--)\s*expect(-next)?:\s*([\w-]+)\s+(low|medium|high)")


def _expected() -> set[tuple[str, int, str, str]]:
    found: set[tuple[str, int, str, str]] = set()
    for path in sorted(SHAPES.rglob("*")):
        if not path.is_file() or path.name == "README.md":
            continue
        rel = path.relative_to(SHAPES).as_posix()
        for i, line in enumerate(path.read_text().splitlines(), 1):
            m = _MARK.search(line)
            if m:
                found.add((rel, i + 1 if m.group(1) else i, m.group(2), m.group(3)))
    return found


@pytest.fixture(scope="module")
def report() -> AuditReport:
    return run_audit([SHAPES], jobs=1)


def _one(report: AuditReport, path: str, line: int) -> Hotspot:
    [h] = [h for h in report.hotspots if h.path == path and h.start_line == line]
    return h


def _in(report: AuditReport, path: str, function: str) -> Hotspot:
    [h] = [h for h in report.hotspots if h.path == path and h.function == function]
    return h


def test_every_shape_is_found_at_its_level_and_nothing_else(report: AuditReport) -> None:
    actual = {(h.path, h.start_line, h.kind.value, h.risk.value) for h in report.hotspots}
    expected = _expected()
    assert sorted(expected - actual) == [], "missed or ranked differently"
    assert sorted(actual - expected) == [], "reported but not expected"


def test_use_sites_of_a_project_helper_in_other_files_carry_the_helper(
    report: AuditReport,
) -> None:
    reserve = _one(report, "inventory/stock.py", 7)
    assert reserve.group == "inventory.retrykit.with_retries"
    assert reserve.function == "reserve"
    assert any("idempotency key" in s for s in reserve.why)
    ping = _one(report, "inventory/stock.py", 17)
    assert ping.group == "inventory.retrykit.patiently"


def test_side_effects_are_seen_through_the_projects_own_functions(report: AuditReport) -> None:
    record = _in(report, "inventory/loops.py", "record")
    assert "_push()" in record.reason
    assert any("through _push()" in s for s in record.why)


def test_bounds_backoff_helpers_conflicts_and_transactions_read_right(
    report: AuditReport,
) -> None:
    notify = _in(report, "inventory/loops.py", "notify")  # tries = tries + 1 is a bound
    assert "forever" not in notify.reason and "HTTP write" in notify.reason
    report_loop = _in(report, "inventory/loops.py", "fetch_report")  # urlopen(url) is a download
    assert "HTTP write" not in report_loop.reason
    assert any("backoff" in s for s in report_loop.why)  # slept through a helper
    conflict = _in(report, "inventory/loops.py", "bump_version")
    assert "version conflict" in conflict.reason
    txn = _in(report, "inventory/loops.py", "transfer")
    assert "whole transaction" in txn.reason


def test_every_finding_says_why_and_where(report: AuditReport) -> None:
    for h in report.hotspots:
        assert h.why and all(s.endswith(".") for s in h.why), h
        if h.kind in (Kind.RETRY_LOOP, Kind.RETRY_DECORATOR):
            assert h.end_col >= h.start_col >= 0


def test_retries_decided_by_a_value_carry_the_codemods_decision(report: AuditReport) -> None:
    publish = _in(report, "inventory/replies.py", "publish")
    assert publish.fix.automatic and "message publish" in publish.reason
    read = _in(report, "inventory/replies.py", "read_setting")
    assert read.fix.automatic and read.reason == (
        "bounded retry with a pause, decided by the returned value"
    )
    endless = _in(report, "inventory/replies.py", "read_until_set")
    assert not endless.fix.automatic and "retries forever" in endless.reason
    assert endless.refusal is not None and "no count" in endless.refusal
