"""The workflows every benchmark runs, for durable-toolkit (``bench_core.py`` has DBOS's twins).

Also the application served by ``durable worker --app bench_workflows:app`` in
the queue benchmark (run with ``bench/`` as the working directory). The URL
comes from ``--database-url`` / ``Durable.configure`` / ``$DURABLE_DATABASE_URL``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from toolkit import Durable

app = Durable()
queue = app.queue("bench")

VICTIM_MARKER: Path | None = None
"""Set in the process that is killed: its blocking step writes this file, then waits."""
RESUMED = threading.Event()
"""Set in the rescuing process when the recovered workflow runs its second step."""


@app.step(name="bench.noop")
def noop(i: int) -> int:
    return i


@app.workflow(name="bench.one")
def one(i: int) -> int:
    return noop(i)


@app.workflow(name="bench.ten")
def ten(i: int) -> int:
    for j in range(10):
        noop(j)
    return i


@app.workflow(name="bench.steps")
def steps(i: int, count: int) -> int:
    for j in range(count):
        noop(j)
    return i


@app.step(name="bench.block")
def block() -> None:
    if VICTIM_MARKER is not None:
        VICTIM_MARKER.write_text("in step 2")
        time.sleep(3600)  # killed here
    RESUMED.set()


@app.workflow(name="bench.recover")
def recover_me() -> int:
    noop(1)
    block()
    return 2
