"""The audit's 'fixable automatically' is the codemods' own decision, never a second opinion.

Over every Python source of the audit fixtures and every code sample of the
codemod tests: a retry hotspot is automatic exactly when a site the codemods
rewrite overlaps it, and every site the codemods rewrite is a hotspot the
audit reports as automatic.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from codemods import decide
from codemods.audit.fixability import RETRY_KINDS, apply_decisions
from codemods.audit.model import Kind
from codemods.audit.pyscan import scan_python

HERE = Path(__file__).parent
CODEMOD_TESTS = HERE.parent / "codemods"


def _samples() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in sorted((HERE / "fixtures").rglob("*.py")):
        text = path.read_text(errors="replace")
        try:
            ast.parse(text)
        except SyntaxError:
            continue
        out.append((path.relative_to(HERE).as_posix(), text))
    for path in sorted(CODEMOD_TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            text = node.value
            if "\n" not in text or not any(
                w in text for w in ("retry", "sleep", "backoff", "reconnect", "repair")
            ):
                continue
            try:
                ast.parse(text)
            except SyntaxError:
                continue
            out.append((f"{path.name}:{node.lineno}", text))
    return out


SAMPLES = _samples()


def test_the_corpus_is_not_empty() -> None:
    assert len(SAMPLES) > 40


@pytest.mark.parametrize(("name", "source"), SAMPLES, ids=[n for n, _ in SAMPLES])
def test_audit_and_codemods_agree(name: str, source: str) -> None:
    scanned = scan_python("sample.py", source.encode())
    hotspots = apply_decisions(scanned.hotspots, scanned.text, "sample.py", scanned.tree)
    sites = decide(source, "sample.py")
    rewritten = [s for s in sites if s.action == "rewritten"]
    for h in hotspots:
        if h.kind not in RETRY_KINDS:
            continue
        if h.kind is Kind.RETRY_LOOP or h.fix.kind == "codemod":
            assert any(
                s.line <= h.end_line and max(s.end_line, s.line) >= h.start_line for s in sites
            ), (name, h.start_line, h.pattern, h.fix, "reported by the audit, not by the codemod")
        overlapping = [
            s for s in rewritten if s.line <= h.end_line and max(s.end_line, s.line) >= h.start_line
        ]
        assert h.fixable == bool(overlapping), (name, h.start_line, h.pattern, h.fix)
    for s in rewritten:
        assert any(
            h.kind in RETRY_KINDS
            and h.fixable
            and s.line <= h.end_line
            and max(s.end_line, s.line) >= h.start_line
            for h in hotspots
        ), (name, s.line, s.selector, "rewritten by the codemod, not reported by the audit")
