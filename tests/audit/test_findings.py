"""The audit finds exactly the annotated hotspots in the fixture codebase.

Every `# expect: KIND RISK [fixable]` marker (or `expect-next:` for the
line below) is a finding the audit must report (the `fixable` word documents
the codemods' decision at the time of writing; whether a site is fixable is
the codemods' own answer, checked in test_fixability_agrees.py); anything reported without a
marker is a false positive and fails the test. The fixtures include polling
loops, pagination, loops over hosts, worker main loops, a `status` column in
tables that are not job tables and a TTL delay queue: none may be reported.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codemods.audit import AuditReport, Kind, Risk, run_audit


def _actual(report: AuditReport) -> set[tuple[str, int, str, str]]:
    return {(h.path, h.start_line, h.kind.value, h.risk.value) for h in report.hotspots}


def test_every_expected_hotspot_is_found_and_nothing_else(
    legacy_report: AuditReport, expected: set[tuple[str, int, str, str, bool]]
) -> None:
    actual = _actual(legacy_report)
    expected = {e[:4] for e in expected}  # type: ignore[misc]
    assert sorted(expected - actual) == [], "missed or misranked"
    assert sorted(actual - expected) == [], "unexpected (false positive or misranked)"


def test_every_kind_is_covered(legacy_report: AuditReport) -> None:
    kinds = {h.kind for h in legacy_report.hotspots}
    assert kinds == set(Kind)
    assert {h.risk for h in legacy_report.hotspots} == set(Risk)


def test_unparsable_files_are_reported_and_do_not_stop_the_run(
    legacy_report: AuditReport, legacy: Path, expected_errors: set[tuple[str, int]]
) -> None:
    assert {(e.path, e.line) for e in legacy_report.errors} == expected_errors
    assert legacy_report.files_scanned == len([p for p in legacy.rglob("*") if p.is_file()])


def test_hotspots_are_sorted_worst_first(legacy_report: AuditReport) -> None:
    ranks = [h.risk.rank for h in legacy_report.hotspots]
    assert ranks == sorted(ranks, reverse=True)


def _one(report: AuditReport, path: str, line: int):  # type: ignore[no-untyped-def]
    [h] = [h for h in report.hotspots if h.path == path and h.start_line == line]
    return h


def test_reasons_fixes_and_excerpts(legacy_report: AuditReport) -> None:
    charge = _one(legacy_report, "app/retry_loops.py", 24)
    assert charge.function == "charge_card"
    assert "retries an HTTP write with no idempotency key" in charge.reason
    assert charge.fix.name == "retry-loop" and charge.fix.automatic
    assert "idempotency_key" in charge.fix.note
    assert "requests.post" in charge.excerpt
    assert charge.removable_lines > 0

    counter = _one(legacy_report, "app/retry_loops.py", 90)
    assert counter.fix.name == "@transaction"

    forever = _one(legacy_report, "app/retry_loops.py", 48)
    assert forever.reason.startswith("retries forever")
    assert forever.fixable and "unlimited attempts" in forever.fix.note  # the codemod decides

    repair = _one(legacy_report, "app/retry_loops.py", 110)
    assert repair.fixable or "create_missing_table" in (repair.refusal or "")  # codemod decides

    hot = _one(legacy_report, "app/retry_loops.py", 69)
    assert "hot loop" in hot.reason

    job = _one(legacy_report, "app/sa_models.py", 9)
    assert job.fix.kind == "adapter" and job.fix.name == "status-column"
    assert "next_retry_at" in job.reason

    sweeper = _one(legacy_report, "app/sweepers.py", 25)
    assert sweeper.fix.name == "cron-sweeper" and "`schedule` job" in sweeper.reason

    command = _one(legacy_report, "app/management/commands/requeue_stuck.py", 8)
    assert "management command" in command.reason

    dlq = _one(legacy_report, "app/broker.py", 5)
    assert dlq.fix.name == "dead-letter"

    predicate = _one(legacy_report, "app/decorators.py", 40)
    assert predicate.fix.name == "backoff"


def test_summary_counts(
    legacy_report: AuditReport,
    expected: set[tuple[str, int, str, str, bool]],
    expected_errors: set[tuple[str, int]],
) -> None:
    s = legacy_report.summary()
    assert s["hotspots"] == len(expected)
    assert s["fixable_by_codemod"] == sum(1 for h in legacy_report.hotspots if h.fixable) > 0
    assert sum(s["by_risk"].values()) == s["hotspots"]
    assert s["retry_lines_removable"] > 0
    assert s["files_failed"] == len(expected_errors)


def test_ids_are_stable_and_unique(legacy_report: AuditReport, legacy: Path) -> None:
    again = run_audit([legacy], jobs=1)
    assert [h.id for h in again.hotspots] == [h.id for h in legacy_report.hotspots]
    assert len({h.id for h in again.hotspots}) == len(again.hotspots)


@pytest.mark.parametrize(
    "source",
    [
        "for host in hosts:\n    try:\n        return connect(host)\n    except OSError:\n"
        "        time.sleep(1)\n",
        "while True:\n    r = get(url)\n    if r.status == 'done':\n        break\n"
        "    time.sleep(1)\n",
        "while url:\n    try:\n        page = get(url)\n    except IOError:\n        break\n"
        "    url = page.next\n",
    ],
    ids=["hosts", "readiness-poll", "pagination"],
)
def test_single_shapes_that_are_not_retries(tmp_path, source: str) -> None:  # type: ignore[no-untyped-def]
    body = "\n".join("    " + line for line in source.splitlines())
    (tmp_path / "m.py").write_text(f"import time\n\n\ndef f(hosts, url, connect, get):\n{body}\n")
    report = run_audit([tmp_path], jobs=1)
    assert report.hotspots == [] and report.errors == []
