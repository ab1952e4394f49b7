"""Retention: the SQL that deletes finished workflows and everything that belongs to them.

A workflow is prunable when it has *finished* (``succeeded``, ``failed`` or
``cancelled``; never ``enqueued`` or ``pending``) and both its creation and its
last change (its end) are older than the cutoff. The existing
``(status, created_at)`` index finds the candidates (``updated_at >= created_at``
always, so the creation time bounds the scan), a batch at a time, oldest first.

A workflow whose id is a child id (``"<parent id>:<n>"``, what ``enqueue`` and
``start`` inside a workflow produce) is kept while that parent is still
``pending`` or ``enqueued``: a replay of the parent enqueues the same child id
again, which must keep inserting nothing.

With a workflow go its steps, the messages addressed to it and its events
(dead letters are ``failed`` workflows: they go with their events). Each batch
is one short transaction; on PostgreSQL it first takes a transaction-level
advisory *try*-lock, so at most one process prunes at a time and nobody ever
waits for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from .base import Storage

FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
"""The only statuses retention ever deletes."""

PRUNE_LOCK_KEY = 0x64757261626C6570  # "durablep": one pruning batch at a time (PostgreSQL)


@dataclass
class PruneCounts:
    """Rows deleted (or, for a dry run, that would be deleted)."""

    workflows: int = 0
    steps: int = 0
    events: int = 0
    messages: int = 0

    def add(self, other: PruneCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _prunable(storage: Storage, status: str, cutoff_ms: int) -> list[sa.ColumnElement[bool]]:
    """The conditions of a prunable workflow row ``w`` of ``status`` older than ``cutoff_ms``."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"only finished workflows are pruned, not {status!r}")
    w = storage.workflows
    parent = storage.workflows.alias("parent")
    stripped = sa.func.rtrim(w.c.workflow_id, "0123456789")
    parent_id = sa.case(
        (
            sa.and_(stripped != w.c.workflow_id, stripped.like("%:")),
            sa.func.substr(stripped, 1, sa.func.length(stripped) - 1),
        ),
        else_=sa.null(),
    )
    live_parent = (
        sa.select(sa.literal(1))
        .where(parent.c.workflow_id == parent_id, parent.c.status.in_(["pending", "enqueued"]))
        .exists()
    )
    return [
        w.c.status == status,
        w.c.created_at < cutoff_ms,
        w.c.updated_at < cutoff_ms,
        ~live_parent,
    ]


def count_prunable(storage: Storage, status: str, cutoff_ms: int) -> PruneCounts:
    """How many rows :func:`prune_batch` would delete for ``status`` and ``cutoff_ms``."""
    w, s, e, m = storage.workflows, storage.steps, storage.events, storage.messages
    where = _prunable(storage, status, cutoff_ms)
    counts = PruneCounts()
    with storage._translate_errors(), storage.read_engine.connect() as conn:
        counts.workflows = conn.execute(sa.select(sa.func.count()).where(*where)).scalar_one()
        if counts.workflows:
            counts.steps = conn.execute(
                sa.select(sa.func.count())
                .select_from(s.join(w, s.c.wf_key == w.c.wf_key))
                .where(*where)
            ).scalar_one()
            for table, attr in ((e, "events"), (m, "messages")):
                joined = table.join(w, table.c.workflow_id == w.c.workflow_id)
                value = conn.execute(
                    sa.select(sa.func.count()).select_from(joined).where(*where)
                ).scalar_one()
                setattr(counts, attr, value)
    return counts


@contextlib.contextmanager
def _writer(storage: Storage) -> Iterator[sa.Connection]:
    """A write transaction; on SQLite this process's hot writers queue behind it on their
    Python lock (not on SQLite's busy handler, whose sleeps grow to 100 ms)."""
    lock: threading.Lock | None = getattr(storage, "_hot_write_lock", None)
    with lock if lock is not None else contextlib.nullcontext(), storage.transaction() as conn:
        yield conn


def prune_batch(
    storage: Storage,
    status: str,
    cutoff_ms: int,
    limit: int,
    *,
    exclusive: bool = False,
) -> PruneCounts | None:
    """Delete up to ``limit`` prunable workflows of ``status`` (oldest first) with their
    steps, events and messages, in one transaction.

    ``exclusive`` (a worker's background pruning): on PostgreSQL take the pruning
    try-lock first and return ``None`` at once if another process holds it.
    """
    w, s, e, m = storage.workflows, storage.steps, storage.events, storage.messages
    counts = PruneCounts()
    candidates = (
        sa.select(w.c.wf_key)
        .where(*_prunable(storage, status, cutoff_ms))
        .order_by(w.c.created_at)
        .limit(limit)
        .with_for_update(of=w, skip_locked=True)
    )
    with _writer(storage) as conn:
        if exclusive and storage.backend == "PostgreSQL":
            got = conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(PRUNE_LOCK_KEY)))
            if not got.scalar():
                return None
        keys = list(conn.execute(candidates).scalars())
        if not keys:
            return counts
        gone = conn.execute(
            sa.delete(w)
            .where(w.c.wf_key.in_(keys), w.c.status == status)
            .returning(w.c.wf_key, w.c.workflow_id)
        ).all()
        if not gone:
            return counts
        ids = [row.workflow_id for row in gone]
        counts.workflows = len(gone)
        counts.steps = _rowcount(conn, sa.delete(s).where(s.c.wf_key.in_([r.wf_key for r in gone])))
        counts.events = _rowcount(conn, sa.delete(e).where(e.c.workflow_id.in_(ids)))
        counts.messages = _rowcount(conn, sa.delete(m).where(m.c.workflow_id.in_(ids)))
    return counts


def _rowcount(conn: sa.Connection, stmt: Any) -> int:
    return int(conn.execute(stmt).rowcount)


VACUUM_AFTER = 1000
"""Workflows pruned since the last ``VACUUM`` after which a pruner vacuums again
(PostgreSQL with autovacuum off only)."""


def autovacuum_off(storage: Storage) -> bool:
    """Whether the server's autovacuum is off (PostgreSQL; ``False`` elsewhere)."""
    if storage.backend != "PostgreSQL":
        return False
    with storage._translate_errors(), storage.read_engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.current_setting("autovacuum"))).scalar()
    return str(value).lower() in ("off", "false", "0")


def vacuum(storage: Storage) -> None:
    """Plain ``VACUUM`` of the tables pruning deletes from (PostgreSQL), so their space is
    reused: it takes no lock that blocks reads or writes. For servers whose autovacuum
    is off, where nothing else would."""
    if storage.backend != "PostgreSQL":
        return
    tables = (storage.workflows, storage.steps, storage.events, storage.messages)
    with storage._translate_errors(), storage.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM: no transaction
        quote = conn.dialect.identifier_preparer.format_table
        for table in tables:  # our own table names, quoted by the dialect
            conn.exec_driver_sql(f"VACUUM {quote(table)}")
