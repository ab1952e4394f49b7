"""The program of the app-database crash tests: a workflow whose transactions write to an
app database apart from the state store, and that dies where it is told to.

State store: ``$DURABLE_DATABASE_URL``; app database: ``$DURABLE_APP_DATABASE_URL``.
``python appdb_app.py run WID`` starts workflow WID and prints its result as JSON;
``python appdb_app.py recover WID`` resumes what a dead process left and prints it.
``$CRASH_AT`` names where this process SIGKILLs itself (once: a marker file in
``$CRASH_DIR`` remembers it did): ``in-book`` inside the first transaction before
its commit, ``after-book`` after its commit and before its checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from toolkit import Durable, current_workflow_id

metadata = sa.MetaData()
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", sa.String(200), nullable=False),
    sa.Column("label", sa.String(50), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)

app = Durable(lease_timeout=2.0)
work = app.queue("work", worker_concurrency=8)


def point(name: str) -> None:
    """SIGKILL this process the first time it reaches ``name`` if $CRASH_AT says so."""
    if os.environ.get("CRASH_AT") != name:
        return
    marker = Path(os.environ.get("CRASH_DIR", ".")) / f"crashed-{name}"
    if marker.exists():
        return
    marker.write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


@app.transaction(name="book")
def book(conn: sa.Connection, label: str) -> str:
    """Exactly once per (workflow, label) in the app database, whatever crashes."""
    wid = current_workflow_id() or "-"
    conn.execute(ledger.insert().values(workflow_id=wid, label=label, pid=os.getpid()))
    point("in-book")
    return f"{wid}:{label}"


@app.step(name="nap")
def nap(most: float) -> float:
    seconds = random.uniform(0, most)
    time.sleep(seconds)
    return seconds


@app.workflow(name="pair")
def pair(n: int) -> list[object]:
    first = book("a")
    point("after-book")  # workflow code: the checkpoint of "a" is not written yet
    nap(0.05)
    second = book("b")
    return [first, second, n]


if __name__ == "__main__":
    mode, workflow_id = sys.argv[1:3]
    if mode == "run":
        print(json.dumps(app.run(pair, 7, workflow_id=workflow_id, timeout=60)))
    else:
        app.recover()
        print(json.dumps(app.handle(workflow_id).result(timeout=60)))
    app.close()
