"""The worker registry: one row per running worker process, for ``durable workers list``.

A worker writes its row when it starts and at each of its passes (every few
seconds), and deletes it when it stops. The row is for people: nothing in
claiming, leases or takeover reads it, so a lost write changes no guarantee.
Rows of workers not seen for :data:`FORGET_AFTER_MS` are deleted by the next
worker that starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from .base import Storage, now_ms

FORGET_AFTER_MS = 24 * 3600 * 1000
"""A worker not seen for a day (killed, its host gone) leaves the list."""


def register(storage: Storage, owner: str, host: str, pid: int, queues: Sequence[str]) -> None:
    """Write this worker's row (its queues, start time), forgetting long-dead workers."""
    r = storage.workers
    now = now_ms()
    with storage.transaction() as conn:
        conn.execute(sa.delete(r).where(r.c.last_seen_at < now - FORGET_AFTER_MS))
        conn.execute(sa.delete(r).where(r.c.owner == owner))
        conn.execute(
            sa.insert(r).values(
                owner=owner,
                host=host,
                pid=pid,
                queues=json.dumps(sorted(queues)),
                started_at=now,
                last_seen_at=now,
            )
        )


def seen(storage: Storage, owner: str) -> None:
    """Record that this worker is alive now."""
    r = storage.workers
    with storage.transaction() as conn:
        conn.execute(sa.update(r).where(r.c.owner == owner).values(last_seen_at=now_ms()))


def unregister(storage: Storage, owner: str) -> None:
    """Delete this worker's row (it stops)."""
    r = storage.workers
    with storage.transaction() as conn:
        conn.execute(sa.delete(r).where(r.c.owner == owner))
