"""Retention of finished workflows: durations, one prune pass, and a worker's background pruner.

``Durable(retention=...)`` says how long finished workflows are kept, for all
finished statuses at once or per status; running workers delete what is older
(:class:`Pruner`), in small batches with a pause between them, one process at
a time. ``durable workflows prune`` and :meth:`Durable.prune` do the same on
demand. Unfinished workflows (``enqueued``, ``pending``) are never deleted.
The SQL is in :mod:`toolkit.storage.retention`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Union

from .errors import DatabaseUnavailableError
from .storage.retention import (
    FINISHED_STATUSES,
    VACUUM_AFTER,
    PruneCounts,
    autovacuum_off,
    count_prunable,
    prune_batch,
    vacuum,
)

if TYPE_CHECKING:
    from .storage import Storage

log = logging.getLogger("toolkit.retention")

Duration = Union[float, int, timedelta, str]  # noqa: UP007 (a runtime alias)
RetentionSpec = Union[Duration, Mapping[str, Union[Duration, None]], None]  # noqa: UP007

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)")

DEFAULT_BATCH = 500
"""Workflows deleted per transaction by a worker's pruner."""


def parse_duration(value: Duration, what: str = "duration") -> float:
    """Seconds from a number of seconds, a ``timedelta`` or a text such as ``"7d"``,
    ``"12h"``, ``"1d12h"``, ``"90s"`` or ``"500ms"``. Raises ``ValueError``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"{what} must be a number of seconds, a timedelta or e.g. '7d'")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and re.fullmatch(rf"(?:{_PART.pattern})+", text):
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
        else:
            raise ValueError(
                f"invalid {what} {value!r}: expected e.g. 7d, 12h, 30m, 90s, 1d12h or seconds"
            )
    else:
        raise ValueError(f"{what} must be a number of seconds, a timedelta or e.g. '7d'")
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"{what} must not be negative")
    return seconds


def normalize_retention(spec: RetentionSpec) -> dict[str, float]:
    """Seconds to keep each finished status; a status not in the result is kept forever.

    ``None``: keep everything. A single duration: the same for ``succeeded``,
    ``failed`` and ``cancelled``. A mapping: per status (a value of ``None``
    keeps that status forever).
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        unknown = [s for s in spec if s not in FINISHED_STATUSES]
        if unknown:
            raise ValueError(
                f"retention applies to finished statuses only ({', '.join(FINISHED_STATUSES)}), "
                f"not {', '.join(map(repr, unknown))}"
            )
        return {
            status: parse_duration(value, f"retention of {status!r} workflows")
            for status, value in spec.items()
            if value is not None
        }
    seconds = parse_duration(spec, "retention")
    return dict.fromkeys(FINISHED_STATUSES, seconds)


def describe_duration(seconds: float) -> str:
    """``604800.0`` -> ``"7d"``: the largest unit (days at most) that divides it."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def prune(
    storage: Storage,
    retention: Mapping[str, float],
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    pause: Callable[[float], bool] | None = None,
    exclusive: bool = False,
) -> PruneCounts:
    """Delete (or, with ``dry_run``, count) the finished workflows older than their
    status's retention, with their steps, events and messages.

    Batches of ``batch_size`` workflows, one transaction each. ``pause(seconds)``
    is called between batches (return ``True`` to stop); ``exclusive`` gives up
    as soon as another process holds the pruning lock (PostgreSQL).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    total = PruneCounts()
    now = int(time.time() * 1000)
    for status in FINISHED_STATUSES:
        if status not in retention:
            continue
        cutoff = now - int(retention[status] * 1000)
        if dry_run:
            total.add(count_prunable(storage, status, cutoff))
            continue
        while True:
            started = time.monotonic()
            counts = prune_batch(storage, status, cutoff, batch_size, exclusive=exclusive)
            if counts is None:  # another process prunes now
                return total
            total.add(counts)
            if counts.workflows < batch_size:
                break
            # Rest at least as long as the batch took: pruning never takes more than
            # about half of a connection's time, and others get the locks in between.
            if pause is not None and pause(max(0.05, 2 * (time.monotonic() - started))):
                return total
    return total


class Pruner:
    """A worker's background pruning: a pass every ``interval`` seconds, in its own thread.

    The worker loop (claims, takeovers, schedules) never waits for it. A pass
    deletes in batches of ``batch_size`` with a pause between them, and gives way
    at once when another process is pruning (PostgreSQL's pruning try-lock).
    """

    def __init__(
        self,
        storage_of: Callable[[], Storage],
        retention: Mapping[str, float],
        *,
        interval: float = 60.0,
        first_after: float = 1.0,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self.storage_of = storage_of
        self.retention = dict(retention)
        self.interval = interval
        self.first_after = first_after
        self.batch_size = batch_size
        self.total = PruneCounts()
        self.passes = 0
        self.vacuums = 0
        self._unvacuumed = 0
        self._autovacuum_off: bool | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Pruner:
        self._thread = threading.Thread(target=self._loop, name="durable-retention", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def run_pass(self) -> PruneCounts:
        """One pass now, in the calling thread."""
        counts = prune(
            self.storage_of(),
            self.retention,
            batch_size=self.batch_size,
            pause=self._stop.wait,
            exclusive=True,
        )
        self.passes += 1
        self.total.add(counts)
        self._vacuum_if_needed(counts.workflows)
        if counts.workflows:
            log.info(
                "pruned %d finished workflow(s) (%d steps, %d events, %d messages) past "
                "their retention",
                counts.workflows,
                counts.steps,
                counts.events,
                counts.messages,
                extra={"pruned": counts.as_dict()},
            )
        return counts

    def _vacuum_if_needed(self, pruned: int) -> None:
        """Vacuum the pruned tables when the server's autovacuum is off (else their dead
        rows would never be reused and the tables would keep growing)."""
        self._unvacuumed += pruned
        if self._unvacuumed < VACUUM_AFTER:
            return
        storage = self.storage_of()
        if self._autovacuum_off is None:
            self._autovacuum_off = autovacuum_off(storage)
            if self._autovacuum_off:
                log.info(
                    "autovacuum is off on %s: the pruner vacuums the tables it prunes",
                    storage.describe(),
                )
        if self._autovacuum_off:
            vacuum(storage)
            self.vacuums += 1
        self._unvacuumed = 0

    def _loop(self) -> None:
        wait = self.first_after
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                self.run_pass()
            except DatabaseUnavailableError:
                wait = min(self.interval, 5.0)  # the storage logged the outage once
            except Exception as exc:  # never kill the thread; say it, try at the next pass
                log.warning(
                    "pruning failed (next pass in %.0fs): %s: %s", wait, type(exc).__name__, exc
                )


def describe_retention(
    retention: Mapping[str, float], statuses: Sequence[str] = FINISHED_STATUSES
) -> str:
    """``"succeeded 7d, failed 30d"``; ``"forever"`` when nothing is pruned."""
    parts = [f"{s} {describe_duration(retention[s])}" for s in statuses if s in retention]
    return ", ".join(parts) or "forever"
