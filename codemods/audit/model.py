"""The audit's data model: hotspots, fixes, parse errors and the report.

Everything here is a plain, picklable dataclass so that worker processes can
send results back, and every field maps one to one onto the JSON report
(schema ``schemas/audit-report.v2.schema.json``).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Risk(StrEnum):
    """How dangerous a hotspot is; ordered ``low < medium < high``."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 1, "medium": 2, "high": 3}[self.value]


class Kind(StrEnum):
    """What was found."""

    RETRY_LOOP = "retry-loop"
    RETRY_DECORATOR = "retry-decorator"
    CELERY_RETRY = "celery-retry"
    STATUS_TABLE = "status-table"
    STATUS_POLLER = "status-poller"
    CRON_SWEEPER = "cron-sweeper"
    DEAD_LETTER = "dead-letter"


KIND_TITLES: dict[Kind, str] = {
    Kind.RETRY_LOOP: "Retry loop",
    Kind.RETRY_DECORATOR: "Retry decorator",
    Kind.CELERY_RETRY: "Celery task retry",
    Kind.STATUS_TABLE: "Status-column job table",
    Kind.STATUS_POLLER: "Job-table polling loop",
    Kind.CRON_SWEEPER: "Cron sweeper",
    Kind.DEAD_LETTER: "Dead letter",
}


def fingerprint(path: str, kind: str, function: str | None, code: str, occurrence: int = 0) -> str:
    """16 hex digits from the file, kind, function and code (whitespace folded), no lines."""
    norm = " ".join(code.split())
    raw = f"{path}\0{kind}\0{function}\0{norm}"
    if occurrence:
        raw += f"\0{occurrence}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Fix:
    """What replaces a hotspot.

    ``kind`` is one of ``codemod`` (``name`` is a ``durable codemod --select``
    selector), ``adapter`` (``name`` is an adapter), ``decorator``
    (``@transaction`` or ``@step``, applied by hand) or ``manual``.
    ``automatic`` is true only when a codemod is expected to rewrite the site.
    """

    kind: str
    name: str
    automatic: bool
    note: str = ""

    def label(self) -> str:
        auto = " (automatic)" if self.automatic else ""
        return f"{self.kind} {self.name}{auto}"


@dataclass(frozen=True)
class Hotspot:
    """One place in the code with hand-rolled reliability logic.

    Lines are 1-based and inclusive, columns 0-based; ``path`` is relative to the scan root,
    with ``/`` separators. ``removable_lines`` counts the lines of retry
    code that the fix deletes (0 when the fix is an adapter).
    """

    kind: Kind
    pattern: str
    path: str
    start_line: int
    end_line: int
    function: str | None
    excerpt: str
    risk: Risk
    reason: str
    fix: Fix
    refusal: str | None = None
    side_effects: tuple[str, ...] = ()
    removable_lines: int = 0
    #: 0-based columns of the site's first and last line (``end_col`` exclusive)
    start_col: int = 0
    end_col: int = 0
    #: the project's own retry helper, decorator or facade this use site goes through
    group: str | None = None
    #: why the site got its risk level, one plain sentence each
    why: tuple[str, ...] = ()
    #: other places merged into this finding (``path:line``): nested loops, the same table
    also_at: tuple[str, ...] = ()
    #: 0 for the first of identical sites (same file, kind, function and code), then 1, 2...
    occurrence: int = 0

    @property
    def fixable(self) -> bool:
        return self.fix.automatic

    @property
    def id(self) -> str:
        """The fingerprint: a hash of the file, kind, function and code (whitespace folded).

        Line numbers are not part of it, so it survives edits elsewhere in the file;
        identical sites in one file differ by ``occurrence``.
        """
        return fingerprint(self.path, self.kind.value, self.function, self.excerpt, self.occurrence)

    @property
    def location(self) -> str:
        """``path:line`` or ``path:start-end``."""
        end = f"-{self.end_line}" if self.end_line != self.start_line else ""
        return f"{self.path}:{self.start_line}{end}"

    def sort_key(self) -> tuple[int, str, str, int]:
        return (-self.risk.rank, self.path, self.kind.value, self.start_line)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "pattern": self.pattern,
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "function": self.function,
            "excerpt": self.excerpt,
            "risk": self.risk.value,
            "reason": self.reason,
            "fix": asdict(self.fix),
            "fixable": self.fixable,
            "refusal": self.refusal,
            "side_effects": list(self.side_effects),
            "removable_lines": self.removable_lines,
            "start_col": self.start_col,
            "end_col": self.end_col,
            "group": self.group,
            "why": list(self.why),
            "also_at": list(self.also_at),
        }


@dataclass(frozen=True)
class FileError:
    """A file that could not be read or parsed; the run goes on without it."""

    path: str
    line: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message}


@dataclass
class AuditReport:
    """The result of one audit run; ``hotspots`` are sorted worst first."""

    root: str
    files_scanned: int = 0
    files_parsed: int = 0
    lines_scanned: int = 0
    seconds: float = 0.0
    hotspots: list[Hotspot] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    #: the folder hotspot paths are relative to (set by :func:`codemods.audit.pipeline.audit`)
    base: str = ""
    #: the ``pyproject.toml`` whose ``[tool.durable.audit]`` applied, if any
    config_file: str | None = None
    #: hotspots silenced by a ``# durable: ignore`` comment (not in ``hotspots``)
    suppressed: list[Hotspot] = field(default_factory=list)
    #: hotspots found in the baseline file (not in ``hotspots``)
    known: list[Hotspot] = field(default_factory=list)
    #: baseline entries no longer found (fixed or changed since the baseline was written)
    baseline_gone: int = 0
    #: the baseline file used, if any
    baseline_file: str | None = None
    #: findings folded into another one by :func:`codemods.audit.triage.dedupe`
    merged: int = 0

    def sort(self) -> None:
        self.hotspots.sort(key=Hotspot.sort_key)
        self.errors.sort(key=lambda e: (e.path, e.line or 0))

    def count_by(self, risk: Risk | None = None, kind: Kind | None = None) -> int:
        return sum(
            1
            for h in self.hotspots
            if (risk is None or h.risk is risk) and (kind is None or h.kind is kind)
        )

    def worst_risk(self) -> Risk | None:
        return max((h.risk for h in self.hotspots), key=lambda r: r.rank, default=None)

    def summary(self) -> dict[str, Any]:
        """Totals for every report format (same keys as the JSON ``summary``)."""
        fixable = [h for h in self.hotspots if h.fixable]
        return {
            "files_scanned": self.files_scanned,
            "files_parsed": self.files_parsed,
            "lines_scanned": self.lines_scanned,
            "files_failed": len(self.errors),
            "hotspots": len(self.hotspots),
            "by_risk": {r.value: self.count_by(risk=r) for r in Risk},
            "by_kind": {k.value: self.count_by(kind=k) for k in Kind},
            "by_kind_and_risk": {
                k.value: {r.value: self.count_by(risk=r, kind=k) for r in Risk} for k in Kind
            },
            "fixable_by_codemod": len(fixable),
            "retry_lines_removable": sum(h.removable_lines for h in fixable),
            "retry_lines_total": sum(
                h.end_line - h.start_line + 1
                for h in self.hotspots
                if h.kind in (Kind.RETRY_LOOP, Kind.RETRY_DECORATOR, Kind.CELERY_RETRY)
            ),
            "seconds": round(self.seconds, 3),
            "merged": self.merged,
            "suppressed": len(self.suppressed),
            "in_baseline": len(self.known),
            "baseline_gone": self.baseline_gone,
        }
