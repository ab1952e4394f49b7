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
