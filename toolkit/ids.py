"""Workflow ids: UUIDv7 (RFC 9562), time-ordered and, within one process, strictly increasing.

Ordered ids keep the workflows' primary-key index appending at its right edge
instead of writing random pages, and break ties between workflows enqueued in
the same millisecond (one ``enqueue_many`` batch) in the order they were given.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from .errors import InvalidIdError

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_workflow_id() -> str:
    """A new UUIDv7 string; each call returns a larger one than the last in this process."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, int.from_bytes(os.urandom(2)) & 0x7FF
        else:  # same millisecond (or the clock went back): count on from the last id
            _counter += 1
            if _counter > 0xFFF:
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


MAX_ID_BYTES = 1024
"""The longest id (workflow id, deduplication id, topic, event key), in UTF-8 bytes.

PostgreSQL's unique indexes refuse keys above about 2.7 kB; one limit for every
backend keeps an id that works on SQLite working on PostgreSQL."""


def check_id(value: object, what: str = "workflow id") -> str:
    """``value`` if it can be stored as an id on every backend, else :class:`InvalidIdError`.

    Refused: a non-string, the empty string, a NUL character (PostgreSQL text
    cannot hold one; it was cut there, so two ids became one), a lone
    surrogate (not UTF-8), more than :data:`MAX_ID_BYTES` bytes.
    """
    if not isinstance(value, str):
        raise InvalidIdError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidIdError(f"{what} must not be empty")
    shown = repr(value if len(value) <= 40 else value[:37] + "...")
    if "\x00" in value:
        raise InvalidIdError(f"{what} {shown} contains a NUL character (\\x00)")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidIdError(
            f"{what} {shown} contains a lone surrogate: it is not valid UTF-8"
        ) from None
    if size > MAX_ID_BYTES:
        raise InvalidIdError(f"{what} {shown} is {size} bytes in UTF-8; at most {MAX_ID_BYTES}")
    return value
