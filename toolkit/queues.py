"""Queues: workflows started by workers, under concurrency and rate limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Durable
    from .handle import WorkflowHandle


@dataclass(frozen=True)
class Queue:
    """A named queue of workflows, run by ``durable worker`` processes.

    ``concurrency``: at most this many of the queue's workflows run at once,
    across all workers. ``worker_concurrency``: at most this many in one worker
    process (default 16). ``rate_limit=(n, seconds)``: at most ``n`` starts in
    any window of ``seconds``, across all workers. Higher ``priority`` starts
    first; equal priorities start in enqueue order (to the millisecond; the
    rows of one ``enqueue_many`` share their enqueue time).
    """

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    app: Durable | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for label, value in (
            ("concurrency", self.concurrency),
            ("worker_concurrency", self.worker_concurrency),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{label} must be at least 1")
        if self.rate_limit is not None:
            limit, period = self.rate_limit
            if limit < 1 or period <= 0:
                raise ValueError("rate_limit must be (starts >= 1, seconds > 0)")

    def enqueue(
        self,
        fn: Callable[..., Any] | str,
        *args: Any,
        workflow_id: str | None = None,
        priority: int = 0,
        delay: float | None = None,
        deduplication_id: str | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle:
        """Put one workflow on the queue; a worker starts it when the limits allow.

        With a ``deduplication_id`` already held by an enqueued or running
        workflow of this queue, nothing is enqueued and that workflow's handle
        is returned. ``delay`` (seconds) holds the start back.
        """
        assert self.app is not None
        return self.app._enqueue(
            self,
            fn,
            [(args, kwargs)],
            workflow_ids=[workflow_id] if workflow_id is not None else None,
            priority=priority,
            delay=delay,
            deduplication_ids=[deduplication_id] if deduplication_id is not None else None,
        )[0]

    def enqueue_many(
        self,
        fn: Callable[..., Any] | str,
        calls: Iterable[Sequence[Any]],
        *,
        priority: int = 0,
        delay: float | None = None,
    ) -> list[WorkflowHandle]:
        """Enqueue one workflow per argument tuple, in one transaction (batch insert).

        The rows share one enqueue time: among equal priorities they start in
        no particular order.
        """
        assert self.app is not None
        return self.app._enqueue(
            self, fn, [(tuple(c), {}) for c in calls], priority=priority, delay=delay
        )


@dataclass(frozen=True)
class Schedule:
    """A workflow started on a cron timetable, exactly once per tick across all workers.

    With ``catch_up`` a worker that was down starts every missed tick; without
    it, only the latest missed tick runs.
    """

    name: str
    cron: str
    catch_up: bool = False
    max_catch_up: int = 100

    def __post_init__(self) -> None:
        from croniter import croniter  # imported only by apps with schedules

        if not croniter.is_valid(self.cron):
            raise ValueError(f"invalid cron expression {self.cron!r} for schedule {self.name!r}")

    def plan(self, last_ms: int | None, now_ms: int) -> tuple[list[int], int]:
        """The ticks to fire now and the tick to remember as the last one seen (ms, UTC)."""
        from datetime import UTC, datetime

        from croniter import croniter

        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        if last_ms is None:  # a new schedule starts at the next tick
            previous = croniter(self.cron, now).get_prev(datetime)
            return [], int(previous.timestamp() * 1000)
        it = croniter(self.cron, datetime.fromtimestamp(last_ms / 1000, tz=UTC))
        ticks: list[int] = []
        while True:
            tick = it.get_next(datetime)
            if tick > now:
                break
            ticks.append(int(tick.timestamp() * 1000))
            if len(ticks) > 100_000:  # a very old last tick: stop counting
                break
        if not ticks:
            return [], last_ms
        seen = ticks[-1]
        fire = ticks[-self.max_catch_up :] if self.catch_up else ticks[-1:]
        return fire, seen

    def next_tick(self, now_ms: int) -> int:
        from datetime import UTC, datetime

        from croniter import croniter

        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        return int(croniter(self.cron, now).get_next(datetime).timestamp() * 1000)
