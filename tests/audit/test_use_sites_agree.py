"""Uses of a project's own retry decorator: the audit's answer is the codemod's.

``durable audit`` links each use of a project retry helper to its definition in
another file; ``durable codemod`` on the same tree lists the same use
(``project-retry``) with the codemods' decision on that definition. The
audit's refusal is that reason, computed by the same code
(:func:`codemods._use_sites.use_reason`), and neither calls it fixable.
"""

from __future__ import annotations

from pathlib import Path

from codemods.audit import run_audit
from codemods.runner import run

SHAPES = Path(__file__).parent / "fixtures" / "shapes"


def test_the_audit_answers_a_use_site_as_the_codemod_does() -> None:
    report = run_audit([SHAPES], jobs=1)
    uses = [h for h in report.hotspots if h.pattern.endswith("(project helper)")]
    sites = {
        (Path(result.path).relative_to(SHAPES).as_posix(), site.line): site
        for result in run([SHAPES], jobs=1)
        for site in result.sites
        if site.selector == "project-retry"
    }
    answered = 0
    for h in uses:
        assert not h.fixable
        site = sites.get((h.path, h.start_line))
        if site is None:  # the codemods read no retry in the definition: no reason to give
            assert h.refusal == "project retry helper: no codemod rewrites its use sites"
            continue
        answered += 1
        assert site.action == "skipped"
        assert site.reason.replace(f"{SHAPES}/", "") == h.refusal
        assert f"the project-retry codemod leaves it: {h.refusal}" in h.fix.note
    # inventory/stock.py: the two uses of retrykit.with_retries and the use of
    # retrykit.patiently (a retry engine by recursion, found since the recursion work)
    assert answered == 3
    linked = {(h.path, h.start_line) for h in uses}
    assert set(sites) <= linked, "listed by the codemod, not reported by the audit"
