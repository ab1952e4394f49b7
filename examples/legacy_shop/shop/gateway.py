"""Calls to the payment, shipping and mail providers, each with its home-made retries."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any

import backoff
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

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


def charge_card(order_id: int, amount_cents: int) -> str:
    """Charge the customer; returns the provider's charge id."""
    delay = 0.05
    for attempt in range(5):
        try:
            return str(_post("/charge", {"order": order_id, "amount": amount_cents})["id"])
        except ProviderError:
            if attempt == 4:
                raise
            log.warning("charge for order %s failed, retrying", order_id)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


@retry(
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.05, max=1),
    retry=retry_if_exception_type(ProviderError),
    reraise=True,
)
def create_shipment(order_id: int) -> str:
    """Book the parcel; returns the tracking number."""
    return str(_post("/ship", {"order": order_id})["id"])


@backoff.on_exception(backoff.expo, ProviderError, max_tries=4, factor=0.05)
def send_receipt(email: str, order_id: int) -> None:
    """Mail the receipt."""
    _post("/mail", {"to": email, "order": order_id})
