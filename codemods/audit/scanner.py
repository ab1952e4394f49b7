"""Find the files, pre-filter them cheaply, scan them in parallel.

Guarantees: a file that cannot be read, decoded or parsed is recorded in
``AuditReport.errors`` and never stops the run; results do not depend on
the number of worker processes (hotspots are sorted at the end).
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from codemods.audit.fixability import apply_decisions
from codemods.audit.model import AuditReport, FileError, Fix, Hotspot, Kind, Risk
from codemods.audit.project import HelperDef, UseSite, link
from codemods.audit.pyscan import broker_hotspot, excerpt, scan_python
from codemods.audit.textscan import (
    STATUS_COLUMNS,
    scan_broker_config,
    scan_crontab,
    scan_odoo_cron,
    scan_sql,
)

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".eggs",
)  # fmt: skip
CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".tf", ".toml", ".ini", ".cfg", ".xml")

# A Python file is parsed only when it may hold a hotspot. Literal ``in``
# tests on bytes first (fast), a regex only to confirm an ambiguous literal.
# Known blind spot: a retry loop with no sleep, no retry-ish name and not the
# `for x in range(n): try:` shape.
_PY_LITERALS = (
    b"sleep", b"retry", b"Retry", b"retries", b"Retries", b"RETRY", b"backoff", b"tenacity",
    b"stamina", b"dead_letter", b"dead-letter", b"DeadLetter", b"deadletter", b"edrive",
    b"dlq", b"DLQ", b"cron", b"schedul", b"BaseCommand", b"on_failure", b"failed_",
    b"stuck", b"stale", b"requeue", b"dequeue", b"retrier", b"ir.cron",
)  # fmt: skip
_PY_FAILED = re.compile(rb"Failed[A-Z_]")
_PY_COUNTER = (  # each starts with a literal, so the regex engine scans fast
    re.compile(rb"attempt\w* *[+-]= *1"),
    re.compile(rb"tries\w* *[+-]= *1"),
    re.compile(rb"for \w*(?:attempt|tries)\w* in"),
    re.compile(rb"while \w*(?:attempt|tries)"),
)
_PY_RANGE_TRY = re.compile(rb"for \w+ in range\([^)\n]*\):[ \t]*\r?\n[ \t]+try:")
#: a call tried once more in its own except handler (codemods/_retry_once.py)
_PY_RETRY_ONCE = re.compile(
    rb"try:[ \t]*\r?\n[ \t]+(?:return |\w+ = |await )*([\w.]+)\(.*\r?\n"
    rb"[ \t]*except\b[^\n]*:[ \t]*\r?\n(?:[^\n]*\n){0,3}?[ \t]+(?:return |\w+ = |await )*\1\("
)
_PY_STATUS = (
    b"tatus", b"state =", b"state=", b"state:", b'"state"', b"'state'", b"state varchar",
    b"state text", b"STATE",
)  # fmt: skip
_PY_STATUS_MORE = (
    b"locked", b"_lock", b"lock_", b"lease_", b"_lease", b"leased", b"heartbeat", b"last_error",
    b"run_at", b"attempts", b"retry_count", b"stale", b"stuck", b"cutoff", b"timedelta", b"__lt",
    b"SKIP LOCKED", b"skip_locked", b"for_update", b"traceback", b"worker", b"queue",
    b"execute_at", b"enqueue", b"dequeue", b"retries", b"Job",
)  # fmt: skip


def worth_parsing(data: bytes) -> bool:
    """The cheap text pre-filter: False when the file cannot hold a hotspot we detect."""
    if any(lit in data for lit in _PY_LITERALS):
        return True
    if b"Job" in data and (b"Model" in data or b"Column" in data):
        return True  # a job model needs no status column (a row is pending until deleted)
    if b"Failed" in data and _PY_FAILED.search(data):
        return True
    if (b"attempt" in data or b"tries" in data) and any(r.search(data) for r in _PY_COUNTER):
        return True
    if b"try:" in data and b"range(" in data and _PY_RANGE_TRY.search(data):
        return True
    if b"try:" in data and b"except" in data and _PY_RETRY_ONCE.search(data):
        return True
    return any(lit in data for lit in _PY_STATUS) and any(lit in data for lit in _PY_STATUS_MORE)


_SQL_PREFILTER = re.compile(rb"(?i)create\s+table|update|insert\s+into")
_CONFIG_LITERALS = (b"x-dead-letter", b"edrive", b"deadLetterTargetArn", b"dead_letter_queue")
CHUNK = 48


@dataclass
class FileResult:
    """What one chunk of files produced (picklable, sent back from workers)."""

    files: int = 0
    parsed: int = 0
    lines: int = 0
    hotspots: list[Hotspot] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    helpers: list[HelperDef] = field(default_factory=list)
    uses: list[UseSite] = field(default_factory=list)


def _is_crontab(path: Path) -> bool:
    name = path.name.lower()
    return (
        name in ("crontab", "cronfile")
        or name.endswith((".cron", ".crontab"))
        or (path.parent.name in ("cron.d", "crontabs"))
    )


def discover(paths: Sequence[Path], excludes: Sequence[str] = ()) -> list[tuple[Path, str]]:
    """(absolute path, report path) of every file the audit reads, sorted.

    Report paths are relative to the argument they were found under (or the
    file name when a file is given), with ``/`` separators.
    """
    default = frozenset(DEFAULT_EXCLUDES)
    patterns = list(excludes)

    def excluded(rel: str, name: str) -> bool:
        return name in default or any(
            fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns
        )

    found: list[tuple[Path, str]] = []
    for root in paths:
        root = Path(root)
        if root.is_file():
            found.append((root, root.name))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            dirnames[:] = sorted(d for d in dirnames if not excluded(rel_dir + d, d))
            for name in sorted(filenames):
                p = Path(dirpath, name)
                if excluded(rel_dir + name, name):
                    continue
                if (
                    name.endswith((".py", ".pyw", ".sql"))
                    or name.endswith(CONFIG_SUFFIXES)
                    or (_is_crontab(p))
                ):
                    found.append((p, rel_dir + name))
    return found


def _text_hotspots(rel: str, text: str, is_crontab: bool, is_sql: bool) -> list[Hotspot]:
    lines = text.splitlines()
    out: list[Hotspot] = []
    if is_crontab:
        for f in scan_crontab(text):
            out.append(
                Hotspot(Kind.CRON_SWEEPER, "crontab entry", rel, f.start_line, f.end_line, None,
                        excerpt(lines, f.start_line, f.end_line), Risk.MEDIUM,
                        f"cron runs `{f.name[:60]}` on a timer: time-based recovery can run "
                        "a job twice", Fix("adapter", "cron-sweeper", False,
                                           "scheduled durable workflow, one run per tick"))
            )  # fmt: skip
        return out
    if is_sql:
        for f in scan_sql(text):
            ex = excerpt(lines, f.start_line, f.end_line)
            if f.what == "status-table":
                book = ", ".join(c for c in f.detail if c not in STATUS_COLUMNS)
                out.append(Hotspot(Kind.STATUS_TABLE, "SQL CREATE TABLE", rel, f.start_line,
                                   f.end_line, None, ex, Risk.MEDIUM,
                                   f"job table `{f.name}` with a status column and retry "
                                   f"bookkeeping ({book})",
                                   Fix("adapter", "status-column", False,
                                       "each row becomes a durable workflow")))  # fmt: skip
            elif f.what == "dead-letter-table":
                out.append(Hotspot(Kind.DEAD_LETTER, "SQL CREATE TABLE", rel, f.start_line,
                                   f.end_line, None, ex, Risk.LOW,
                                   f"failed jobs parked in `{f.name}`: retried by hand",
                                   Fix("adapter", "dead-letter", False,
                                       "import rows as failed workflows")))  # fmt: skip
            elif f.what in ("claim-sql", "retry-sql"):
                claim = f.what == "claim-sql"
                pattern = "SQL job claim" if claim else "SQL job retry"
                out.append(Hotspot(Kind.STATUS_POLLER, pattern, rel, f.start_line, f.end_line,
                                   None, ex,
                                   Risk.LOW if claim else Risk.MEDIUM,
                                   "claims job rows with SKIP LOCKED/NOWAIT" if claim else
                                   "records a retry on the job row (status back, attempts + 1)",
                                   Fix("adapter", "status-column", False,
                                       "rows become durable workflows; workers use leases"),
                                   why=("Job state lives in a status column that this SQL moves "
                                        "by hand; the status-column adapter runs each row as a "
                                        "durable workflow.",)))  # fmt: skip
            elif f.what == "sweeper-sql" and f.name == "DELETE":
                out.append(Hotspot(Kind.CRON_SWEEPER, "SQL DELETE by age", rel, f.start_line,
                                   f.end_line, None, ex, Risk.LOW,
                                   "deletes rows by age: a clean-up run on a timer",
                                   Fix("adapter", "cron-sweeper", False,
                                       "scheduled durable workflow")))  # fmt: skip
            elif f.what == "sweeper-sql" and f.name == "SELECT":
                out.append(Hotspot(Kind.CRON_SWEEPER, "SQL select of stalled rows", rel,
                                   f.start_line, f.end_line, None, ex, Risk.MEDIUM,
                                   "finds stalled jobs by age or heartbeat for a sweeper",
                                   Fix("adapter", "cron-sweeper", False,
                                       "leases recover stalled work")))  # fmt: skip
            elif f.what == "sweeper-sql":
                risk = Risk.MEDIUM if f.guarded else Risk.HIGH
                why = (
                    "requeues rows by age under a lock: recovery by time guesses"
                    if f.guarded
                    else "requeues rows by age with no lock or lease: can run a job twice"
                )
                out.append(Hotspot(Kind.CRON_SWEEPER, "SQL UPDATE of status by age", rel,
                                   f.start_line, f.end_line, None, ex, risk, why,
                                   Fix("adapter", "cron-sweeper", False,
                                       "scheduled durable workflow")))  # fmt: skip
        return out
    if rel.endswith(".xml"):
        for f in scan_odoo_cron(text):
            out.append(
                Hotspot(Kind.CRON_SWEEPER, "Odoo ir.cron record", rel, f.start_line, f.end_line,
                        None, excerpt(lines, f.start_line, f.end_line), Risk.MEDIUM,
                        f"Odoo cron runs `{f.name}` on a timer: time-based recovery can run "
                        "a job twice", Fix("adapter", "cron-sweeper", False,
                                           "scheduled durable workflow, one run per tick"))
            )  # fmt: skip
    return out + [broker_hotspot(rel, lines, f) for f in scan_broker_config(text)]


def scan_file(path: Path, rel: str) -> FileResult:
    """Scan one file; never raises for a bad file (the error is in the result)."""
    res = FileResult(files=1)
    try:
        data = path.read_bytes()
    except OSError as exc:
        res.errors.append(FileError(rel, None, f"cannot read: {exc.strerror or exc}"))
        return res
    name = path.name
    try:
        if name.endswith((".py", ".pyw")):
            res.lines = data.count(b"\n") + 1
            if not worth_parsing(data):
                return res
            scanned = scan_python(rel, data)
            res.parsed = 1
            res.hotspots = apply_decisions(scanned.hotspots, scanned.text, rel, scanned.tree)
            res.helpers = scanned.helpers
            res.uses = scanned.uses
        else:
            res.lines = data.count(b"\n") + 1
            sql = name.endswith(".sql")
            cron = _is_crontab(path)
            if sql:
                keep = _SQL_PREFILTER.search(data) is not None
            else:
                keep = cron or any(lit in data for lit in _CONFIG_LITERALS) or b"ir.cron" in data
            if not keep:
                return res
            res.parsed = 1
            res.hotspots = [
                h if h.why else replace(h, why=(h.reason[:1].upper() + h.reason[1:] + ".",))
                for h in _text_hotspots(rel, data.decode("utf-8", errors="replace"), cron, sql)
            ]
    except SyntaxError as exc:
        res.parsed = 0
        res.errors.append(FileError(rel, exc.lineno, f"syntax error: {exc.msg}"))
    except (ValueError, RecursionError, MemoryError) as exc:
        res.parsed = 0
        res.errors.append(FileError(rel, None, f"cannot parse: {type(exc).__name__}: {exc}"))
    return res


def _scan_chunk(items: list[tuple[str, str]]) -> FileResult:
    total = FileResult()
    for abs_path, rel in items:
        r = scan_file(Path(abs_path), rel)
        total.files += r.files
        total.parsed += r.parsed
        total.lines += r.lines
        total.hotspots += r.hotspots
        total.errors += r.errors
        total.helpers += r.helpers
        total.uses += r.uses
    return total


def _chunks(items: list[tuple[str, str]], size: int) -> Iterable[list[tuple[str, str]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_audit(
    paths: Sequence[str | Path],
    *,
    jobs: int | None = None,
    excludes: Sequence[str] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Audit files and folders; returns the report with hotspots worst first.

    ``jobs`` is the number of worker processes (default: all cores; 1 scans
    in this process). ``on_progress(done, total)`` is called as files finish.
    """
    started = time.perf_counter()
    roots = [Path(p) for p in paths]
    files = discover(roots, excludes)
    report = AuditReport(root=", ".join(str(p) for p in roots))
    items = [(str(p), rel) for p, rel in files]
    total = len(items)
    jobs = jobs or os.cpu_count() or 1
    done = 0
    if on_progress:
        on_progress(0, total)

    helpers: list[HelperDef] = []
    uses: list[UseSite] = []

    def merge(r: FileResult) -> None:
        nonlocal done
        helpers.extend(r.helpers)
        uses.extend(r.uses)
        report.files_scanned += r.files
        report.files_parsed += r.parsed
        report.lines_scanned += r.lines
        report.hotspots += r.hotspots
        report.errors += r.errors
        done += r.files
        if on_progress:
            on_progress(done, total)

    if jobs <= 1 or total < 2 * CHUNK:
        for chunk in _chunks(items, 8):
            merge(_scan_chunk(chunk))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_scan_chunk, c) for c in _chunks(items, CHUNK)]
            for fut in as_completed(futures):
                merge(fut.result())
    if helpers and uses:
        seen = {(h.path, h.start_line) for h in report.hotspots}
        report.hotspots += link(helpers, uses, seen, {rel: path for path, rel in items})
    report.seconds = time.perf_counter() - started
    report.sort()
    return report
