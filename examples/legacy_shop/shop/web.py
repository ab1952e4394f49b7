"""What the web front end does when a customer checks out: one order, one job."""

from __future__ import annotations

import json

import sqlalchemy as sa

from .db import jobs, orders


def place_order(eng: sa.Engine, email: str, amount_cents: int) -> int:
    with eng.begin() as conn:
        order_id = conn.execute(
            orders.insert().values(customer_email=email, amount_cents=amount_cents)
        ).inserted_primary_key[0]
        conn.execute(
            jobs.insert().values(
                kind="fulfil_order", payload=json.dumps({"order_id": order_id}), status="pending"
            )
        )
    return int(order_id)
