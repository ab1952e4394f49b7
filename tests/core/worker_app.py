"""The application served by real ``durable worker`` processes in tests/core/test_workers.py.

The database comes from ``$DURABLE_DATABASE_URL``. Every workflow records what
it does in the ``effects`` table through ``@transaction`` steps, so a test can
count side effects after workers were killed: a transaction step that ran
twice would leave two rows.

``$WORKER_APP_SCHEDULE`` (``catch-up`` or ``latest``) declares the ``tick``
schedule (every second); ``$WORKER_APP_WITHOUT`` names a workflow this
process does not register (a worker running older code).
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime

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

app = Durable(lease_timeout=2.0)
work = app.queue("work", worker_concurrency=4)
capped = app.queue("capped", concurrency=3, worker_concurrency=2)
limited = app.queue("limited", rate_limit=(5, 1.0), worker_concurrency=20)
without = os.environ.get("WORKER_APP_WITHOUT", "")


@app.transaction(name="effect")
def effect(conn: sa.Connection, label: str) -> None:
    """Exactly once per (workflow, label), whatever crashes."""
    conn.execute(
        effects.insert().values(
            workflow_id=current_workflow_id(), label=label, at=time.time(), pid=os.getpid()
        )
    )


@app.step(name="pause")
def pause(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.step(name="nap")
def nap(most: float) -> float:
    """Sleep a random time (the killer's landing zone); the replay returns the recorded one."""
    seconds = random.uniform(0.0, most)
    time.sleep(seconds)
    return seconds


@app.workflow(name="chaos")
def chaos(n: int) -> int:
    """Three steps and two transactions, with random pauses for the killer to land in."""
    effect("begin")
    for _ in range(3):
        nap(0.15)
    effect("end")
    return n * 2


@app.workflow(name="busy")
def busy(seconds: float) -> None:
    effect("start")
    pause(seconds)
    effect("stop")


if without != "newer":

    @app.workflow(name="newer")
    def newer(n: int) -> int:
        effect("newer")
        return n


schedule = os.environ.get("WORKER_APP_SCHEDULE")
if schedule:

    @app.scheduled("* * * * * *", name="tick", catch_up=schedule == "catch-up")
    def tick(at: datetime) -> None:
        effect(at.isoformat())
