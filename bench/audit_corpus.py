"""Measure ``durable audit`` recall and precision on a labelled corpus of real projects.

Usage::

    .venv/bin/python bench/audit_corpus.py [--index FILE] [--mirrors DIR] [--cache DIR]
                                          [--misses] [--json FILE]

The index is a TSV file (``pattern, repo, path, commit, symbol, shapes``), by
default ``/work/shared/corpus/dev-index.tsv``. Each row names one real site:
``symbol`` is a dotted function/class name (``Class.method``) or a line range
(``L24-53``). Rows whose pattern is ``false_positives`` must NOT be reported.

Each repository must be present as a git mirror under ``--mirrors``
(``owner+name/repo``, the layout the search tool's ``fetch`` produces). The tree
of every listed commit is unpacked once into ``--cache`` (outside the
repository; third-party code is never committed), and the audit runs over the
whole tree, so a project's own retry helpers are followed across files.

A row is *found* when a hotspot of a matching kind overlaps the row's lines.
Precision counts the hotspots overlapping a labelled site: those on a
positive row are right, those on a ``false_positives`` row are wrong.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from codemods.audit import Hotspot, run_audit

DEFAULT_INDEX = Path("/work/shared/corpus/dev-index.tsv")
DEFAULT_MIRRORS = Path("/work/.mirror")
DEFAULT_CACHE = Path("/work/cache/audit-corpus")

#: pattern -> audit kinds that count as finding it
KINDS: dict[str, frozenset[str]] = {
    "retry_loops": frozenset({"retry-loop", "retry-decorator", "celery-retry"}),
    "retry_decorators": frozenset({"retry-loop", "retry-decorator", "celery-retry"}),
    "status_job_tables": frozenset({"status-table", "status-poller"}),
    "cron_sweepers": frozenset({"cron-sweeper"}),
    "dead_letter": frozenset({"dead-letter"}),
}
NEGATIVE = "false_positives"
#: files unpacked from each tree: what the audit reads, and the index's other sites
SUFFIXES = (".py", ".pyw", ".sql", ".json", ".yaml", ".yml", ".tf", ".toml", ".ini", ".cfg",
            ".cron", ".crontab", ".xml", ".lua", ".md", "crontab")  # fmt: skip
_LINES = re.compile(r"^L(\d+)(?:-L?(\d+))?$")


@dataclass
class Row:
    pattern: str
    repo: str
    path: str
    commit: str
    symbol: str
    shapes: str
    start: int = 0
    end: int = 0

    @property
    def tree(self) -> str:
        return f"{self.repo.replace('/', '+')}@{self.commit[:12]}"


def read_index(path: Path) -> list[Row]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [Row(*r[:6]) for r in reader if len(r) >= 5 and r[0]]


def unpack(repo: str, commit: str, mirrors: Path, cache: Path) -> Path:
    """The tree of ``repo`` at ``commit`` under ``cache`` (unpacked once)."""
    target = cache / f"{repo.replace('/', '+')}@{commit[:12]}"
    if (target / ".complete").exists():
        return target
    git = mirrors / repo.replace("/", "+") / "repo"
    if (git / ".git").is_dir():
        git = git / ".git"
    if not git.is_dir():
        sys.exit(f"no mirror of {repo} under {mirrors} (fetch it with the search tool first)")
    target.mkdir(parents=True, exist_ok=True)
    listing = subprocess.run(
        ["git", f"--git-dir={git}", "ls-tree", "-r", "-z", commit],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    wanted: list[tuple[str, str]] = []
    for entry in listing:
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        mode, kind, sha = meta.split()
        path = name.decode("utf-8", errors="replace")
        if kind == b"blob" and mode != b"120000" and path.endswith(SUFFIXES):
            wanted.append((sha.decode(), path))
    # blobs of 4 MiB and more are absent from the snapshots: skipped, never fatal
    proc = subprocess.run(
        ["git", f"--git-dir={git}", "cat-file", "--batch"],
        input="".join(f"{sha}\n" for sha, _ in wanted).encode(),
        capture_output=True,
        check=True,
    )
    out = proc.stdout
    pos = 0
    for _sha, path in wanted:
        eol = out.index(b"\n", pos)
        header = out[pos:eol].split()
        pos = eol + 1
        if len(header) < 3 or header[1] != b"blob":
            continue
        size = int(header[2])
        dest = target / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(out[pos : pos + size])
        pos += size + 1
    (target / ".complete").write_text(commit)
    return target


def _qualnames(tree: ast.AST) -> dict[str, tuple[int, int]]:
    """Dotted name -> (first line incl. decorators, last line) of every def and class."""
    out: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                span = (start, child.end_lineno or child.lineno)
                name = ".".join([*scope, child.name])
                for key in (name, child.name):
                    # overloads and redefinitions: the site spans them all
                    old = out.get(key)
                    out[key] = (min(old[0], span[0]), max(old[1], span[1])) if old else span
                visit(child, [*scope, child.name])
            else:
                visit(child, scope)

    visit(tree, [])
    return out


def locate(row: Row, root: Path) -> None:
    """Fill ``row.start``/``row.end`` from its symbol (a name or a line range)."""
    m = _LINES.match(row.symbol.strip())
    if m:
        row.start = int(m.group(1))
        row.end = int(m.group(2) or m.group(1))
        return
    file = root / row.path
    text = file.read_text(encoding="utf-8", errors="replace")
    sym = row.symbol.strip()
    if row.path.endswith(".py"):
        try:
            names = _qualnames(ast.parse(text))
        except SyntaxError:
            names = {}
        for key in (sym, sym.rsplit(".", 1)[-1]):
            if key in names:
                row.start, row.end = names[key]
                return
    lines = text.splitlines()
    last = sym.rsplit(".", 1)[-1]
    for i, line in enumerate(lines, 1):
        if re.search(rf"\b(def|class)\s+{re.escape(last)}\b", line):
            row.start, row.end = i, min(len(lines), i + 15)
            return
    row.start, row.end = 1, len(lines)


def _overlaps(h: Hotspot, row: Row) -> bool:
    return h.path == row.path and h.start_line <= row.end and h.end_line >= row.start


def measure(
    rows: list[Row], mirrors: Path, cache: Path, jobs: int | None
) -> tuple[dict[str, object], list[Row], list[tuple[Row, list[Hotspot]]]]:
    by_tree: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_tree[r.tree].append(r)
    found: dict[int, bool] = {}
    right: set[tuple[str, str, int, str]] = set()
    wrong: list[tuple[Row, list[Hotspot]]] = []
    wrong_keys: set[tuple[str, str, int, str]] = set()
    seconds = 0.0
    files = 0
    for tree_rows in by_tree.values():
        first = tree_rows[0]
        root = unpack(first.repo, first.commit, mirrors, cache)
        for r in tree_rows:
            locate(r, root)
        t0 = time.perf_counter()
        report = run_audit([root], jobs=jobs)
        seconds += time.perf_counter() - t0
        files += report.files_scanned
        by_path: dict[str, list[Hotspot]] = defaultdict(list)
        for h in report.hotspots:
            by_path[h.path].append(h)
        for r in tree_rows:
            hits = [h for h in by_path.get(r.path, []) if _overlaps(h, r)]
            keys = {(r.tree, h.path, h.start_line, h.kind.value) for h in hits}
            if r.pattern == NEGATIVE:
                if hits:
                    wrong.append((r, hits))
                    wrong_keys.update(keys)
                continue
            found[id(r)] = any(h.kind.value in KINDS[r.pattern] for h in hits)
            right.update(keys)
    per: dict[str, list[int]] = {}
    for r in rows:
        if r.pattern == NEGATIVE:
            continue
        per.setdefault(r.pattern, [0, 0])
        per[r.pattern][1] += 1
        per[r.pattern][0] += int(found[id(r)])
    total_found = sum(v[0] for v in per.values())
    total = sum(v[1] for v in per.values())
    negatives = [r for r in rows if r.pattern == NEGATIVE]
    summary: dict[str, object] = {
        "recall": {p: {"found": f, "sites": n} for p, (f, n) in sorted(per.items())},
        "recall_overall": {"found": total_found, "sites": total},
        "precision": {
            "right": len(right),
            "wrong": len(wrong_keys - right),
            "negative_sites": len(negatives),
            "negative_sites_reported": len(wrong),
        },
        "files_scanned": files,
        "audit_seconds": round(seconds, 2),
    }
    missed = [r for r in rows if r.pattern != NEGATIVE and not found[id(r)]]
    return summary, missed, wrong


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.0f}%" if b else "-"


def print_table(summary: dict[str, object]) -> None:
    recall = summary["recall"]
    assert isinstance(recall, dict)
    print("| pattern | found | sites | recall |")
    print("| --- | ---: | ---: | ---: |")
    for pattern, v in recall.items():
        print(f"| {pattern} | {v['found']} | {v['sites']} | {_pct(v['found'], v['sites'])} |")
    o = summary["recall_overall"]
    assert isinstance(o, dict)
    print(f"| **all** | {o['found']} | {o['sites']} | **{_pct(o['found'], o['sites'])}** |")
    p = summary["precision"]
    assert isinstance(p, dict)
    print(
        f"\nprecision: {p['right']} hotspots on labelled sites, {p['wrong']} on "
        f"false-positive sites: {_pct(p['right'], p['right'] + p['wrong'])}; "
        f"{p['negative_sites_reported']} of {p['negative_sites']} false-positive sites reported"
    )
    print(f"{summary['files_scanned']} files audited in {summary['audit_seconds']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--mirrors", type=Path, default=DEFAULT_MIRRORS)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--misses", action="store_true", help="list missed and wrong sites")
    parser.add_argument("--json", type=Path, help="write the summary as JSON")
    args = parser.parse_args()
    rows = read_index(args.index)
    summary, missed, wrong = measure(rows, args.mirrors, args.cache, args.jobs)
    print_table(summary)
    if args.misses:
        print("\nmissed:")
        for r in missed:
            print(f"  {r.pattern:18} {r.repo}:{r.path}:{r.start}-{r.end} {r.symbol}")
        print("reported on false-positive sites:")
        for r, hits in wrong:
            for h in hits:
                print(f"  {r.repo}:{h.path}:{h.start_line} {h.kind.value} {h.pattern} ({r.symbol})")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
