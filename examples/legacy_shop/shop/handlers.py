"""What each kind of job does. ``fulfil_order`` is the one the shop cares about."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from . import gateway
from .db import orders


def fulfil_order(conn: sa.Connection, payload: dict[str, Any]) -> None:
    """Charge, ship, mail. Each call retries on its own; a crash in between repeats them all."""
    order = conn.execute(sa.select(orders).where(orders.c.id == payload["order_id"])).one()
    charge_id = gateway.charge_card(order.id, order.amount_cents)
    conn.execute(
        orders.update().where(orders.c.id == order.id).values(state="paid", charge_id=charge_id)
    )
    tracking = gateway.create_shipment(order.id)
    conn.execute(
        orders.update()
        .where(orders.c.id == order.id)
        .values(state="shipped", tracking_number=tracking)
    )
    gateway.send_receipt(order.customer_email, order.id)


HANDLERS: dict[str, Callable[[sa.Connection, dict[str, Any]], None]] = {
    "fulfil_order": fulfil_order,
}


def run_job(conn: sa.Connection, kind: str, payload_text: str) -> None:
    HANDLERS[kind](conn, json.loads(payload_text))
