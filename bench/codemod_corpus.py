"""Measure ``durable codemod`` recall on the retry sites of a labelled corpus of real code.

Usage::

    .venv/bin/python bench/codemod_corpus.py [--index FILE] [--cache DIR] [--show]
                                             [--only TEXT] [--diff] [--json FILE]

The index is a TSV file (``pattern, repo, path, commit, symbol, shapes``), by
default ``/work/shared/corpus/dev-index.tsv``; the rows of pattern
``retry_loops`` and ``retry_decorators`` are measured, and the rows of
``false_positives`` must stay untouched. Each file is read at its commit from
the unpacked trees the audit bench keeps (``/work/cache/audit-corpus``), else from
a git mirror the search tool's ``fetch`` brought (``/work/.mirror``), or else
downloaded from ``raw.githubusercontent.com`` into ``--cache`` (outside the
repository: third-party code is never committed).

The codemods run in memory (:func:`codemods.decide`); a row counts as *found*
when a site overlaps the row's function, *rewritten* when one of those sites
is rewritten, else *refused* with the site's reason, else *not found*.
Whether a rewrite is right is judged by reading it (``--diff`` prints it).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from codemods import Site
from codemods.runner import transform_source

DEFAULT_INDEX = Path("/work/shared/corpus/dev-index.tsv")
AUDIT_CACHE = Path("/work/cache/audit-corpus")
MIRRORS = Path("/work/.mirror")
DEFAULT_CACHE = Path("/work/cache/codemod-corpus")
PATTERNS = ("retry_loops", "retry_decorators", "false_positives")


@dataclass
class Row:
    pattern: str
    repo: str
    path: str
    commit: str
    symbol: str
    shapes: str = ""
    start: int = 0
    end: int = 0
    sites: list[Site] = field(default_factory=list)
    diff: str = ""
    error: str = ""

    @property
    def outcome(self) -> str:
        if self.error:
            return "error"
        if any(s.action == "rewritten" for s in self.sites):
            return "rewritten"
        return "refused" if self.sites else "not found"


def read_index(path: Path) -> list[Row]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [
            Row(r[0], r[1], r[2], r[3], r[4], r[5] if len(r) > 5 else "")
            for r in reader
            if len(r) >= 5 and r[0] in PATTERNS
        ]


def source_of(row: Row, cache: Path) -> str:
    """The file at its commit: the audit bench's tree, else a cached download."""
    tree = AUDIT_CACHE / f"{row.repo.replace('/', '+')}@{row.commit[:12]}"
    if (tree / row.path).is_file():
        return (tree / row.path).read_text(encoding="utf-8")
    local = cache / row.repo.replace("/", "+") / row.commit[:12] / row.path
    mirror = MIRRORS / row.repo.replace("/", "+") / "repo"
    if not local.is_file() and mirror.is_dir():
        shown = subprocess.run(
            ["git", "--git-dir", str(mirror), "show", f"{row.commit}:{row.path}"],
            capture_output=True,
            check=False,
        )
        if shown.returncode == 0:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(shown.stdout)
    if not local.is_file():
        url = f"https://raw.githubusercontent.com/{row.repo}/{row.commit}/{row.path}"
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
    return local.read_text(encoding="utf-8")


def _qualnames(tree: ast.AST) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = ".".join([*scope, child.name])
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                if not _is_overload(child):  # a typing stub is not the definition
                    out.setdefault(name, (first, child.end_lineno or child.lineno))
                visit(child, [*scope, child.name])
            else:
                visit(child, scope)

    visit(tree, [])
    return out


def _is_overload(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any(
        (isinstance(d, ast.Name) and d.id == "overload")
        or (isinstance(d, ast.Attribute) and d.attr == "overload")
        for d in decorators
    )


def locate(row: Row, source: str) -> None:
    names = _qualnames(ast.parse(source))
    sym = row.symbol.strip()
    found = names.get(sym) or next(
        (span for name, span in names.items() if name.endswith("." + sym)), None
    )
    if found is None:
        found = next((span for name, span in names.items() if name.split(".")[-1] == sym), None)
    if found is None:
        raise LookupError(f"symbol {sym} not found")
    row.start, row.end = found


def measure(row: Row, cache: Path, want_diff: bool) -> None:
    try:
        source = source_of(row, cache)
        locate(row, source)
        new, sites = transform_source(source, filename=row.path)
    except Exception as exc:  # one bad row never stops the measure
        row.error = f"{type(exc).__name__}: {exc}"
        return
    row.sites = [s for s in sites if s.line <= row.end and (s.end_line or s.line) >= row.start]
    if want_diff and new != source:
        import difflib

        old_lines = source.splitlines(keepends=True)[row.start - 1 : row.end]
        new_lines = new.splitlines(keepends=True)
        row.diff = "".join(difflib.unified_diff(source.splitlines(True), new_lines, n=2))
        del old_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--show", action="store_true", help="one line per row")
    parser.add_argument("--only", help="rows whose repo/path/symbol contains TEXT")
    parser.add_argument("--diff", action="store_true", help="print the rewrites")
    parser.add_argument("--json", type=Path, help="write the per-row results here")
    args = parser.parse_args(argv)
    rows = read_index(args.index)
    if args.only:
        rows = [r for r in rows if args.only in f"{r.repo}/{r.path}:{r.symbol}"]
    for row in rows:
        measure(row, args.cache, args.diff)
    for row in rows:
        if args.show or args.only:
            what = "; ".join(
                f"L{s.line} {s.selector} {s.action}: {s.reason}"
                + (f" [{s.policy}]" if s.policy else "")
                + (f" notes: {' | '.join(s.notes)}" if s.notes else "")
                for s in row.sites
            )
            print(f"{row.pattern:16} {row.outcome:9} {row.repo}:{row.symbol}: {row.error or what}")
        if args.diff and row.diff:
            print(row.diff)
    print()
    print("| pattern | rows | found | rewritten | refused | not found | errors |")
    print("|---|---|---|---|---|---|---|")
    for pattern in PATTERNS:
        group = [r for r in rows if r.pattern == pattern]
        if not group:
            continue
        c = Counter(r.outcome for r in group)
        found = c["rewritten"] + c["refused"]
        print(
            f"| {pattern} | {len(group)} | {found} | {c['rewritten']} | {c['refused']} "
            f"| {c['not found']} | {c['error']} |"
        )
    reasons = Counter(
        _reason_kind(r.sites[0].reason)
        for r in rows
        if r.outcome == "refused" and r.pattern != "false_positives"
    )
    print()
    print("| refused because | sites |")
    print("|---|---|")
    for reason, count in reasons.most_common():
        print(f"| {reason} | {count} |")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "pattern": r.pattern,
                        "repo": r.repo,
                        "path": r.path,
                        "symbol": r.symbol,
                        "outcome": r.outcome,
                        "error": r.error,
                        "sites": [s.as_dict() for s in r.sites],
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
    return 0


def _reason_kind(reason: str) -> str:
    """The reason without its specifics (names, values), to count refusals by kind."""
    head = reason.split(":")[0]
    return head.split("`")[0].strip() or reason


if __name__ == "__main__":
    sys.exit(main())
