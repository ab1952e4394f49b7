"""The application served by ``durable worker`` processes in tests/core/test_db_outages.py.

The database comes from ``$DURABLE_DATABASE_URL``. Workflows record what they
do in the ``effects`` table through ``@transaction`` steps (exactly once each),
and spend their time in slow steps and durable sleeps, so that a database
restart or outage lands in the middle of them.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from toolkit import Durable, current_workflow_id

metadata = sa.MetaData()
effects = sa.Table(
    "effects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", sa.String(200), nullable=False),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)

app = Durable(lease_timeout=float(os.environ.get("OUTAGE_APP_LEASE", "3")))
work = app.queue("work", worker_concurrency=20)


@app.transaction(name="effect")
def effect(conn: sa.Connection, label: str) -> None:
    """Exactly once per (workflow, label), whatever crashes."""
    conn.execute(
        effects.insert().values(
            workflow_id=current_workflow_id(), label=label, at=time.time(), pid=os.getpid()
        )
    )


@app.step(name="slow")
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.workflow(name="long")
def long(n: int, rounds: int = 6) -> int:
    """Slow steps, durable sleeps and transactions spread over several seconds."""
    effect("begin")
    for i in range(rounds):
        slow(0.4)
        app.sleep(0.6)
        effect(f"round-{i}")
    return n * 10


@app.workflow(name="short")
def short(n: int) -> int:
    effect("only")
    slow(0.05)
    return n + 1


@app.workflow(name="fallback")
def fallback(n: int) -> str:
    """Takes its fallback path on *any* exception of step 1: a database error must
    never reach it (the run waits for the database instead)."""
    try:
        slow(1.5)
    except Exception as exc:  # what user code does; must only ever see its own errors
        effect(f"fallback:{type(exc).__name__}")
        return "fallback"
    effect("done")
    return "ok"
