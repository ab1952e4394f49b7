"""A program for crash tests: runs a workflow and dies where it is told to.

Usage: python crash_app.py URL MODE WORKFLOW_ID SCENARIO WORKDIR
MODE is ``run`` (start the workflow and wait for it) or ``recover`` (call
``app.recover()`` and print the result of WORKFLOW_ID as JSON). The process
kills itself when it reaches the point named by $CRASH_AT (``os._exit``), or
writes WORKDIR/ready-<point> and sleeps when $HANG_AT names it (the test then
sends SIGKILL). Every execution of a step appends a line to WORKDIR/calls.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from toolkit import Durable, RetriesExhausted, RetryPolicy, RetryState, current_step

url, mode, workflow_id, scenario, workdir = sys.argv[1:6]
WORK = Path(workdir)
app = Durable(url, lease_timeout=30, max_recoveries=int(os.environ.get("MAX_RECOVERIES", "20")))


def point(name: str) -> None:
    """A place where this process may be told to die."""
    if os.environ.get("CRASH_AT") == name:
        os._exit(17)
    if os.environ.get("HANG_AT") == name:
        (WORK / f"ready-{name}").write_text(str(os.getpid()))
        time.sleep(600)


def called(what: str) -> None:
    with open(WORK / "calls", "a") as f:
        f.write(what + "\n")
        f.flush()
        os.fsync(f.fileno())


@app.step(name="numbered")
def numbered(i: int) -> int:
    called(f"step{i}:{current_step().idempotency_key}")
    point(f"step{i}")
    return i * 10


@app.transaction(name="pay")
def pay(conn: sa.Connection, order: str) -> str:
    called("pay")
    conn.execute(sa.text("INSERT INTO payments (order_id) VALUES (:o)"), {"o": order})
    point("in-pay")
    return f"paid-{order}"


@app.step(name="always_fails", retry=RetryPolicy(max_attempts=4, initial_delay=0.05, backoff=1))
def always_fails() -> None:
    n = current_step().attempt
    called(f"fail{n}")
    point(f"fail-attempt{n}")
    raise OSError(f"attempt {n} failed")


@app.workflow(name="ten_steps")
def ten_steps() -> list[int]:
    values = [numbered(i) for i in range(1, 11)]
    point("after-last-step")  # workflow code: step 10's checkpoint is still held back
    return values


@app.workflow(name="payment")
def payment(order: str) -> str:
    a = numbered(1)
    receipt = pay(order)
    point("after-pay")
    b = numbered(2)
    return f"{receipt}:{a + b}"


@app.workflow(name="retries")
def retries() -> None:
    always_fails()


@app.workflow(name="sleeper")
def sleeper() -> float:
    numbered(1)
    app.sleep(3)
    return time.time()


def _before_poll(state: RetryState) -> None:
    called(f"before{state.attempt}")


@app.step(
    name="polls",
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=0.05,
        backoff=1,
        retry_on_result=lambda r: r == "pending",
        before_retry=_before_poll,
    ),
)
def polls() -> str:
    n = current_step().attempt
    called(f"poll{n}")
    point(f"poll-attempt{n}")
    return "pending" if n < 4 else f"ready after {n}"


def _give_up(state: RetryState) -> str:
    called(f"give_up{state.attempt}")
    return "fallback"


@app.step(
    name="exhausts",
    retry=RetryPolicy(
        max_attempts=2, initial_delay=0.01, retry_on_result=bool, on_give_up=_give_up
    ),
)
def exhausts() -> str:
    called(f"exhaust{current_step().attempt}")
    return "still busy"


@app.step(
    name="never_ready",
    retry=RetryPolicy(max_attempts=2, initial_delay=0.01, retry_on_result=bool),
)
def never_ready() -> str:
    called(f"never{current_step().attempt}")
    return "not yet"


@app.workflow(name="result_retries")
def result_retries() -> str:
    return polls()


@app.workflow(name="gives_up")
def gives_up() -> list[object]:
    fallback = exhausts()
    try:
        caught = never_ready()
    except RetriesExhausted as exc:
        caught = f"{type(exc).__name__}:{exc.attempts}"
    value = numbered(3)
    point("after-give-up")  # step 3's checkpoint is still held back
    return [fallback, caught, value]


WORKFLOWS = {"ten_steps": ten_steps, "payment": payment, "retries": retries, "sleeper": sleeper}
WORKFLOWS.update(result_retries=result_retries, gives_up=gives_up)
ARGS = {"payment": ("o-1",)}

if mode == "run":
    handle = app.start(WORKFLOWS[scenario], *ARGS.get(scenario, ()), workflow_id=workflow_id)
    handle.result(timeout=60)
    print(json.dumps({"finished_in": "run"}))
elif mode == "recover":
    handles = app.recover()
    out: dict[str, object] = {"recovered": [h.workflow_id for h in handles]}
    try:
        out["result"] = app.handle(workflow_id).result(timeout=60)
    except Exception as exc:  # report, the test decides
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["status"] = app.handle(workflow_id).status()
    print(json.dumps(out))
app.close()
