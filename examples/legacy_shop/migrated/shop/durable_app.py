"""The shop on durable-toolkit: ``durable worker --app shop.durable_app:app``.

The workflow state lives in the shop's own database ($SHOP_DATABASE_URL), next
to ``orders`` and ``jobs``, so that:

* ``fulfil_order`` updates ``orders`` in ``@transaction`` steps: each update
  commits together with its checkpoint, exactly once;
* the status-column adapter writes each row's state back to ``jobs`` in the
  transaction of the checkpoint too (exactly once), so the dashboard and every
  other reader of ``jobs`` see ``pending``/``running``/``done``/``failed`` as
  before;
* the provider calls (``shop.gateway``) are steps: at least once, each with its
  idempotency key, which the provider uses to answer a repeated call with the
  first answer instead of charging again.

``python -m shop.migrate`` runs the shadow reports and the takeover poller.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from adapters.cron_sweeper import CronSweeper
from adapters.status_column import LegacyColumns, StatusColumnAdapter, StatusValues
from toolkit import Durable, RetryPolicy

from . import gateway
from .db import orders

MAX_ATTEMPTS = 5  # shop.worker's budget per job
STUCK_AFTER = timedelta(minutes=15)  # shop.sweeper's guess

app = Durable(os.environ.get("SHOP_DATABASE_URL", "sqlite:///shop.db"))

# A database error in a transaction (SQLite busy, a PostgreSQL deadlock) is retried.
DB_RETRY = RetryPolicy(max_attempts=5, initial_delay=0.1, retry_on=(sa.exc.OperationalError,))


@app.transaction(name="shop.load_order", retry=DB_RETRY)
def load_order(conn: sa.Connection, order_id: int) -> dict[str, Any]:
    row = conn.execute(sa.select(orders).where(orders.c.id == order_id)).one()
    return {
        "id": row.id,
        "email": row.customer_email,
        "amount_cents": row.amount_cents,
        "state": row.state,
    }


@app.transaction(name="shop.mark_paid", retry=DB_RETRY)
def mark_paid(conn: sa.Connection, order_id: int, charge_id: str | None) -> None:
    conn.execute(
        orders.update()
        .where(orders.c.id == order_id, orders.c.state == "new")
        .values(state="paid", charge_id=charge_id)
    )


@app.transaction(name="shop.mark_shipped", retry=DB_RETRY)
def mark_shipped(conn: sa.Connection, order_id: int, tracking_number: str) -> None:
    conn.execute(
        orders.update()
        .where(orders.c.id == order_id, orders.c.state == "paid")
        .values(state="shipped", tracking_number=tracking_number)
    )


@app.workflow(name="fulfil_order")
def fulfil_order(payload: dict[str, Any]) -> str:
    """Charge, ship, mail: the legacy handler, as a workflow.

    The order's state says what is done already. A crash resumes after the last
    checkpoint on its own; the state matters when the whole handler runs again
    (a row's next attempt, a retried dead letter), whose steps get new
    idempotency keys: a paid order is not charged again, a shipped one not
    shipped again. Free orders (0 cents) are not charged: the provider refuses
    a charge of nothing, which sent them all to failed_jobs.
    """
    order = load_order(payload["order_id"])
    if order["state"] == "new":
        charge_id = None
        if order["amount_cents"] > 0:
            charge_id = gateway.charge_card(order["id"], order["amount_cents"])
        mark_paid(order["id"], charge_id)
    if order["state"] in ("new", "paid"):
        tracking_number = gateway.create_shipment(order["id"])
        mark_shipped(order["id"], tracking_number)
    gateway.send_receipt(order["email"], order["id"])
    return f"order {order['id']} shipped"


def run_job(row: dict[str, Any]) -> Any:
    """A ``jobs`` row, as the legacy ``shop.handlers.run_job`` dispatched it."""
    if row["kind"] != "fulfil_order":
        raise ValueError(f"no handler for job kind {row['kind']!r}")
    return fulfil_order(json.loads(row["payload"]))  # inline: its steps belong to the row


# At most 8 orders at a time in each worker process (the provider's rate limit).
fulfilment = app.queue("fulfilment", worker_concurrency=8)

jobs = StatusColumnAdapter(
    app,
    None,  # the jobs table is in the workflow database: write-backs are exactly once
    table="jobs",
    key="id",
    status=StatusValues(pending="pending", running="running", done="done", failed="failed"),
    columns=LegacyColumns(
        attempts="attempts",
        last_error="last_error",
        next_retry_at="next_retry_at",
        locked_by="locked_by",
        locked_at="locked_at",
        updated_at="updated_at",
    ),
    workflow=run_job,
    # The legacy budget: MAX_ATTEMPTS attempts per job, 2, 4, 8, 16 s apart.
    retry=RetryPolicy(max_attempts=MAX_ATTEMPTS, initial_delay=2.0, backoff=2.0),
    queue=fulfilment,
)

# The crontab's sweep (every 5 minutes, requeue jobs running for 15 minutes),
# declared on the adapter: rows that a live workflow holds are never requeued.
sweeper = CronSweeper.for_adapter(jobs, cron="*/5 * * * *", stuck_after=STUCK_AFTER)
