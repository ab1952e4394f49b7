"""A takeover running in this process: a poller thread and, optionally, a worker."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.worker import Worker

if TYPE_CHECKING:
    from .status_column import StatusColumnAdapter

log = logging.getLogger("adapters.status_column")


@dataclass
class TakeoverStats:
    """What a running takeover has done."""

    polls: int = 0
    started: int = 0
    restarted: int = 0
    errors: int = 0
    last_error: str | None = None


class Takeover:
    """A takeover running in this process: a poller thread and, optionally, a worker.

    Use it as a context manager, or call :meth:`stop`. Workflows still running
    when it stops stay durable: a worker (here or elsewhere) resumes them.
    """

    def __init__(
        self,
        adapter: StatusColumnAdapter,
        *,
        poll_interval: float = 1.0,
        worker: bool = True,
        schedules: bool = False,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.adapter = adapter
        self.poll_interval = poll_interval
        self.stats = TakeoverStats()
        self.worker = (
            Worker(adapter.app, [adapter.queue.name], schedules=schedules) if worker else None
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Takeover:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Takeover:
        if self.worker is not None:
            self.worker.start()
        self._thread = threading.Thread(
            target=self._poll_loop, name=f"durable-takeover-{self.adapter.name}", daemon=True
        )
        self._thread.start()
        return self

    def _poll_loop(self) -> None:
        backoff = self.poll_interval
        while not self._stop.is_set():
            wait = self.poll_interval
            try:
                report = self.adapter.claim()
                self.stats.polls += 1
                self.stats.started += len(report.started)
                self.stats.restarted += len(report.restarted)
                if len(report.started) + len(report.already_running) >= self.adapter.batch_size:
                    wait = 0.0 if report.started else self.poll_interval
                backoff = self.poll_interval
            except Exception as exc:  # keep polling: the database may come back
                self.stats.errors += 1
                self.stats.last_error = (str(exc).splitlines() or [type(exc).__name__])[0]
                # one line per distinct error, not one per poll (the worker does the same)
                self.adapter._warn_once(
                    f"{self.adapter}: poll failed ({type(exc).__name__}: {self.stats.last_error});"
                    " polling on"
                )
                wait, backoff = backoff, min(backoff * 2, 30.0)
            self._stop.wait(wait)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no due pending row is left and none of the adapter's workflows is live.

        Returns False if ``timeout`` seconds pass first. Rows waiting for their
        ``next_retry_at`` do not count as work.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.adapter.claim()
            # Plain reads, not the claim's SKIP LOCKED one: a row another poller is
            # enqueueing right now is still seen as due.
            if self.adapter.due_rows() == 0 and not self.adapter.live_workflows():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def stop(self, grace: float = 30.0) -> None:
        """Stop polling and the worker (it finishes or releases its workflows within ``grace``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.worker is not None:
            self.worker.stop(grace=grace)
