"""On real code, do ``durable audit`` and ``durable codemod`` give one answer per retry site?

Usage::

    .venv/bin/python bench/audit_codemod_agreement.py [DIR ...]

Scans every Python file of the folders given (by default the unpacked projects
``bench/codemod_projects.py`` left under ``/work/cache/codemod-projects/work``,
their "before" copies) with the audit's scanner and its "fixable by" (the
codemods' decision), and with ``codemods.decide``; prints each disagreement:

* ``FIXABLE``: the audit says automatic where no rewritten site overlaps, or the
  reverse;
* ``NOT LISTED``: a retry loop the audit reports (or a hotspot whose fix names a
  codemod) that the codemod does not list at all;
* ``NOT REPORTED``: a site the codemod rewrites that the audit does not report
  as automatic.

The same three checks as ``tests/audit/test_fixability_agrees.py``, which runs
them over the test corpus; here on code nobody on the team wrote. Exit status 1
when any disagreement is found.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codemods import decide  # noqa: E402
from codemods.audit.fixability import RETRY_KINDS, apply_decisions  # noqa: E402
from codemods.audit.model import Kind  # noqa: E402
from codemods.audit.pyscan import scan_python  # noqa: E402
from codemods.audit.scanner import worth_parsing  # noqa: E402

DEFAULT = Path("/work/cache/codemod-projects/work")


def _overlaps(line: int, end: int, start: int, stop: int) -> bool:
    return line <= stop and max(end, line) >= start


def check(path: Path) -> tuple[int, list[str]]:
    """The retry hotspots of one file and the disagreements found there."""
    data = path.read_bytes()
    if not worth_parsing(data):
        return 0, []
    try:
        scanned = scan_python(str(path), data)
    except (SyntaxError, ValueError, RecursionError):
        return 0, []
    hotspots = apply_decisions(scanned.hotspots, scanned.text, str(path), scanned.tree)
    sites = decide(scanned.text, str(path))
    rewritten = [s for s in sites if s.action == "rewritten"]
    found: list[str] = []
    count = 0
    for h in hotspots:
        if h.kind not in RETRY_KINDS:
            continue
        count += 1
        where = f"{path}:{h.start_line} {h.pattern} ({h.fix.label()})"
        near = [s for s in rewritten if _overlaps(s.line, s.end_line, h.start_line, h.end_line)]
        if h.fixable != bool(near):
            found.append(f"FIXABLE {where}")
        listed = any(_overlaps(s.line, s.end_line, h.start_line, h.end_line) for s in sites)
        if (h.kind is Kind.RETRY_LOOP or h.fix.kind == "codemod") and not listed:
            found.append(f"NOT LISTED {where}")
    for s in rewritten:
        if not any(
            h.kind in RETRY_KINDS
            and h.fixable
            and _overlaps(s.line, s.end_line, h.start_line, h.end_line)
            for h in hotspots
        ):
            found.append(f"NOT REPORTED {path}:{s.line} {s.selector}")
    return count, found


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or sorted(DEFAULT.glob("*-before"))
    if not roots:
        print(f"nothing to scan: give folders, or run bench/codemod_projects.py first ({DEFAULT})")
        return 2
    total, problems = 0, []
    for root in roots:
        files = sorted(p for p in root.rglob("*.py") if p.is_file())
        for path in files:
            count, found = check(path)
            total += count
            problems.extend(found)
        print(f"{root}: {len(files)} files", file=sys.stderr)
    for line in problems:
        print(line)
    print(f"{total} retry hotspots, {len(problems)} disagreements")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
