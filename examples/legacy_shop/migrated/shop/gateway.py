"""Calls to the payment, shipping and mail providers, each with its home-made retries."""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from toolkit import RetryPolicy, current_step, step

log = logging.getLogger("shop.gateway")

PROVIDER_URL = os.environ.get("PROVIDER_URL", "http://127.0.0.1:8765")


class ProviderError(Exception):
    """The provider answered with an error (HTTP 5xx) or could not be reached."""


def _post(path: str, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        PROVIDER_URL + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if idempotency_key:
        request.add_header("Idempotency-Key", idempotency_key)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return dict(json.loads(response.read()))
    except (urllib.error.URLError, TimeoutError) as exc:
        raise ProviderError(f"{path}: {exc}") from exc


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=0.05,
        backoff=2.0,
        retry_on=(ProviderError,),
    )
)
def charge_card(order_id: int, amount_cents: int) -> str:
    """Charge the customer; returns the provider's charge id."""
    key = current_step().idempotency_key  # the same on every retry, and after a crash
    return str(_post("/charge", {"order": order_id, "amount": amount_cents}, key)["id"])


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.05,
        backoff=2.0,
        max_delay=1.0,
        retry_on=(ProviderError,),
    )
)
def create_shipment(order_id: int) -> str:
    """Book the parcel; returns the tracking number."""
    return str(_post("/ship", {"order": order_id}, current_step().idempotency_key)["id"])


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.05,
        backoff=2.0,
        full_jitter=True,
        retry_on=(ProviderError,),
    )
)
def send_receipt(email: str, order_id: int) -> None:
    """Mail the receipt."""
    _post("/mail", {"to": email, "order": order_id}, current_step().idempotency_key)
