"""Job tables without a status column, in our own minimal reproductions of real shapes.

Each :class:`Shape` creates its table (SQLAlchemy Core, so the same DDL runs
on SQLite, PostgreSQL and MariaDB), fills it with rows 1..n, builds the
adapter for it, and says what a legacy reader must see: :meth:`Shape.consistent`
is the invariant a sampling reader checks during a run, :meth:`Shape.final`
what each row looks like at the end (``None``: the row is gone).

Rows whose ``payload`` is ``"flaky"`` fail their first attempt; ``"broken"``
fails every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from adapters.status_column import JsonKey, LegacyColumns, StateColumns, StatusValues

FAR = 9999


def payload_of(i: int) -> str:
    return {3: "flaky", 4: "broken"}.get(i, f"mail-{i}")


@dataclass(frozen=True)
class Shape:
    name: str
    table: Callable[[sa.MetaData], sa.Table]
    row: Callable[[int], dict[str, Any]]
    state: StateColumns | StatusValues
    columns: LegacyColumns
    consistent: Callable[[dict[str, Any]], bool]
    final: Callable[[int, dict[str, Any] | None], bool]

    def kwargs(self) -> dict[str, Any]:
        return {"table": self.name, "key": "id", "status": self.state, "columns": self.columns}


def _attempts(i: int) -> int:
    return {3: 2, 4: 2}.get(i, 1)


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str | bytes) else dict(value)


# 1. State in nullable timestamps and a flag: locked_at set when taken, processed
#    (a boolean) when done, failed_at when it failed for good.
TIMESTAMPS = Shape(
    name="mail_queue",
    table=lambda md: sa.Table(
        "mail_queue",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.String(100), nullable=False),
        sa.Column("locked_at", sa.DateTime),
        sa.Column("processed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("failed_at", sa.DateTime),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
    ),
    row=lambda i: {"id": i, "payload": payload_of(i)},
    state=StateColumns(taken="locked_at", done="processed", failed="failed_at"),
    columns=LegacyColumns(attempts="attempts", last_error="last_error"),
    consistent=lambda r: (
        not (r["processed"] and r["failed_at"] is not None)
        and (not r["processed"] or r["locked_at"] is not None)
        and (r["failed_at"] is None or r["locked_at"] is not None)
    ),
    final=lambda i, r: (
        r is not None
        and r["locked_at"] is not None
        and r["attempts"] == _attempts(i)
        and (
            (r["failed_at"] is not None and not r["processed"] and "broken" in r["last_error"])
            if i == 4
            else (bool(r["processed"]) and r["failed_at"] is None)
        )
    ),
)

# 2. Rows deleted when done (a mail outbox): a failure defers the row (deferred_at),
#    retry_count counts the attempts; there is no "taken" marker at all.
DELETE_WHEN_DONE = Shape(
    name="outbox",
    table=lambda md: sa.Table(
        "outbox",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.String(100), nullable=False),
        sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deferred_at", sa.DateTime),
    ),
    row=lambda i: {"id": i, "payload": payload_of(i)},
    state=StateColumns(delete="done", failed="deferred_at"),
    columns=LegacyColumns(attempts="retry_count"),
    consistent=lambda r: r["deferred_at"] is None or r["retry_count"] >= 1,
    final=lambda i, r: (
        r is not None and r["deferred_at"] is not None and r["retry_count"] == 2
        if i == 4
        else r is None
    ),
)

# 3. Rows deleted when claimed (a Postgres-style "DELETE ... RETURNING" queue): the
#    values live on in the workflow; execute_at is the not-before time.
DELETE_WHEN_CLAIMED = Shape(
    name="task_queue",
    table=lambda md: sa.Table(
        "task_queue",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.String(100), nullable=False),
        sa.Column("execute_at", sa.DateTime),
    ),
    row=lambda i: {"id": i, "payload": payload_of(i)},
    state=StateColumns(delete="claimed"),
    columns=LegacyColumns(next_retry_at="execute_at"),
    consistent=lambda r: r["payload"] is not None,
    final=lambda i, r: r is None,
)

# 4. A lease ("invisible until"): lock NULL or past means available; rows are
#    deleted when done; a row that failed for good stays invisible (lock 9999).
LEASE = Shape(
    name="broker_queue",
    table=lambda md: sa.Table(
        "broker_queue",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.String(100), nullable=False),
        sa.Column("lock", sa.DateTime),
    ),
    row=lambda i: {"id": i, "payload": payload_of(i)},
    state=StateColumns(taken="lock", lease=timedelta(minutes=10), delete="done"),
    columns=LegacyColumns(),
    consistent=lambda r: r["lock"] is None or r["lock"].year >= 2000,
    final=lambda i, r: (r is not None and r["lock"].year == FAR) if i == 4 else r is None,
)

# 5. Attempts in a JSON payload (dequeued_at NULL = pending; schedule_at = not before);
#    done and failed rows both keep dequeued_at set, as the legacy queue leaves them.
JSON_ATTEMPTS = Shape(
    name="pq_items",
    table=lambda md: sa.Table(
        "pq_items",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("q_name", sa.String(50), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("payload", sa.String(100), nullable=False),
        sa.Column("dequeued_at", sa.DateTime),
        sa.Column("schedule_at", sa.DateTime),
    ),
    row=lambda i: {
        "id": i,
        "q_name": "mail",
        "data": {"to": f"user{i}@example.com", "retried": 0},
        "payload": payload_of(i),
    },
    state=StateColumns(taken="dequeued_at"),
    columns=LegacyColumns(attempts=JsonKey("data", "retried"), next_retry_at="schedule_at"),
    consistent=lambda r: _json(r["data"]).get("to", "").endswith("@example.com"),
    final=lambda i, r: (
        r is not None
        and r["dequeued_at"] is not None
        and _json(r["data"])["retried"] == _attempts(i)
        and _json(r["data"])["to"] == f"user{i}@example.com"
    ),
)

# 6. A status column (an ENUM where the database has one) with the usual bookkeeping.
STATUS_COLUMN = Shape(
    name="jobs",
    table=lambda md: sa.Table(
        "jobs",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.String(100), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "working", "finished", "dead", name="job_status"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("locked_by", sa.String(40)),
        sa.Column("locked_at", sa.DateTime),
    ),
    row=lambda i: {"id": i, "payload": payload_of(i), "status": "queued"},
    state=StatusValues(pending="queued", running="working", done="finished", failed="dead"),
    columns=LegacyColumns(
        attempts="attempts", last_error="last_error", locked_by="locked_by", locked_at="locked_at"
    ),
    consistent=lambda r: (
        (r["status"] == "working") == (r["locked_by"] is not None)
        and (r["status"] != "queued" or r["attempts"] == 0)
    ),
    final=lambda i, r: (
        r is not None
        and r["status"] == ("dead" if i == 4 else "finished")
        and r["attempts"] == _attempts(i)
        and r["locked_by"] is None
    ),
)

# 7. Flags only: a row is taken when `locked` is true, done when `processed` is.
FLAGS = Shape(
    name="flag_jobs",
    table=lambda md: sa.Table(
        "flag_jobs",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.String(100), nullable=False),
        sa.Column("locked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("processed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("gave_up", sa.Boolean, nullable=False, server_default=sa.false()),
    ),
    row=lambda i: {"id": i, "payload": payload_of(i)},
    state=StateColumns(taken="locked", done="processed", failed="gave_up"),
    columns=LegacyColumns(),
    consistent=lambda r: (
        not (r["processed"] and r["gave_up"])
        and (r["locked"] or not (r["processed"] or r["gave_up"]))
    ),
    final=lambda i, r: (
        r is not None
        and bool(r["locked"])
        and (bool(r["gave_up"]) if i == 4 else bool(r["processed"]))
    ),
)

SHAPES = {
    s.name: s
    for s in (
        TIMESTAMPS,
        DELETE_WHEN_DONE,
        DELETE_WHEN_CLAIMED,
        LEASE,
        JSON_ATTEMPTS,
        STATUS_COLUMN,
        FLAGS,
    )
}


def create(url: str, shape: Shape, n: int) -> None:
    """Create the shape's table in ``url`` with rows 1..n."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        md = sa.MetaData()
        table = shape.table(md)
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [shape.row(i) for i in range(1, n + 1)])
    finally:
        engine.dispose()


def read(url: str, shape: Shape) -> dict[int, dict[str, Any]]:
    """Every row of the shape's table, by id (a plain SELECT, as a legacy reader does)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            table = sa.Table(shape.name, sa.MetaData(), autoload_with=conn)
            return {r.id: dict(r._mapping) for r in conn.execute(sa.select(table))}
    finally:
        engine.dispose()
