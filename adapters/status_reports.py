"""What the status-column adapter reports: a shadow run, a poll, a running row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .legacy_table import _fmt_age, _keys, json_key

# -- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningRow:
    """A row in the running state: since when, by whom."""

    key: Any
    since: datetime | None
    age: float | None
    """Seconds since ``since`` at the time of the report (None when unknown)."""
    locked_by: str | None
    durable: bool
    """Whether the row is run by a workflow of this adapter (its id is in locked_by)."""


@dataclass(frozen=True)
class ShadowReport:
    """What a takeover would do to a legacy table now. Producing it changed nothing."""

    table: str
    database: str
    arrangement: str
    promise: str
    counts: dict[str, int]
    would_start: list[Any]
    """Keys of the pending, due rows a takeover starts (first ``limit``)."""
    would_start_total: int
    not_due: int
    """Pending rows whose next_retry_at is in the future."""
    next_due: datetime | None
    past_budget: list[tuple[Any, int]]
    """(key, attempts) of pending rows whose attempts already reach the retry budget."""
    past_budget_total: int
    max_attempts: int | None
    running: list[RunningRow]
    """Rows in the running state, oldest first (first ``limit``)."""
    running_total: int
    stuck_after: float
    stuck: list[RunningRow]
    """Running rows older than ``stuck_after`` seconds (first ``limit``)."""
    stuck_total: int
    failed_total: int
    taken_at: datetime
    mapping: str = ""
    """The mapping in one line (table, key, state, bookkeeping columns)."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""

        def running(rows: list[RunningRow]) -> list[dict[str, Any]]:
            return [
                {
                    "key": json_key(r.key),
                    "since": r.since.isoformat() if r.since else None,
                    "age_seconds": r.age,
                    "locked_by": r.locked_by,
                    "durable": r.durable,
                }
                for r in rows
            ]

        return {
            "table": self.table,
            "database": self.database,
            "arrangement": self.arrangement,
            "promise": self.promise,
            "counts": dict(self.counts),
            "would_start": [json_key(k) for k in self.would_start],
            "would_start_total": self.would_start_total,
            "not_due": self.not_due,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "past_budget": [[json_key(k), n] for k, n in self.past_budget],
            "past_budget_total": self.past_budget_total,
            "max_attempts": self.max_attempts,
            "running": running(self.running),
            "running_total": self.running_total,
            "stuck_after_seconds": self.stuck_after,
            "stuck": running(self.stuck),
            "stuck_total": self.stuck_total,
            "failed_total": self.failed_total,
            "taken_at": self.taken_at.isoformat(),
            "mapping": self.mapping,
        }

    def __str__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "no rows"
        lines = [
            f"shadow report: table {self.table} ({self.database}); nothing was changed",
            *([f"  mapping: {self.mapping}"] if self.mapping else []),
            f"  rows by status: {counts}",
            f"  would start now: {self.would_start_total} row(s)"
            + (f": {_keys(self.would_start)}" if self.would_start else ""),
        ]
        if self.not_due:
            due = self.next_due.isoformat(timespec="seconds") if self.next_due else "?"
            lines.append(f"  waiting for next_retry_at: {self.not_due} row(s), first due {due}")
        if self.past_budget:
            listed = ", ".join(f"{k} ({n} attempts)" for k, n in self.past_budget[:10])
            lines.append(
                f"  past their retry budget of {self.max_attempts} attempts: "
                f"{self.past_budget_total} pending row(s): {listed}; a takeover marks them "
                "failed without running them"
            )
        durable = sum(1 for r in self.running if r.durable)
        lines.append(
            f"  running: {self.running_total} row(s)"
            + (f", {durable} of them run by durable workflows" if durable else "")
        )
        if self.stuck_total:
            lines.append(
                f"  stuck in running for more than {_fmt_age(self.stuck_after)}: "
                f"{self.stuck_total} row(s)"
            )
            for r in self.stuck:
                who = f" (locked by {r.locked_by})" if r.locked_by else ""
                age = _fmt_age(r.age) if r.age is not None else "unknown time"
                lines.append(f"    {r.key}: {age}{who}")
        elif self.running_total and all(r.age is None for r in self.running):
            lines.append("    (no locked_at or updated_at column: how long they run is unknown)")
        if self.failed_total:
            lines.append(f"  failed: {self.failed_total} row(s) (a takeover leaves them alone)")
        lines.append(f"  arrangement: {self.arrangement}")
        lines.append(f"  write-back promise: {self.promise}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ClaimReport:
    """What one poll of the legacy table did."""

    started: list[str]
    """Workflow ids enqueued by this poll (one per row)."""
    restarted: list[str]
    """Among ``started``: new runs of rows whose earlier workflow had ended (re-queued rows)."""
    already_running: list[str]
    """Due rows whose workflow is enqueued or running already (nothing was started)."""

    def __str__(self) -> str:
        text = f"claimed {len(self.started)} row(s)"
        if self.restarted:
            text += f" ({len(self.restarted)} re-queued after their workflow ended)"
        if self.already_running:
            text += f"; {len(self.already_running)} already have a live workflow"
        return text
