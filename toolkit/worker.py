"""Workers: processes that claim queued workflows, fire schedules and take over orphans.

Any number of workers may share one PostgreSQL database (SQLite: one). A
worker claims work with a lease in one statement (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, under a per-queue lock so global limits hold), renews its
leases by a heartbeat, and takes over workflows whose owner died or whose lease
expired. It wakes on LISTEN/NOTIFY (PostgreSQL) or by polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import telemetry
from .app import Durable
from .engine import Run
from .errors import DatabaseUnavailableError, DurableError
from .retention import Pruner
from .storage import now_ms, registry
from .storage.base import Orphan
from .storage.views import split_owner
from .unregistered import REPORT_EVERY, UnregisteredReporter

log = logging.getLogger("toolkit.worker")

OUTPUTS_PRUNE_EVERY = 300.0
"""Seconds between two prunes of the app database's outputs rows (when it is apart)."""

SEEN_EVERY = 1.0
"""Seconds between two refreshes of a worker's row in the worker registry."""

DEFAULT_WORKER_CONCURRENCY = 16
"""Per-queue cap in one worker when the queue declares no ``worker_concurrency``."""


@dataclass
class WorkerStats:
    """What a worker has done since it started."""

    claimed: int = 0
    recovered: int = 0
    succeeded: int = 0
    failed: int = 0
    interrupted: int = 0
    scheduled: int = 0
    last_lag: float = 0.0
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    """The enqueue-to-start lags of the last 1,000 claims, in seconds."""

    def counts(self) -> dict[str, int]:
        return {
            "claimed": self.claimed,
            "recovered": self.recovered,
            "scheduled": self.scheduled,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "interrupted": self.interrupted,
        }


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


class Worker:
    """Runs the workflows of ``app`` from its queues and schedules, in this process.

    ``queues`` limits the worker to those queue names (default: every queue the
    app declares). ``poll_interval`` is the longest it sleeps without a wake-up.
    Every ``report_every`` seconds with activity it logs one summary line
    (claimed, finished, failed, lag percentiles) on the ``toolkit.worker``
    logger at INFO; each claim and finish is logged at DEBUG. When the app has a
    ``retention``, a background thread deletes finished workflows past it every
    ``prune_interval`` seconds (small batches; one process at a time).
    Workflows waiting for it whose name the app does not register are logged
    once per name (``app_label`` names the app in that line) and marked for
    ``durable workflows show``. While it runs, ``durable workers list`` shows it.
    """

    def __init__(
        self,
        app: Durable,
        queues: Sequence[str] | None = None,
        *,
        poll_interval: float | None = None,
        shutdown_grace: float = 30.0,
        schedules: bool = True,
        report_every: float = 10.0,
        prune_interval: float = 60.0,
        app_label: str | None = None,
    ) -> None:
        self.app = app
        declared = app.queues
        names = list(queues) if queues is not None else list(declared)
        unknown = [q for q in names if q not in declared]
        if unknown:
            raise DurableError(
                f"queue(s) {', '.join(unknown)} not declared in the app "
                f"(declared: {', '.join(declared) or 'none'})"
            )
        self.queues = [declared[q] for q in names]
        self.poll_interval = poll_interval
        self.shutdown_grace = shutdown_grace
        self.run_schedules = schedules
        self.report_every = report_every
        self.prune_interval = prune_interval
        self.pruner: Pruner | None = None
        """The background pruning of finished workflows, when the app has a ``retention``."""
        self.stats = WorkerStats()
        self._reported = self.stats.counts()
        self._reported_at = time.monotonic()
        self._interval_lags: deque[float] = deque(maxlen=100_000)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._running: dict[str, set[str]] = {q.name: set() for q in self.queues}
        self._mine: set[str] = set()  # every workflow this worker launched and still runs
        self._poll_due: dict[int, float] = {}  # poller index -> when it is due (monotonic)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._registered = False
        self._next_seen = 0.0
        self._unregistered = UnregisteredReporter(app, names, app_label)
        self._next_unregistered_look = 0.0

    # -- control --

    def start(self) -> Worker:
        """Run the worker loop in a background thread.

        Connecting (and, on SQLite, taking the one-executing-process lock)
        happens here, so a refusal raises in the caller. A database that cannot
        be reached is not a refusal: the worker waits for it.
        """
        with contextlib.suppress(DatabaseUnavailableError):  # run() waits for it
            self.app.executor.ensure_alive()
        self._thread = threading.Thread(target=self.run, name="durable-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; wait up to ``grace`` seconds for running workflows, release the rest.

        Released workflows stay ``pending`` with no owner, so another worker
        takes them over at once and resumes them from their last checkpoint.
        """
        if grace is not None:
            self.shutdown_grace = grace
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def run_until_signalled(self) -> None:
        """Run the loop until SIGTERM or SIGINT, then stop as ``stop()`` does.

        A second signal ends the shutdown grace at once: running workflows are
        released for other workers. Call it from the main thread; errors of the
        loop are raised here.

        The handlers only record the signal. A handler runs between any two
        bytecodes of the main thread, which may hold a lock of the loop at that
        instant; one that stopped the loop itself could wait on that lock for
        ever. So the loop runs in its own thread, and this one stops it.
        """
        received: list[int] = []

        def record(signum: int, _frame: object) -> None:
            received.append(signum)  # nothing that takes a lock

        stopping = (signal.SIGTERM, signal.SIGINT)
        previous = {signum: signal.signal(signum, record) for signum in stopping}
        failure: list[BaseException] = []

        def loop() -> None:
            try:
                self.run()
            except BaseException as exc:  # raised in the caller's thread below
                failure.append(exc)

        thread = threading.Thread(target=loop, name="durable-worker")
        thread.start()
        handled = 0
        try:
            while thread.is_alive():
                thread.join(0.1)
                for signum in received[handled:]:
                    handled += 1
                    if handled == 1:
                        log.info("signal %d: stopping", signum)
                        self.stop()  # the loop is not `self._thread`: this does not wait
                    else:
                        log.info("signal %d again: releasing running workflows now", signum)
                        self.shutdown_grace = 0.0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if failure:
            raise failure[0]

    # -- the loop --

    def run(self) -> None:
        """Claim and run work until ``stop()`` (or SIGTERM via the CLI)."""
        if not self._connect():
            log.info("worker stopped before the database could be reached")
            return
        app, executor = self.app, self.app.executor
        storage = app.storage
        storage.start_listening()
        self._register()
        for queue in self.queues:
            storage.wakeups.bind("queue", queue.name, self._wake)
        executor.on_finished.append(self._finished)
        if (tel := telemetry.active) is not None:  # queue depth and age as gauges
            tel.watch_queues(storage)
        if app.retention:  # finished workflows past their retention, in its own thread
            self.pruner = Pruner(lambda: app.storage, app.retention, interval=self.prune_interval)
            self.pruner.start()
        poll = self.poll_interval if self.poll_interval is not None else storage.idle_poll_interval
        recovery_every = max(min(executor.lease_ms / 2000, 5.0), 0.05)
        next_recovery = 0.0
        next_report = time.monotonic() + self.report_every
        backoff = 0.1
        log.info(
            "worker %s serving %s on %s",
            executor.owner,
            ", ".join(q.name for q in self.queues) or "no queues",
            app.url,
        )
        app_db = app.app_database
        next_outputs_prune = time.monotonic() + OUTPUTS_PRUNE_EVERY
        look_at = 0.0  # when the next full look (recover, schedules, claim) is due
        last_token: object = None
        woken = True
        try:
            while not self._stop.is_set():
                token = storage.change_token()
                if woken or token != last_token or time.monotonic() >= look_at:
                    wait = poll
                    try:
                        if time.monotonic() >= next_recovery:
                            next_recovery = time.monotonic() + recovery_every
                            self._seen()
                            self._report_unregistered()
                            expires_in = self._recover()
                            if expires_in is not None:  # look again right after it runs out
                                next_recovery = min(
                                    next_recovery, time.monotonic() + expires_in + 0.005
                                )
                        wait = min(wait, next_recovery - time.monotonic())
                        wait = min(wait, self._fire_schedules())
                        wait = min(wait, self._run_pollers())
                        wait = min(wait, self._claim())
                        backoff = 0.1
                    except DatabaseUnavailableError as exc:
                        # Logged once per outage by the storage; look again soon, so that
                        # work resumes within a second of the database's return.
                        log.debug("database unavailable, retrying in %.1fs: %s", backoff, exc)
                        wait = backoff
                        backoff = min(backoff * 2, 1.0)
                    except Exception as exc:  # never let the loop die: say it, back off
                        self._warn_once("worker pass failed", exc)
                        wait = backoff
                        backoff = min(backoff * 2, 30.0)
                    last_token = storage.change_token()  # our own writes included
                    look_at = time.monotonic() + wait
                if time.monotonic() >= next_report:
                    self._report()
                    next_report = time.monotonic() + self.report_every
                if app_db is not None and time.monotonic() >= next_outputs_prune:
                    next_outputs_prune = time.monotonic() + OUTPUTS_PRUNE_EVERY
                    self._prune_app_outputs()
                sleep = min(look_at, next_report) - time.monotonic()
                if token is not None:  # a cheap local glance at the database file
                    sleep = min(sleep, storage.glance_interval)
                woken = self._wake.wait(max(sleep, 0.0))
                self._wake.clear()
        finally:
            self._shutdown()

    def _register(self) -> None:
        """Put this worker in the registry ``durable workers list`` reads (best effort)."""
        owner = self.app.executor.owner
        host, pid = split_owner(owner)
        try:
            registry.register(
                self.app.storage, owner, host, pid or os.getpid(), [q.name for q in self.queues]
            )
            self._registered = True
        except Exception as exc:  # the list is for people: never stop working for it
            self._warn_once("could not register in the worker list", exc)

    def _seen(self) -> None:
        """Refresh this worker's row, at most every ``SEEN_EVERY`` seconds (recovery passes
        can come every 50 ms with a short lease)."""
        if time.monotonic() < self._next_seen:
            return
        self._next_seen = time.monotonic() + SEEN_EVERY
        try:
            if not self._registered:
                self._register()
            else:
                registry.seen(self.app.storage, self.app.executor.owner)
        except Exception as exc:
            log.debug("could not refresh the worker list: %s", exc)

    def _report_unregistered(self) -> None:
        """Every few seconds: say which waiting workflows this app does not register."""
        if time.monotonic() < self._next_unregistered_look:
            return
        self._next_unregistered_look = time.monotonic() + REPORT_EVERY
        try:
            self._unregistered()
        except DatabaseUnavailableError:
            pass  # logged by the health; next time
        except Exception as exc:
            self._warn_once("looking for unregistered workflows failed", exc)

    def _prune_app_outputs(self) -> None:
        """Delete app-database outputs rows no replay can need (see Durable.prune_app_outputs)."""
        try:
            deleted = self.app.prune_app_outputs()
        except DatabaseUnavailableError:
            return  # logged by the health; next time
        except Exception as exc:
            self._warn_once("pruning the app database's outputs failed", exc)
            return
        if deleted:
            log.debug("deleted %d outputs row(s) of the app database", deleted)

    def _connect(self) -> bool:
        """Connect and take the liveness lock, waiting while the database is unavailable;
        ``False`` if stopped first."""
        wait = 0.1
        while True:
            try:
                self.app.executor.ensure_alive()
                return True
            except DatabaseUnavailableError:
                pass  # the storage logged it, once
            if self._stop.wait(wait):
                return False
            wait = min(wait * 2, 1.0)

    def _warn_once(self, what: str, exc: BaseException) -> None:
        """One line per distinct error (a traceback with -v); repeats at DEBUG only."""
        text = f"{what}: {type(exc).__name__}: {exc}".splitlines()[0]
        if text in self._warned:
            log.debug("%s (again)", text)
            return
        if len(self._warned) > 1000:
            self._warned.clear()
        self._warned.add(text)
        log.warning("%s", text, exc_info=log.isEnabledFor(logging.DEBUG))

    def _report(self) -> None:
        """Log what happened since the last report, if anything did."""
        counts, now = self.stats.counts(), time.monotonic()
        delta = {k: counts[k] - self._reported[k] for k in counts}
        elapsed = now - self._reported_at
        self._reported, self._reported_at = counts, now
        lags = sorted(self._interval_lags)
        self._interval_lags.clear()
        if not any(delta.values()):
            return
        running = len(self.app.executor.running_ids())
        summary = ", ".join(f"{k} {v}" for k, v in delta.items() if v)
        if lags:
            summary += (
                f"; lag p50 {_percentile(lags, 0.5):.3f}s p95 {_percentile(lags, 0.95):.3f}s"
                f" max {lags[-1]:.3f}s"
            )
        log.info(
            "last %.1fs: %s; running %d",
            elapsed,
            summary,
            running,
            extra={"interval_seconds": round(elapsed, 3), "counts": delta, "running": running},
        )

    def _recover(self) -> float | None:
        """Take over orphans; return seconds until another owner's earliest lease runs out."""

        adopted: list[str] = []

        def adopt(orphan: Orphan) -> None:
            with self._lock:
                if orphan.workflow_id in self._mine:
                    return  # its run is still going here (see _launch_claimed)
                adopted.append(orphan.workflow_id)
                self._mine.add(orphan.workflow_id)
                # Taken-over queue work counts against this worker's cap for that queue.
                if orphan.queue_name in self._running:
                    self._running[orphan.queue_name].add(orphan.workflow_id)

        resumed = self.app.executor.recover(
            list(self.app._workflows), before_launch=adopt, patient=True
        )
        launched = {orphan.workflow_id for orphan in resumed}
        with self._lock:
            for workflow_id in adopted:
                if workflow_id not in launched:  # not run after all (see _launch_claimed)
                    self._mine.discard(workflow_id)
                    for running in self._running.values():
                        running.discard(workflow_id)
        if resumed:
            self.stats.recovered += len(resumed)
            if (tel := telemetry.active) is not None:
                tel.recovered(len(resumed))
            log.info("took over %d workflow(s) left by dead or expired owners", len(resumed))
        app = self.app
        expires = app.storage.next_foreign_expiry(app.executor.owner, list(app._workflows))
        soonest = None if expires is None else max((expires - now_ms()) / 1000, 0.0)
        dead_check = getattr(app.storage, "next_dead_check", None)
        judged = dead_check() if dead_check is not None else None  # a free lock to re-check
        if judged is not None:
            soonest = judged if soonest is None else min(soonest, judged)
        return soonest

    def _run_pollers(self) -> float:
        """Call the app's due pollers; return seconds until the next one is due."""
        now = time.monotonic()
        wait = float("inf")
        for index, (fn, every) in enumerate(self.app.pollers):
            due = self._poll_due.get(index, 0.0)
            if now >= due:
                try:
                    fn()
                except DatabaseUnavailableError:
                    raise  # the database is down: the loop backs off
                except Exception as exc:
                    self._warn_once(f"poller {getattr(fn, '__qualname__', fn)} failed", exc)
                due = time.monotonic() + every
                self._poll_due[index] = due
            wait = min(wait, max(due - time.monotonic(), 0.0))
        return wait

    def _fire_schedules(self) -> float:
        """Start the due ticks this worker wins; return seconds until the next tick."""
        if not self.run_schedules or not self.app.schedules:
            return float("inf")
        app, executor = self.app, self.app.executor
        now = now_ms()
        nearest = float("inf")
        for schedule in app.schedules.values():
            won = app.storage.schedule_ticks(
                schedule=schedule.name,
                plan=lambda last, s=schedule: s.plan(last, now_ms()),  # type: ignore[misc]
                make_row=lambda tick, s=schedule: app.schedule_row(s, tick),  # type: ignore[misc]
                owner=executor.owner,
                lease_ms=executor.lease_ms,
            )
            for row in won:
                with self._lock:
                    self._mine.add(row["workflow_id"])
                executor.launch_claimed(row["workflow_id"], schedule.name, row["inputs"])
                self.stats.scheduled += 1
                log.debug(
                    "schedule %s: started %s",
                    schedule.name,
                    row["workflow_id"],
                    extra={"workflow_id": row["workflow_id"], "schedule": schedule.name},
                )
            nearest = min(nearest, (schedule.next_tick(now) - now) / 1000)
        return max(nearest, 0.01)

    def _claim(self) -> float:
        """Claim what the limits allow from each queue; return how long to sleep."""
        app, executor = self.app, self.app.executor
        names = list(app._workflows)
        wait = float("inf")
        for queue in self.queues:
            cap = queue.worker_concurrency or DEFAULT_WORKER_CONCURRENCY
            with self._lock:
                free = cap - len(self._running[queue.name])
            if free <= 0:
                continue
            claimed = app.storage.claim_from_queue(
                owner=executor.owner,
                queue_name=queue.name,
                names=names,
                want=free,
                lease_ms=executor.lease_ms,
                concurrency=queue.concurrency,
                rate_limit=queue.rate_limit,
            )
            now = now_ms()
            for workflow_id, name, inputs, due, replay in claimed:
                with self._lock:
                    tracked = workflow_id in self._mine  # a run of it still going here
                    self._running[queue.name].add(workflow_id)
                    self._mine.add(workflow_id)
                lag = max(now - due, 0) / 1000
                self.stats.claimed += 1
                self.stats.last_lag = lag
                self.stats.lags.append(lag)
                self._interval_lags.append(lag)
                if (tel := telemetry.active) is not None:
                    tel.claimed(queue.name, lag)
                log.debug(
                    "claimed %s (%s) from %s, lag %.3fs",
                    workflow_id,
                    name,
                    queue.name,
                    lag,
                    extra={
                        "workflow_id": workflow_id,
                        "workflow_name": name,
                        "queue": queue.name,
                        "lag_seconds": round(lag, 6),
                    },
                )
                launch = executor.resume_claimed if replay else executor.launch_claimed
                if launch(workflow_id, name, inputs) is None and not tracked:
                    with self._lock:
                        self._running[queue.name].discard(workflow_id)
                        self._mine.discard(workflow_id)
            if queue.rate_limit is not None and len(claimed) < free:
                wait = min(wait, queue.rate_limit[1] / max(queue.rate_limit[0], 1))
        next_due = app.storage.next_due([q.name for q in self.queues]) if self.queues else None
        if next_due is not None:
            wait = min(wait, max((next_due - now_ms()) / 1000, 0.0))
        return wait

    def _finished(self, run: Run) -> None:
        with self._lock:
            if run.workflow_id not in self._mine:
                return  # started in this process by someone else (``app.start``)
            newer = self.app.executor.local_run(run.workflow_id)
            if newer is not None and newer is not run:
                return  # a stopped run's successor already runs it: that one counts
            self._mine.discard(run.workflow_id)
            for running in self._running.values():
                running.discard(run.workflow_id)
        status = run.outcome.status if run.outcome is not None else "interrupted"
        if status == "succeeded":
            self.stats.succeeded += 1
            log.debug(
                "finished %s: succeeded",
                run.workflow_id,
                extra={"workflow_id": run.workflow_id, "workflow_name": run.name},
            )
        elif status == "failed":
            self.stats.failed += 1
            error = run.outcome.error if run.outcome is not None else None
            error = error or {}
            log.warning(
                "finished %s (%s): failed: %s: %s",
                run.workflow_id,
                run.name,
                error.get("type", "error"),
                error.get("message"),
                extra={
                    "workflow_id": run.workflow_id,
                    "workflow_name": run.name,
                    "error_type": error.get("type", "error"),
                },
            )
        else:
            self.stats.interrupted += 1
        self._wake.set()

    def _shutdown(self) -> None:
        executor = self.app.executor
        if self.pruner is not None:
            self.pruner.stop()
        if (tel := telemetry.active) is not None and self.app._storage is not None:
            tel.unwatch_queues(self.app._storage)

        def mine() -> list[str]:
            with self._lock:
                return list(self._mine)

        began = time.monotonic()  # shutdown_grace is read again: a second signal ends it
        while mine() and time.monotonic() < began + self.shutdown_grace:
            time.sleep(0.05)
        left = mine()  # workflows others started in this process are not ours to release
        if left:
            for workflow_id in left:  # keep the last finished step of each, if it is held back
                run = executor.local_run(workflow_id)
                if run is not None:
                    executor.flush(run, quiet=True)
            try:
                released = self.app.storage.release(executor.owner, left)
                log.info("released %d running workflow(s) for other workers", released)
            except DurableError as exc:
                log.warning("could not release running workflows: %s", exc)
            for workflow_id in left:
                run = executor.local_run(workflow_id)
                if run is not None:
                    run.interrupt("the worker is shutting down")
        if self._finished in executor.on_finished:
            executor.on_finished.remove(self._finished)
        if self._registered:
            with contextlib.suppress(Exception):
                registry.unregister(self.app.storage, executor.owner)
        self._report()
        log.info("worker %s stopped", executor.owner)
