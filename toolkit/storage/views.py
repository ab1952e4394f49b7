"""What an operator sees: display statuses, workers and waiting work, read from the tables.

The stored statuses (``enqueued``, ``pending``, ``succeeded``, ``failed``,
``cancelled``) say where a workflow is in its life; ``pending`` alone covers a
workflow a live process runs, one nobody runs any more, and one asleep in a
durable sleep. The *display status* tells them apart, from the stored row and
the workflow's last recorded step, at the time of the query:

* ``waiting``: pending, and no owner or an expired lease: waiting for a worker
  (or ``recover()``) that has its code to take it over;
* ``sleeping``: pending with a live lease, and its last step is a durable
  sleep (``toolkit.sleep``) whose wake-up time is still ahead;
* ``retrying``: pending with a live lease, and its last step failed an
  attempt and waits for the next one;
* ``running``: any other pending workflow with a live lease;
* otherwise the stored status (``enqueued``, ``succeeded``, ``failed``, ``cancelled``).

Everything here only reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..records import STATUSES, WorkflowRecord, from_ms
from .base import Storage, now_ms

SLEEP_STEP = "toolkit.sleep"
DISPLAY_STATUSES = (
    "enqueued",
    "running",
    "sleeping",
    "retrying",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
)
"""Every display status, in the order of a workflow's life."""
FILTER_STATUSES = (*DISPLAY_STATUSES, "pending")
"""What ``--status`` accepts: a display status, or ``pending`` (running, sleeping,
retrying and waiting together: the stored status)."""
DERIVED = ("running", "sleeping", "retrying", "waiting")
"""The display statuses of a stored ``pending`` workflow."""


@dataclass(frozen=True)
class CurrentStep:
    """The last recorded step of a workflow."""

    number: int
    name: str
    status: str
    wake_at: datetime | None
    """A durable sleep's wake-up time, or a retrying step's next attempt."""


@dataclass(frozen=True)
class WorkflowView:
    """A workflow as an operator sees it: its record, display status and last step."""

    record: WorkflowRecord
    status: str
    step: CurrentStep | None


def _columns(storage: Storage, now: int) -> tuple[sa.Select[Any], sa.ColumnElement[str]]:
    """The workflows joined to their last step, and the display status expression."""
    w, s = storage.workflows, storage.steps
    last = sa.select(sa.func.max(s.c.step_number)).where(s.c.wf_key == w.c.wf_key)
    step = s.alias("last_step")
    wake = sa.case(
        (step.c.name == SLEEP_STEP, sa.cast(step.c.output, sa.BigInteger)),
        else_=step.c.next_attempt_at,
    )
    live = sa.and_(w.c.owner.is_not(None), w.c.lease_expires_at > now)
    display = sa.case(
        (w.c.status != "pending", w.c.status),
        (sa.not_(live), "waiting"),
        (sa.and_(step.c.name == SLEEP_STEP, step.c.status == "succeeded", wake > now), "sleeping"),
        (step.c.status == "retrying", "retrying"),
        else_="running",
    ).label("display_status")
    query = sa.select(
        w,
        step.c.step_number.label("step_number"),
        step.c.name.label("step_name"),
        step.c.status.label("step_status"),
        wake.label("step_wake"),
        display,
    ).select_from(
        w.outerjoin(
            step,
            sa.and_(step.c.wf_key == w.c.wf_key, step.c.step_number == last.scalar_subquery()),
        )
    )
    return query, display


def _view(storage: Storage, row: sa.Row[Any]) -> WorkflowView:
    record = storage._workflow_record(row)
    step = None
    if row.step_number is not None:
        step = CurrentStep(row.step_number, row.step_name, row.step_status, from_ms(row.step_wake))
    return WorkflowView(record, row.display_status, step)


def list_views(
    storage: Storage,
    *,
    status: str | None = None,
    name: str | None = None,
    limit: int | None = None,
) -> list[WorkflowView]:
    """Workflows, newest first, with their display status; ``status`` is one of
    :data:`FILTER_STATUSES`."""
    if status is not None and status not in FILTER_STATUSES:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(FILTER_STATUSES)}")
    w = storage.workflows
    query, display = _columns(storage, now_ms())
    if status in STATUSES:
        query = query.where(w.c.status == status)
    elif status is not None:
        query = query.where(w.c.status == "pending", display == status)
    if name is not None:
        query = query.where(w.c.name == name)
    query = query.order_by(w.c.created_at.desc(), w.c.workflow_id.desc())
    if limit is not None:
        query = query.limit(limit)
    with storage._translate_errors(), storage.read_engine.connect() as conn:
        return [_view(storage, row) for row in conn.execute(query)]


def get_view(storage: Storage, workflow_id: str) -> WorkflowView | None:
    """One workflow with its display status, or ``None``."""
    w = storage.workflows
    query, _ = _columns(storage, now_ms())
    with storage._translate_errors(), storage.read_engine.connect() as conn:
        row = conn.execute(query.where(w.c.workflow_id == workflow_id)).first()
    return _view(storage, row) if row is not None else None


@dataclass(frozen=True)
class WorkerView:
    """A worker process, as the worker registry and the leases it holds show it."""

    owner: str
    """Its owner id ``host:pid:random``."""
    host: str
    pid: int | None
    queues: tuple[str, ...]
    """The queues it serves (for a process not in the registry: of the workflows it holds)."""
    held: int
    """The pending workflows it holds."""
    lease_expires_at: datetime | None
    """The latest lease it renewed on a workflow it holds (``None`` when it holds none)."""
    last_heartbeat: datetime
    """When it last showed it was alive: its last pass, or its latest lease minus the lease."""
    alive: bool
    """Seen within one lease timeout (else it died: its workflows wait for a takeover)."""
    registered: bool
    """In the worker registry (a ``Worker``), rather than known only by the leases it holds."""
    started_at: datetime | None


def split_owner(owner: str) -> tuple[str, int | None]:
    """The host and process id of an owner id ``host:pid:random``."""
    host, _, rest = owner.rpartition(":")[0].rpartition(":")
    if not host:  # not the toolkit's shape: show it whole
        return owner, None
    try:
        return host, int(rest)
    except ValueError:
        return owner, None


def workers(storage: Storage, lease_ms: int = 30_000) -> list[WorkerView]:
    """Every registered worker and every owner of a ``pending`` workflow, latest seen first.

    ``lease_ms`` is the workers' lease timeout: a registered worker not seen
    for that long, or an owner whose leases ran out, is not alive.
    """
    w, r = storage.workflows, storage.workers
    held_query = (
        sa.select(
            w.c.owner,
            w.c.queue_name,
            sa.func.count().label("held"),
            sa.func.max(w.c.lease_expires_at).label("lease"),
        )
        .where(w.c.status == "pending", w.c.owner.is_not(None))
        .group_by(w.c.owner, w.c.queue_name)
    )
    with storage._translate_errors(), storage.read_engine.connect() as conn:
        held_rows = list(conn.execute(held_query))
        registered = {row.owner: row for row in conn.execute(sa.select(r))}
    now = now_ms()
    by_owner: dict[str, dict[str, Any]] = {}
    for row in held_rows:
        entry = by_owner.setdefault(row.owner, {"queues": set(), "held": 0, "lease": 0})
        if row.queue_name is not None:
            entry["queues"].add(row.queue_name)
        entry["held"] += int(row.held)
        entry["lease"] = max(entry["lease"], int(row.lease or 0))
    views = []
    for owner in set(by_owner) | set(registered):
        entry = by_owner.get(owner, {"queues": set(), "held": 0, "lease": 0})
        reg = registered.get(owner)
        host, pid = split_owner(owner)
        if reg is not None:
            seen = int(reg.last_seen_at)
            queues = set(json.loads(reg.queues)) | entry["queues"]
            host, pid = reg.host, reg.pid
        else:
            seen = entry["lease"] - lease_ms
            queues = entry["queues"]
        views.append(
            WorkerView(
                owner=owner,
                host=host,
                pid=pid,
                queues=tuple(sorted(queues)),
                held=entry["held"],
                lease_expires_at=from_ms(entry["lease"]) if entry["lease"] else None,
                last_heartbeat=from_ms(seen),  # type: ignore[arg-type]
                alive=seen + lease_ms > now,
                registered=reg is not None,
                started_at=from_ms(int(reg.started_at)) if reg is not None else None,
            )
        )
    views.sort(key=lambda v: (v.last_heartbeat, v.owner), reverse=True)
    return views


def unregistered(
    storage: Storage, names: Sequence[str], queues: Sequence[str] | None = None, limit: int = 100
) -> dict[str, list[str]]:
    """Workflows no process with ``names`` registered will run: per name, the ids (at most
    ``limit`` in all) of those ``waiting`` for a takeover, or enqueued on one of ``queues``."""
    w = storage.workflows
    now = now_ms()
    waiting = sa.and_(
        w.c.status == "pending",
        sa.or_(w.c.owner.is_(None), w.c.lease_expires_at <= now),
    )
    condition = waiting
    if queues:
        queued = sa.and_(w.c.status == "enqueued", w.c.queue_name.in_(list(queues)))
        condition = sa.or_(waiting, queued)
    query = (
        sa.select(w.c.name, w.c.workflow_id)
        .where(condition, w.c.name.not_in(list(names)))
        .order_by(w.c.created_at)
        .limit(limit)
    )
    found: dict[str, list[str]] = {}
    with storage._translate_errors(), storage.read_engine.connect() as conn:
        for name, workflow_id in conn.execute(query):
            found.setdefault(name, []).append(workflow_id)
    return found


def last_ticks(storage: Storage) -> dict[str, int]:
    """The last tick (epoch ms) each schedule fired, by schedule name."""
    s = storage.schedules
    with storage._translate_errors(), storage.read_engine.connect() as conn:
        return {name: int(tick) for name, tick in conn.execute(sa.select(s.c.name, s.c.last_tick))}
