"""A workflow that crashes half-way and resumes without repeating its finished steps.

Run it with ``python examples/crash_resume.py``. It needs no server: the state
goes to the SQLite file .durable/example.db. The script starts itself as a
child process that runs a three-step checkout and is killed (``os._exit``)
inside the third step; then it calls ``app.recover()``, which replays steps 1
and 2 from their checkpoints and runs only step 3 again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from toolkit import Durable, RetryPolicy, current_step

STATE = Path(".durable")
URL = f"sqlite:///{STATE / 'example.db'}"
app = Durable(URL)


def say(text: str) -> None:
    print(f"[{'child ' if os.environ.get('EXAMPLE_CHILD') else 'parent'}] {text}", flush=True)


@app.step(name="reserve_stock", retry=RetryPolicy(max_attempts=3, initial_delay=0.1))
def reserve_stock(order_id: str) -> str:
    say(f"step 1: reserving stock for {order_id}")
    return f"reservation-{order_id}"


@app.step(name="charge_card", retry=RetryPolicy(max_attempts=5, initial_delay=0.2, jitter=True))
def charge_card(order_id: str, amount: int) -> str:
    key = current_step().idempotency_key  # hand this to the payment API
    say(f"step 2: charging {amount} for {order_id} (idempotency key {key})")
    return f"charge-{key}"


@app.transaction(name="mark_paid")
def mark_paid(conn: sa.Connection, order_id: str, charge_id: str) -> None:
    say(f"step 3: marking {order_id} paid, in the same transaction as the checkpoint")
    if os.environ.get("EXAMPLE_CHILD"):
        say("step 3: the process dies here, before anything commits")
        os._exit(1)
    conn.execute(
        sa.text("INSERT INTO orders (order_id, charge_id) VALUES (:o, :c)"),
        {"o": order_id, "c": charge_id},
    )


@app.workflow(name="checkout")
def checkout(order_id: str) -> str:
    reserve_stock(order_id)
    charge_id = charge_card(order_id, 4200)
    mark_paid(order_id, charge_id)
    return charge_id


def main() -> None:
    if os.environ.get("EXAMPLE_CHILD"):
        app.start(checkout, "o-1", workflow_id="checkout-o-1").result(timeout=30)
        return
    for leftover in STATE.glob("example.db*"):
        leftover.unlink()
    with app.connection().begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (order_id TEXT PRIMARY KEY, charge_id TEXT)"))
    app.close()

    say("starting a child process that runs the checkout workflow")
    child = subprocess.run(
        [sys.executable, __file__], env={**os.environ, "EXAMPLE_CHILD": "1"}, check=False
    )
    say(f"the child died with exit code {child.returncode}")
    record = app.get_workflow("checkout-o-1")
    steps = app.list_steps("checkout-o-1")
    say(f"workflow status: {record.status}; checkpointed steps: {[s.name for s in steps]}")

    say("calling app.recover(): steps 1 and 2 are replayed, step 3 runs again")
    [handle] = app.recover()
    charge_id = handle.result(timeout=30)
    say(f"workflow {handle.workflow_id} {handle.status()} with result {charge_id}")
    with app.connection().connect() as conn:
        rows = conn.execute(sa.text("SELECT order_id, charge_id FROM orders")).all()
    say(f"orders table: {[tuple(r) for r in rows]} (exactly one row)")
    say("see it with: durable workflows show checkout-o-1 --database-url " + URL)
    app.close()


if __name__ == "__main__":
    main()
