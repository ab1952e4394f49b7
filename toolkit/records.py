"""Read-only views of recorded workflows and steps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STATUSES = ("enqueued", "pending", "succeeded", "failed", "cancelled")
RESUMABLE_STATUSES = ("failed", "cancelled")
"""What ``resume`` makes runnable again; in any other status it changes nothing."""
"""Every workflow status. ``pending`` means started and not finished."""


def from_ms(value: int | None) -> datetime | None:
    """A stored millisecond timestamp as an aware UTC datetime."""
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def parse_error(text: str | None) -> dict[str, str] | None:
    """The stored error JSON (``type``, ``message``, ``traceback``) as a dict."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"type": "", "message": text, "traceback": ""}
    return value if isinstance(value, dict) else {"type": "", "message": str(value)}


@dataclass(frozen=True)
class WorkflowRecord:
    """One workflow as recorded. ``output`` and ``inputs`` are the stored JSON text."""

    workflow_id: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime
    error: dict[str, str] | None
    inputs: str | None
    output: str | None
    queue_name: str | None
    owner: str | None
    lease_expires_at: datetime | None
    recoveries: int
    started_at: datetime | None = None
    """When a worker (or ``start``) last began running it; ``None`` while enqueued."""


@dataclass(frozen=True)
class StepRecord:
    """One step of a workflow as recorded.

    ``status`` is ``succeeded``, ``failed`` (retries exhausted) or ``retrying``
    (an attempt failed and another is due at ``next_attempt_at``).
    """

    workflow_id: str
    step_number: int
    name: str
    status: str
    attempts: int
    output: str | None
    error: dict[str, str] | None
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None

    @property
    def next_attempt_ms(self) -> int | None:
        if self.next_attempt_at is None:
            return None
        return int(self.next_attempt_at.timestamp() * 1000)


def error_info(exc: BaseException, traceback_text: str) -> dict[str, Any]:
    """The JSON-able description of an exception that is stored (never the object)."""
    cls = type(exc)
    qualified = (
        cls.__qualname__
        if cls.__module__ == "builtins"
        else (f"{cls.__module__}.{cls.__qualname__}")
    )
    return {"type": qualified, "message": str(exc), "traceback": traceback_text}
