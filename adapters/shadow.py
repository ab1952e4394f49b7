"""The shadow report of a status-column adapter: what a takeover would do now, read only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .status_reports import RunningRow, ShadowReport

if TYPE_CHECKING:
    from .status_column import StatusColumnAdapter


def shadow_report(
    adapter: StatusColumnAdapter,
    *,
    stuck_after: timedelta | float = timedelta(minutes=15),
    limit: int = 20,
) -> ShadowReport:
    """Report what a takeover would do now. Reads the legacy table only: changes nothing.

    ``stuck_after``: a running row older than this (by ``locked_at``, else
    ``updated_at``) is reported as stuck. ``limit``: how many keys each
    list of the report holds (the totals count every row).
    """
    legacy = adapter.legacy
    stuck_s = (
        stuck_after.total_seconds() if isinstance(stuck_after, timedelta) else float(stuck_after)
    )
    counts = legacy.check()
    t = legacy.table
    state = legacy.state
    key = t.c[legacy.key]
    attempts = legacy.attempts_column()
    retry_at = legacy.col("next_retry_at")
    locked_by = legacy.col("locked_by")
    since_col = legacy.since_column()
    now = datetime.now(UTC)
    max_attempts = adapter.retry.max_attempts
    with legacy.reading() as conn:
        due = legacy.due(now)
        budget = (
            attempts >= max_attempts
            if attempts is not None and max_attempts is not None
            else sa.false()
        )
        would = (
            conn.execute(sa.select(key).where(due, sa.not_(budget)).order_by(key).limit(limit))
            .scalars()
            .all()
        )
        would_total = conn.execute(
            sa.select(sa.func.count()).select_from(t).where(due, sa.not_(budget))
        ).scalar_one()
        past: list[tuple[Any, int]] = []
        if attempts is not None and max_attempts is not None:
            past = [
                (k, int(n or 0))
                for k, n in conn.execute(sa.select(key, attempts).where(due, budget).order_by(key))
            ]
        not_due, next_due = 0, None
        if retry_at is not None:
            pending = state.cond("pending", now)
            assert pending is not None
            waiting = sa.and_(pending, sa.not_(due))
            not_due = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(waiting)
            ).scalar_one()
            if not_due:
                next_due = legacy.as_datetime(
                    conn.execute(sa.select(sa.func.min(retry_at)).where(waiting)).scalar()
                )
        cols = [key, *(c for c in (locked_by, since_col) if c is not None)]
        in_running = state.cond("running", now)
        running = []
        if in_running is not None:
            query = sa.select(*cols).where(in_running)
            query = query.order_by(since_col, key) if since_col is not None else query.order_by(key)
            running = [running_row(adapter, r._mapping, now) for r in conn.execute(query)]
    stuck = [r for r in running if r.age is not None and r.age > stuck_s]
    return ShadowReport(
        table=legacy.qualified_name,
        database=legacy.describe(),
        arrangement=adapter.arrangement,
        promise=adapter.promise,
        counts={label(adapter, v): counts[v] for v in ordered(adapter, counts)},
        would_start=list(would),
        would_start_total=int(would_total),
        not_due=int(not_due),
        next_due=next_due,
        past_budget=past[:limit],
        past_budget_total=len(past),
        max_attempts=max_attempts,
        running=running[:limit],
        running_total=len(running),
        stuck_after=stuck_s,
        stuck=stuck[:limit],
        stuck_total=len(stuck),
        failed_total=sum(n for v, n in counts.items() if state.role_of(v) == "failed"),
        taken_at=now,
        mapping=adapter.mapping,
    )


def ordered(adapter: StatusColumnAdapter, counts: dict[Any, int]) -> list[Any]:
    """Status values in role order: pending, running, done, failed, then the others."""
    declared = adapter.legacy.state.order()
    return sorted(counts, key=lambda v: declared.index(v) if v in declared else len(declared))


def label(adapter: StatusColumnAdapter, value: Any) -> str:
    return adapter.legacy.state.label(value)


def running_row(adapter: StatusColumnAdapter, m: Any, now: datetime) -> RunningRow:
    legacy = adapter.legacy
    since_col = legacy.since_column()
    since = legacy.as_datetime(m[since_col.name]) if since_col is not None else None
    lock = legacy.columns.locked_by
    holder = m[lock] if lock is not None else None
    return RunningRow(
        key=m[legacy.key],
        since=since,
        age=(now - since).total_seconds() if since is not None else None,
        locked_by=holder,
        durable=isinstance(holder, str) and holder.startswith(f"{adapter.name}:"),
    )
