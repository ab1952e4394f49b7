"""The engine: runs workflows, replays their steps, retries, sleeps and keeps leases.

It sits between the public decorators (:mod:`toolkit.app`) and the SQL
(:mod:`toolkit.storage`). A workflow runs in a thread of this process (an
``async def`` workflow in its own event loop in that thread). Its context,
kept in a context variable, numbers the steps it calls; each step's outcome is
checkpointed before the workflow goes on, and on replay recorded outcomes are
returned instead of running the step again.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import functools
import inspect
import json
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import telemetry
from .appdb import AppDatabase
from .errors import (
    DatabaseUnavailableError,
    DeterminismError,
    DurableError,
    RecoveryLimitError,
    RetriesExhausted,
    SerializationError,
    StepFailedError,
    TransactionConnectionLost,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowInterrupted,
    WorkflowNotFoundError,
)
from .records import StepRecord, error_info
from .retry import RetryPolicy, short_repr
from .serialization import Serializer
from .storage import Storage, now_ms
from .storage.base import SET_EVENT_STEP, Orphan

log = logging.getLogger("toolkit")

T = TypeVar("T")

SLEEP_STEP = "toolkit.sleep"
IDLE_THREAD_SECONDS = 10.0
"""How long a workflow thread whose run ended waits for another run before it exits."""
RECENT_OUTCOMES = 1024
"""Outcomes of workflows that succeeded in this process kept for ``wait`` (no read)."""
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


# -- declarations ------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowDef:
    """A registered workflow function."""

    fn: Callable[..., Any]
    name: str
    is_async: bool


@dataclass(frozen=True)
class StepDef:
    """A declared step (``kind="step"``) or transaction (``kind="transaction"``)."""

    fn: Callable[..., Any]
    name: str
    policy: RetryPolicy
    is_async: bool
    kind: str = "step"


@dataclass(frozen=True)
class StepInfo:
    """What a running step knows about itself (see :func:`toolkit.current_step`).

    ``idempotency_key`` is ``"<workflow_id>:<step_number>"`` inside a workflow: the
    same on every attempt and on every replay. Outside a workflow it is a random
    key that stays the same across the retries of that one call.

    ``args`` and ``kwargs`` are the step's arguments as its caller passed them
    (``self`` first for a method): the same objects on every attempt, so a
    ``RetryPolicy`` hook can name what the call was about (backoff's
    ``details['args']``).
    """

    name: str
    workflow_id: str | None
    step_number: int | None
    attempt: int
    idempotency_key: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


_run_var: contextvars.ContextVar[Run | None] = contextvars.ContextVar("durable_run", default=None)
_step_var: contextvars.ContextVar[StepInfo | None] = contextvars.ContextVar(
    "durable_step", default=None
)


def current_step() -> StepInfo:
    """The step that is running now. Raises :class:`DurableError` outside a step."""
    info = _step_var.get()
    if info is None:
        raise DurableError("current_step() was called outside a step")
    return info


def current_workflow_id() -> str | None:
    """The id of the workflow running in this context, or ``None``."""
    run = _run_var.get()
    return run.workflow_id if run is not None else None


# -- one execution of a workflow -----------------------------------------------------


@dataclass
class Outcome:
    status: str  # succeeded | failed | cancelled | interrupted
    value: Any = None
    error: dict[str, str] | None = None


@dataclass
class Run:
    """One execution of a workflow in this process, fresh or replaying."""

    executor: Executor
    workflow_id: str
    name: str
    recorded: dict[int, StepRecord]
    next_number: int = 0
    interrupted: threading.Event = field(default_factory=threading.Event)
    lost: bool = False
    """Interrupted because it is no longer ours (cancelled or taken over): nothing to release."""
    reason: str = ""
    wf_key: int | None = None
    """The workflow's integer key, read once when an app-database transaction needs it."""
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    """Checkpoints of steps that ran last, not written yet (see ``Executor.flush``);
    more than one only when steps run concurrently (``asyncio.gather``)."""
    writing: threading.Lock = field(default_factory=threading.Lock)
    """Held while held-back checkpoints are written, so ``cancel`` waits for them."""

    def take_step_number(self) -> int:
        if self.pending:  # anything durable the workflow does next comes after them
            self.executor.flush(self)
        self.next_number += 1
        return self.next_number

    def interrupt(self, reason: str, lost: bool = False) -> None:
        self.reason = reason
        self.lost = self.lost or lost
        self.interrupted.set()

    def check(self) -> None:
        if self.interrupted.is_set():
            raise WorkflowInterrupted(f"workflow {self.workflow_id!r}: {self.reason}")

    def wait_until(self, deadline_ms: int | None) -> None:
        """Sleep until ``deadline_ms``; wake early and stop if interrupted."""
        while deadline_ms is not None:
            remaining = (deadline_ms - now_ms()) / 1000
            if remaining <= 0:
                break
            self.interrupted.wait(remaining)
            self.check()
        self.check()

    async def wait_until_async(self, deadline_ms: int | None) -> None:
        while deadline_ms is not None:
            remaining = (deadline_ms - now_ms()) / 1000
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, 0.25))
            self.check()
        self.check()


@dataclass
class _Attempt:
    number: int  # step number in the workflow
    attempt: int  # 1-based attempt about to run
    started_at: int  # ms, first attempt
    wait_until: int | None = None  # ms, when the next attempt may start


class _NotYet(Exception):
    """An internal step is not ready yet (rolls its transaction back)."""


class _Refused(Exception):
    """A checkpoint was refused inside a transaction (rolls the transaction back)."""


class _Rejected(Exception):
    """A transaction's result that ``retry_on_result`` rejected (rolls the attempt back)."""

    def __init__(self, result: Any) -> None:
        self.result = result


class _HookFailed(Exception):
    """``retry_on_result`` raised inside a transaction: rolls it back and ends the step."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def reject_in_transaction(policy: RetryPolicy, result: Any) -> Any:
    """Return ``result``, or raise (rolling the open transaction back) when
    ``policy.retry_on_result`` rejects it: a rejected attempt writes nothing."""
    try:
        rejected = policy.rejects(result)
    except Exception as exc:
        raise _HookFailed(exc) from exc
    if rejected:
        raise _Rejected(result)
    return result


def _attempt_error(exc: BaseException | None, result: Any) -> str:
    """The recorded error of a failed attempt (an exception, or a rejected result)."""
    if exc is not None:
        return json.dumps(error_info(exc, traceback.format_exc()))
    message = f"retry_on_result matched the result {short_repr(result)}"
    return json.dumps({"type": "retry_on_result", "message": message, "traceback": ""})


LOST_CONNECTION_LIMIT = 5
"""A transaction whose connection is lost this many times in a row, while the database
answers the reads in between, fails its attempt: the transaction itself is the cause
(MySQL drops the connection of a packet above ``max_allowed_packet``), not an outage."""


def _lost_again(step: StepDef, lost: DatabaseUnavailableError) -> TransactionConnectionLost:
    return TransactionConnectionLost(
        f"transaction {step.name!r} lost its database connection {LOST_CONNECTION_LIMIT} "
        f"times in a row while the database answered other statements (a value above the "
        f"server's packet limit?): {lost}"
    )


def _rebuild_error(record: StepRecord) -> BaseException:
    """The exception of a recorded failed step: builtin types rebuilt, others wrapped."""
    err = record.error or {}
    type_name, message = err.get("type", ""), err.get("message", "")
    if type_name == "toolkit.errors.RetriesExhausted":  # raised again as the same type
        exhausted = RetriesExhausted(record.name, record.attempts)
        exhausted.args = (message,)
        return exhausted
    cls = getattr(builtins, type_name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:
            pass
    return StepFailedError(record.name, type_name, message)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)


class _Threads:
    """Threads for workflow runs, without limit: a thread whose run ended waits a while
    for the next one, since handing a run over costs far less than starting a thread.

    Each run gets a fresh context (as a new thread would); thread-local data of
    libraries may outlive a run on its thread, as in any thread pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_IdleThread] = []

    def submit(self, job: Callable[[], None], name: str) -> None:
        with self._lock:
            idle = self._idle.pop() if self._idle else None
        if idle is not None:
            idle.job = (job, name)
            idle.wake.set()
            return
        threading.Thread(target=self._loop, args=(job, name), name=name, daemon=True).start()

    def _loop(self, job: Callable[[], None], name: str) -> None:
        me = _IdleThread()
        thread = threading.current_thread()
        while True:
            thread.name = name
            contextvars.Context().run(job)
            me.job = None
            me.wake.clear()
            with self._lock:
                self._idle.append(me)
            if not me.wake.wait(IDLE_THREAD_SECONDS):
                with self._lock:
                    if me in self._idle:  # nobody handed us a run: exit
                        self._idle.remove(me)
                        return
                me.wake.wait()  # a run was handed over just as we gave up waiting
            assert me.job is not None
            job, name = me.job


@dataclass
class _IdleThread:
    wake: threading.Event = field(default_factory=threading.Event)
    job: tuple[Callable[[], None], str] | None = None


# -- the executor ------------------------------------------------------------------------


class Executor:
    """Runs workflows of one application in this process and keeps their leases."""

    def __init__(
        self,
        storage: Storage,
        serializer: Serializer,
        lease_timeout: float,
        resolve: Callable[[str], WorkflowDef | None],
        max_recoveries: int | None = None,
        app_db: AppDatabase | None = None,
    ) -> None:
        self.storage = storage
        self.app_db = app_db
        """The app database of ``@transaction`` steps when it is not the state store."""
        self.max_recoveries = max_recoveries
        self.serializer = serializer
        self.lease_ms = max(int(lease_timeout * 1000), 1)
        self.resolve = resolve
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._alive = False
        self._stopping = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.on_finished: list[Callable[[Run], None]] = []
        self._succeeded: dict[str, Outcome] = {}
        self._threads = _Threads()
        # After an outage, live peers need one heartbeat to take their liveness lock
        # again: judge nobody dead or expired before that (see DatabaseHealth.settled).
        storage.health.settle_seconds = max(2.0, self.lease_ms / 3000 + 1.0)

    # -- lifecycle --

    def ensure_alive(self) -> None:
        """Connect, upgrade the schema if needed, take the liveness lock, start the heartbeat."""
        if self._alive:
            return
        with self._lock:
            if self._alive:
                return
            self.storage.ensure_ready()
            if self.app_db is not None:
                self.app_db.check()
            self.storage.acquire_executor_lock(self.owner)
            self._heartbeat = threading.Thread(
                target=self._heartbeat_loop, name="durable-heartbeat", daemon=True
            )
            self._heartbeat.start()
            if hasattr(self.storage, "lock_alive"):  # a liveness session to watch
                threading.Thread(
                    target=self._liveness_loop, name="durable-liveness", daemon=True
                ).start()
            self._alive = True

    def stop(self) -> None:
        self._stopping.set()
        for run in list(self._runs.values()):
            run.interrupt("the executor is stopping")

    def _heartbeat_loop(self) -> None:
        """Renew this process's leases and liveness lock until it stops; never dies.

        While the database is unavailable it retries every half second, so that
        leases are back within a second of the database's return (the liveness
        lock is watched by its own thread, see ``_liveness_loop``).
        """
        interval = max(self.lease_ms / 3000, 0.05)
        wait = interval
        while not self._stopping.wait(wait):
            running = list(self._runs)
            try:
                lost = self.storage.heartbeat(self.owner, self.lease_ms, running)
            except DatabaseUnavailableError:
                wait = min(interval, 0.5)  # logged once per outage by the storage's health
                continue
            except Exception as exc:  # unexpected: say so once per kind, keep beating
                log.warning("heartbeat failed (will retry): %s: %s", type(exc).__name__, exc)
                wait = min(interval, 0.5)
                continue
            wait = interval
            for workflow_id in lost:
                run = self._runs.get(workflow_id)
                if run is not None:
                    run.interrupt("it was cancelled or taken over by another process", lost=True)

    def _liveness_loop(self) -> None:
        """Check the liveness session every second and take the lock again if it was lost.

        Its own thread: a stalled session (a half-open connection) blocks this check,
        never the lease renewals of the heartbeat; peers then still see the lock held.
        """
        wait = min(max(self.lease_ms / 3000, 0.05), 1.0)
        while not self._stopping.wait(wait):
            try:
                self._reacquire_liveness()
            except DatabaseUnavailableError:
                pass  # logged once per outage by the storage's health
            except Exception as exc:  # unexpected: say so, keep watching
                log.warning("liveness check failed (will retry): %s: %s", type(exc).__name__, exc)

    def _reacquire_liveness(self) -> None:
        """Take the liveness lock again if its session was lost (database restart,
        killed connection); peers may have lost theirs too, so the health waits
        before anyone is judged dead."""
        lock_alive = getattr(self.storage, "lock_alive", None)
        if lock_alive is not None and not lock_alive():
            self.storage.acquire_executor_lock(self.owner)
            self.storage.health.session_lost()

    # -- starting and recovering --

    def encode_inputs(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        try:
            return self.serializer.dumps({"args": list(args), "kwargs": kwargs})
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"the inputs of workflow {name!r} cannot be serialized: {exc}"
            ) from exc

    def decode_inputs(self, workflow_id: str, text: str | None) -> tuple[list[Any], dict[str, Any]]:
        try:
            data = self.serializer.loads(text) if text else {}
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"the recorded inputs of workflow {workflow_id!r} cannot be read back: {exc}"
            ) from exc
        return list(data.get("args", [])), dict(data.get("kwargs", {}))

    def start(self, wf: WorkflowDef, workflow_id: str, inputs: str) -> bool:
        """Record and run a new workflow; ``False`` if the id was already taken."""
        self.ensure_alive()
        inserted = self.storage.insert_workflow(
            workflow_id=workflow_id,
            name=wf.name,
            inputs=inputs,
            status="pending",
            owner=self.owner,
            lease_ms=self.lease_ms,
        )
        if inserted:
            args, kwargs = self.decode_inputs(workflow_id, inputs)
            self.launch(wf, workflow_id, args, kwargs, recorded={})
        return inserted

    def recover(
        self,
        names: list[str],
        before_launch: Callable[[Orphan], None] | None = None,
        patient: bool = False,
    ) -> list[Orphan]:
        """Take over and resume every pending workflow that no live process runs.

        Right after a database outage (or a lost liveness session) only unowned
        workflows and this process's own are taken: other owners get time to
        reconnect first, so a live process never loses its work to an outage.
        """
        self.ensure_alive()
        foreign = self.storage.health.settled
        resumed = []
        orphans = self.storage.claim_orphans(
            self.owner, names, self.lease_ms, foreign=foreign, patient=patient
        )
        for orphan in orphans:
            if self.max_recoveries is not None and orphan.recoveries > self.max_recoveries:
                self._give_up_poison(orphan.workflow_id, orphan.name, orphan.recoveries)
                continue
            if before_launch is not None:
                before_launch(orphan)
            if self.resume_claimed(orphan.workflow_id, orphan.name, orphan.inputs) is not None:
                resumed.append(orphan)
        return resumed

    def _give_up_poison(self, workflow_id: str, name: str, recoveries: int) -> None:
        """Fail a workflow whose runs keep dying with their process, instead of running it again."""
        message = (
            f"the process running workflow {workflow_id!r} ({name}) died {recoveries} times; "
            f"max_recoveries is {self.max_recoveries}. Fix the cause, then "
            "`durable workflows resume` it"
        )
        log.error("%s", message)
        error = error_info(RecoveryLimitError(message), "")
        self._finish(workflow_id, "failed", None, error)

    def resume_claimed(self, workflow_id: str, name: str, inputs: str | None) -> Run | None:
        """Run a workflow this process has just claimed, replaying its recorded steps."""
        return self._launch_claimed(workflow_id, name, inputs, replay=True)

    def launch_claimed(self, workflow_id: str, name: str, inputs: str | None) -> Run | None:
        """Run a workflow just claimed from a queue or a schedule: it has no steps yet."""
        return self._launch_claimed(workflow_id, name, inputs, replay=False)

    def _launch_claimed(
        self, workflow_id: str, name: str, inputs: str | None, replay: bool
    ) -> Run | None:
        wf = self.resolve(name)
        if wf is None:  # claimed by name, so this only happens if the registry changed
            log.error("workflow %s (%s) is not registered here", workflow_id, name)
            return None
        current = self._runs.get(workflow_id)
        if current is not None and not current.done.is_set():
            # Never two runs of one workflow at once here: their checkpoints share this owner.
            if not current.interrupted.is_set():
                return None  # our own run, alive: the claim only renewed its lease
            # A cancelled run is still finishing its step: leave it for a later pass.
            log.info("workflow %s is still stopping here; it is left for a later pass", workflow_id)
            try:
                self.storage.release(self.owner, [workflow_id])
            except DurableError as exc:
                log.warning("could not release %s, its lease will expire: %s", workflow_id, exc)
            return None
        try:
            args, kwargs = self.decode_inputs(workflow_id, inputs)
            recorded = self.storage.load_steps(workflow_id) if replay else {}
        except DatabaseUnavailableError:
            raise  # nothing is wrong with the workflow: its lease expires, it is claimed again
        except DurableError as exc:  # e.g. inputs that cannot be decoded: fail, not retry
            self._finish(workflow_id, "failed", None, error_info(exc, ""))
            return None
        return self.launch(wf, workflow_id, args, kwargs, recorded)

    def launch(
        self,
        wf: WorkflowDef,
        workflow_id: str,
        args: list[Any] | tuple[Any, ...],
        kwargs: dict[str, Any],
        recorded: dict[int, StepRecord],
    ) -> Run:
        run = Run(self, workflow_id, wf.name, recorded)
        if (tel := telemetry.active) is not None:  # a span link to the caller's span
            tel.remember_caller(run)
        with self._lock:
            self._runs[workflow_id] = run
        self._threads.submit(
            functools.partial(self._execute, run, wf, args, kwargs),
            f"durable-workflow-{workflow_id}",
        )
        return run

    def local_run(self, workflow_id: str) -> Run | None:
        return self._runs.get(workflow_id)

    def stopping_here(self, workflow_id: str) -> bool:
        """A run of this workflow is still going in this process (e.g. cancelled, its
        current step not yet returned)."""
        run = self._runs.get(workflow_id)
        return run is not None and not run.done.is_set()

    def running_ids(self) -> list[str]:
        return list(self._runs)

    # -- running a workflow --

    def _execute(
        self, run: Run, wf: WorkflowDef, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        token = _run_var.set(run)
        tel = telemetry.active
        traced = tel.run_started(run) if tel is not None else None
        try:
            try:
                if wf.is_async:
                    value = asyncio.run(wf.fn(*args, **kwargs))
                else:
                    value = wf.fn(*args, **kwargs)
            except WorkflowInterrupted as exc:
                log.info("%s", exc)
                run.outcome = Outcome("interrupted")
                self._give_up(run)
                return
            except Exception as exc:  # the workflow failed: record why
                info = error_info(exc, traceback.format_exc())
                run.outcome = self._finish(run.workflow_id, "failed", None, info, run=run)
                return
            try:
                output = self.serializer.dumps(value)
            except (TypeError, ValueError) as exc:
                err = SerializationError(
                    f"workflow {run.name!r} ({run.workflow_id!r}) returned a value that "
                    f"cannot be serialized: {exc}"
                )
                info = error_info(err, traceback.format_exc())
                run.outcome = self._finish(run.workflow_id, "failed", None, info, run=run)
                return
            run.outcome = self._finish(run.workflow_id, "succeeded", output, None, run=run)
            if run.outcome.status == "succeeded":
                run.outcome.value = self.serializer.loads(output)
        except DatabaseUnavailableError as exc:
            log.error("workflow %s stopped, the database is unavailable: %s", run.workflow_id, exc)
            run.outcome = Outcome("interrupted")
            self._give_up(run)
        except WorkflowInterrupted as exc:  # stopped while its end waited for the database
            log.info("%s", exc)
            run.outcome = Outcome("interrupted")
            self._give_up(run)
        except BaseException:
            run.outcome = Outcome("interrupted")
            raise
        finally:
            if tel is not None and traced is not None:
                tel.run_ended(traced, run)
            _run_var.reset(token)
            with self._lock:
                self._runs.pop(run.workflow_id, None)
                if run.outcome is not None and run.outcome.status == "succeeded":
                    # A caller that asks after the run ended gets it without a read.
                    self._succeeded[run.workflow_id] = run.outcome
                    if len(self._succeeded) > RECENT_OUTCOMES:
                        del self._succeeded[next(iter(self._succeeded))]
            run.done.set()
            for listener in list(self.on_finished):
                listener(run)

    def _give_up(self, run: Run) -> None:
        """Release a workflow this process stopped running, so that it is taken over at once.

        Best effort: if the database cannot be reached, the lease (no longer
        renewed for this run) expires instead.
        """
        with contextlib.suppress(DurableError, WorkflowInterrupted):
            self.flush(run)  # keep the last step's outcome if we still may
        if run.lost:
            return  # cancelled or taken over: releasing could drop a newer claim of ours
        try:
            self.storage.release(self.owner, [run.workflow_id])
        except DurableError as exc:
            log.warning("could not release %s, its lease will expire: %s", run.workflow_id, exc)

    def _finish(
        self,
        workflow_id: str,
        status: str,
        output: str | None,
        error: dict[str, str] | None,
        run: Run | None = None,
    ) -> Outcome:
        """End the workflow; a held-back checkpoint of its last step commits with it."""
        error_text = json.dumps(error) if error is not None else None
        if run is None:
            return self._end(workflow_id, status, output, error, error_text, None)
        with run.writing:
            step = None
            if run.pending:
                *earlier, step = run.pending
                run.pending.clear()
                for params in earlier:
                    if not self._write(
                        run,
                        functools.partial(self.storage.record_step, params),
                        functools.partial(self._step_recorded, run, params),
                    ):
                        return Outcome("interrupted")

            def end() -> bool:
                return self.storage.finish_workflow(
                    workflow_id, self.owner, status, output, error_text, step=step
                )

            def ended() -> bool:
                record = self.storage.get_workflow(workflow_id)
                return record is not None and record.status == status

            if self._write(run, end, ended):
                return Outcome(status, error=error)
            return Outcome("interrupted")

    def _end(
        self,
        workflow_id: str,
        status: str,
        output: str | None,
        error: dict[str, str] | None,
        error_text: str | None,
        step: dict[str, Any] | None,
    ) -> Outcome:
        if self.storage.finish_workflow(
            workflow_id, self.owner, status, output, error_text, step=step
        ):
            return Outcome(status, error=error)
        return Outcome("interrupted")

    def flush(self, run: Run, quiet: bool = False) -> None:
        """Write the held-back checkpoint of the step that ran last.

        A step's checkpoint is held back until the workflow's next durable act
        (a step, transaction, sleep, message, event or child workflow numbers
        itself first, see ``Run.take_step_number``) or its end, where it commits
        in the same statement as the end. Only deterministic workflow code runs
        in between, so a crash there re-runs that one step on recovery, which
        its at-least-once promise allows; a step never runs before the
        checkpoint of the step before it is durable.

        ``quiet`` (another thread, e.g. ``cancel`` in this process): write what
        may still be written, raise nothing, and give up after a few seconds if the
        run's own thread is busy writing (it may be waiting out a database outage).
        """
        if quiet:
            if not run.writing.acquire(timeout=5.0):
                return
            try:
                while run.pending:
                    params = run.pending.pop(0)
                    with contextlib.suppress(DurableError):
                        self.storage.record_step(params)
            finally:
                run.writing.release()
            return
        with run.writing:
            while run.pending:
                self._checkpoint(run, run.pending.pop(0))

    # -- steps --

    def _begin(self, run: Run, name: str) -> tuple[bool, Any, _Attempt]:
        """Number the step; return (replayed, recorded value, attempt state)."""
        number = run.take_step_number()
        record = run.recorded.get(number)
        if record is None:
            run.check()
            return False, None, _Attempt(number, 1, now_ms())
        if record.name != name:
            raise DeterminismError(run.workflow_id, number, record.name, name)
        if record.status == "succeeded":
            # Internal values (a sleep's wake-up time) are plain text, not user values.
            value = int(record.output or 0) if name == SLEEP_STEP else self._load(run, record)
            return True, value, _Attempt(number, record.attempts, 0)
        if record.status == "failed":
            raise _rebuild_error(record)
        run.check()
        started = int(record.started_at.timestamp() * 1000) if record.started_at else now_ms()
        return False, None, _Attempt(number, record.attempts + 1, started, record.next_attempt_ms)

    def _load(self, run: Run, record: StepRecord) -> Any:
        try:
            return self.serializer.loads(record.output) if record.output is not None else None
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"the recorded output of step {record.step_number} ({record.name!r}) of workflow "
                f"{run.workflow_id!r} cannot be read back: {exc}"
            ) from exc

    def _params(
        self,
        run: Run,
        name: str,
        state: _Attempt,
        status: str,
        output: str | None = None,
        error: str | None = None,
        next_attempt_at: int | None = None,
    ) -> dict[str, Any]:
        if (tel := telemetry.active) is not None:
            tel.step_outcome(name, status)
        return self.storage.step_params(
            workflow_id=run.workflow_id,
            owner=self.owner,
            step_number=state.number,
            name=name,
            status=status,
            attempts=state.attempt,
            output=output,
            error=error,
            started_at=state.started_at,
            next_attempt_at=next_attempt_at,
        )

    def _checkpoint(self, run: Run, params: dict[str, Any]) -> None:
        accepted = self._write(
            run,
            functools.partial(self.storage.record_step, params),
            functools.partial(self._step_recorded, run, params),
        )
        if not accepted:
            run.interrupt("it was cancelled or taken over by another process", lost=True)
            run.check()

    # -- database outages: a run waits for the database, its code never sees them --

    def _wait_out_outage(self, run: Run, tries: int) -> None:
        """Wait before trying a write of ``run`` again (at most a second: work resumes
        within a second of the database's return); stop if the run is interrupted."""
        run.interrupted.wait(min(0.05 * 2**tries, 1.0))
        run.check()

    def wait_for_database(self, run: Run, call: Callable[[], T]) -> T:
        """``call()`` on behalf of ``run``, retried until the database answers (so the
        workflow's code never sees an outage); ``call`` must be safe to repeat."""
        tries = 0
        while True:
            try:
                return call()
            except DatabaseUnavailableError:
                tries += 1
                self._wait_out_outage(run, tries)

    def _write(self, run: Run, write: Callable[[], bool], confirm: Callable[[], bool]) -> bool:
        """A write of ``run``'s state, retried until the database answers; ``False`` when
        it was refused (the run is no longer ours).

        After a lost connection the first try may have committed unseen, so a later
        refusal is checked with ``confirm`` (a read of what is recorded) before it
        counts as one.
        """
        uncertain = False
        tries = 0
        while True:
            try:
                if write():
                    return True
                return uncertain and self.wait_for_database(run, confirm)
            except DatabaseUnavailableError:
                uncertain = True
                tries += 1
                self._wait_out_outage(run, tries)

    def _step_recorded(self, run: Run, params: dict[str, Any]) -> bool:
        """Whether exactly this checkpoint is recorded, on a workflow this process still runs."""
        record = self.storage.get_workflow(run.workflow_id)
        if record is None or record.status != "pending" or record.owner != self.owner:
            return False
        step = self.storage.load_steps(run.workflow_id).get(params["step_number"])
        return (
            step is not None
            and step.name == params["name"]
            and step.status == params["status"]
            and step.attempts == params["attempts"]
        )

    def _committed_output(self, run: Run, number: int, name: str) -> StepRecord | None:
        """The succeeded record of step ``number`` if a transaction whose commit was not
        acknowledged did commit (read once the database answers again)."""
        load = functools.partial(self.storage.load_steps, run.workflow_id)
        steps = self.wait_for_database(run, load)
        record = steps.get(number)
        if record is not None and record.status == "succeeded" and record.name == name:
            return record
        return None

    def _serialize_output(
        self, run: Run, step: StepDef, state: _Attempt, value: Any, source: str = ""
    ) -> str:
        try:
            return self.serializer.dumps(value)
        except (TypeError, ValueError) as exc:
            err = SerializationError(
                f"{step.kind} {step.name!r} (step {state.number} of workflow "
                f"{run.workflow_id!r}){source} returned a value that cannot be serialized: {exc}"
            )
            self._checkpoint(
                run,
                self._params(
                    run,
                    step.name,
                    state,
                    "failed",
                    error=json.dumps(error_info(err, "")),
                ),
            )
            raise err from exc

    def _after_failure(
        self,
        run: Run,
        step: StepDef,
        state: _Attempt,
        exc: Exception | None,
        result: Any = None,
    ) -> tuple[bool, Any]:
        """Record a failed attempt: it raised ``exc``, or (``exc=None``) returned
        ``result``, which ``retry_on_result`` rejected. The policy decides.

        Returns ``(False, None)`` when another attempt follows (at
        ``state.wait_until``; ``before_retry`` has run, live only: replay never
        reruns past attempts) or ``(True, value)`` when ``on_give_up`` supplied the
        step's result (checkpointed as its output); else records the step as
        failed and raises.
        """
        policy = step.policy
        elapsed = (now_ms() - state.started_at) / 1000
        try:
            decision = policy.decide(step.name, state.attempt, elapsed, exc, result)
            if decision.retry:
                policy.prepare_retry(decision)
            else:
                value = policy.give_up(decision)
        except Exception as end:
            error = json.dumps(error_info(end, traceback.format_exc()))
            self._checkpoint(run, self._params(run, step.name, state, "failed", error=error))
            raise
        if not decision.retry:
            output = self._serialize_output(run, step, state, value, "'s on_give_up")
            run.pending.append(self._params(run, step.name, state, "succeeded", output=output))
            return True, self.serializer.loads(output)
        delay = decision.state.delay or 0.0
        wake = now_ms() + int(delay * 1000)
        error = _attempt_error(exc, result)
        self._checkpoint(
            run, self._params(run, step.name, state, "retrying", error=error, next_attempt_at=wake)
        )
        log.warning(
            "step %s of workflow %s %s (attempt %d), retrying in %.3fs: %s",
            step.name,
            run.workflow_id,
            "failed" if exc is not None else "returned a value retry_on_result rejects",
            state.attempt,
            delay,
            repr(exc) if exc is not None else short_repr(result),
        )
        state.wait_until = wake
        state.attempt += 1
        return False, None

    def _after_result(
        self, run: Run, step: StepDef, state: _Attempt, result: Any
    ) -> tuple[bool, Any]:
        """An attempt returned ``result``: the step's value, unless ``retry_on_result``
        rejects it (then as :meth:`_after_failure`)."""
        try:
            rejected = step.policy.rejects(result)
        except Exception as end:
            error = json.dumps(error_info(end, traceback.format_exc()))
            self._checkpoint(run, self._params(run, step.name, state, "failed", error=error))
            raise
        if rejected:
            return self._after_failure(run, step, state, None, result)
        output = self._serialize_output(run, step, state, result)
        run.pending.append(self._params(run, step.name, state, "succeeded", output=output))
        return True, self.serializer.loads(output)

    def _info(
        self,
        run: Run,
        step: StepDef,
        state: _Attempt,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> StepInfo:
        return StepInfo(
            step.name,
            run.workflow_id,
            state.number,
            state.attempt,
            f"{run.workflow_id}:{state.number}",
            args,
            kwargs,
        )

    def run_step(
        self, run: Run, step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        replayed, value, state = self._begin(run, step.name)
        if replayed:
            return value
        while True:
            run.wait_until(state.wait_until)
            token = _step_var.set(self._info(run, step, state, args, kwargs))
            try:  # the policy's hooks run in the step's context too
                try:
                    if (tel := telemetry.active) is None:
                        result = step.fn(*args, **kwargs)
                    else:  # the attempt in its span
                        result = tel.call_step(run, step, state, args, kwargs)
                except Exception as exc:
                    done, value = self._after_failure(run, step, state, exc)
                else:
                    done, value = self._after_result(run, step, state, result)
            finally:
                _step_var.reset(token)
            if done:
                return value

    async def run_step_async(
        self, run: Run, step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        replayed, value, state = self._begin(run, step.name)
        if replayed:
            return value
        while True:
            await run.wait_until_async(state.wait_until)
            token = _step_var.set(self._info(run, step, state, args, kwargs))
            try:  # the policy's hooks run in the step's context too
                try:
                    if (tel := telemetry.active) is None:
                        result = await step.fn(*args, **kwargs)
                    else:  # the attempt in its span
                        result = await tel.call_step_async(run, step, state, args, kwargs)
                except Exception as exc:
                    done, value = self._after_failure(run, step, state, exc)
                else:
                    done, value = self._after_result(run, step, state, result)
            finally:
                _step_var.reset(token)
            if done:
                return value

    def run_transaction(
        self, run: Run, step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run a transaction step: its writes and its checkpoint commit together.

        On the state store, the writes and the step's record commit in one
        transaction. On an app database apart from it, the writes and an outputs
        row commit in one app-database transaction and the checkpoint follows
        (held back like a step's): a run that finds the outputs row (after a crash
        between the two commits, or a takeover) uses it instead of running the
        body again, and two runs racing on the same step cannot both commit: the
        outputs row's key refuses the second, which rolls back.
        """
        replayed, value, state = self._begin(run, step.name)
        if replayed:
            return value
        target: _TransactionTarget
        if self.app_db is not None:
            target = _AppDatabaseTarget(self, run, step, state)
            committed = target.committed()
            if committed is not None:
                return target.result(committed)
        else:
            target = _StateStoreTarget(self, run, step, state)
        outages = 0
        while True:
            run.wait_until(state.wait_until)
            token = _step_var.set(self._info(run, step, state, args, kwargs))
            tel = telemetry.active
            span = tel.transaction_span(run, step, state) if tel else telemetry.NO_SPAN
            try:
                with span, target.transaction() as conn:
                    result = reject_in_transaction(step.policy, step.fn(conn, *args, **kwargs))
                    try:
                        output = self.serializer.dumps(result)
                    except (TypeError, ValueError) as exc:
                        raise SerializationError(
                            f"transaction {step.name!r} (step {state.number} of workflow "
                            f"{run.workflow_id!r}) returned a value that cannot be serialized: "
                            f"{exc}"
                        ) from exc
                    if not target.seal(conn, output):
                        raise _Refused
            except _Refused:
                committed = target.refused()
                if committed is None:  # its commit was rolled back after all: try again
                    continue
                return target.result(committed)
            except SerializationError as exc:
                error = json.dumps(error_info(exc, ""))
                self._checkpoint(run, self._params(run, step.name, state, "failed", error=error))
                raise
            except DatabaseUnavailableError as lost:
                # Not a failed attempt: wait for the database, then see whether the
                # commit went through unacknowledged before running the body again.
                outages += 1
                self._wait_out_outage(run, outages)
                committed = target.committed()
                if committed is not None:
                    return target.result(committed)
                if outages >= LOST_CONNECTION_LIMIT:  # the transaction itself loses it
                    done, value = self._after_failure(run, step, state, _lost_again(step, lost))
                    if done:
                        return value
                    outages = 0
                continue
            except _HookFailed as failed:
                error = json.dumps(error_info(failed.error, traceback.format_exc()))
                self._checkpoint(run, self._params(run, step.name, state, "failed", error=error))
                raise failed.error from None
            except _Rejected as rejected:
                done, value = self._after_failure(run, step, state, None, rejected.result)
                if done:
                    return value
                continue
            except Exception as exc:
                done, value = self._after_failure(run, step, state, exc)
                if done:
                    return value
                continue
            finally:
                _step_var.reset(token)
            return target.result(output)

    def _workflow_key(self, run: Run) -> int:
        if run.wf_key is None:
            key = self.wait_for_database(
                run, functools.partial(self.storage.workflow_key, run.workflow_id)
            )
            if key is None:  # deleted under us
                run.interrupt("its workflow row is gone", lost=True)
                run.check()
            run.wf_key = key
        assert run.wf_key is not None
        return run.wf_key

    def _app_output(self, run: Run, store_id: str, wf_key: int, number: int) -> str | None:
        assert self.app_db is not None
        return self.wait_for_database(
            run, functools.partial(self.app_db.find_output, store_id, wf_key, number)
        )

    def _record_app_output(self, run: Run, step: StepDef, state: _Attempt, output: str) -> Any:
        """Hold back the checkpoint of a committed app transaction (written with the
        workflow's next durable act, like a step's) and return its value."""
        run.pending.append(self._params(run, step.name, state, "succeeded", output=output))
        return self.serializer.loads(output)

    def sleep(self, run: Run, seconds: float) -> None:
        wake = self._sleep_checkpoint(run, seconds)
        run.wait_until(wake)

    async def sleep_async(self, run: Run, seconds: float) -> None:
        wake = self._sleep_checkpoint(run, seconds)
        await run.wait_until_async(wake)

    def _sleep_checkpoint(self, run: Run, seconds: float) -> int:
        """Record the wake-up time once; a replay sleeps only what is left of it."""
        replayed, value, state = self._begin(run, SLEEP_STEP)
        if replayed:
            return int(value)
        wake = now_ms() + int(seconds * 1000)
        self._checkpoint(run, self._params(run, SLEEP_STEP, state, "succeeded", output=str(wake)))
        return wake

    # -- messages and events --

    def _internal_tx(
        self,
        run: Run,
        name: str,
        body: Callable[[Any], tuple[bool, str | None]],
        wait: Callable[[], None] | None = None,
    ) -> Any:
        """An internal step whose effect commits with its checkpoint.

        ``body(conn)`` returns (done, output JSON). When done, the checkpoint is
        written in the same transaction; when not, the transaction is rolled
        back, ``wait()`` is called and ``body`` runs again in a new transaction.
        """
        replayed, value, state = self._begin(run, name)
        if replayed:
            return value
        outages = 0
        while True:
            done, output = False, None
            try:
                with self.storage.transaction() as conn:
                    done, output = body(conn)
                    if not done:
                        raise _NotYet  # roll back whatever body did
                    params = self._params(run, name, state, "succeeded", output=output)
                    if not self.storage.record_step_in(conn, params):
                        raise _Refused
            except _NotYet:
                pass
            except _Refused:
                run.interrupt("it was cancelled or taken over by another process", lost=True)
                run.check()
            except DatabaseUnavailableError:
                outages += 1
                self._wait_out_outage(run, outages)
                committed = self._committed_output(run, state.number, name)
                if committed is not None:
                    return self.serializer.loads(committed.output) if committed.output else None
                continue
            if done:
                return self.serializer.loads(output) if output is not None else None
            assert wait is not None
            wait()
            run.check()

    def send(self, run: Run | None, workflow_id: str, topic: str, value: Any) -> None:
        try:
            text = self.serializer.dumps(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"the message for topic {topic!r} cannot be serialized: {exc}"
            ) from exc
        if run is None:
            self.storage.send_message(workflow_id, topic, text)
            return

        def body(conn: Any) -> tuple[bool, str | None]:
            self.storage.send_message(workflow_id, topic, text, conn=conn)
            return True, None

        self._internal_tx(run, "toolkit.send", body)

    def recv(self, run: Run, topic: str, timeout: float) -> Any:
        """Take the next message of ``topic`` sent to this workflow, or ``None`` on timeout.

        Taking the message and checkpointing it commit together: a message is
        consumed exactly once. The timeout is not durable: after a crash the
        wait starts again.
        """
        deadline = time.monotonic() + timeout
        poll = self.storage.poll_interval

        def body(conn: Any) -> tuple[bool, str | None]:
            found, text = self.storage.take_message(conn, run.workflow_id, topic)
            if found:
                return True, text
            if time.monotonic() >= deadline:
                return True, "null"
            return False, None

        def wait() -> None:
            pause = min(poll, max(deadline - time.monotonic(), 0))
            self.storage.wakeups.wait("inbox", run.workflow_id, pause)

        self.storage.start_listening()
        return self._internal_tx(run, "toolkit.recv", body, wait)

    def set_event(self, run: Run, key: str, value: Any) -> None:
        try:
            text = self.serializer.dumps(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"the value of event {key!r} cannot be serialized: {exc}"
            ) from exc

        def body(conn: Any) -> tuple[bool, str | None]:
            self.storage.set_event(conn, run.workflow_id, key, text)
            return True, None

        self._internal_tx(run, SET_EVENT_STEP, body)

    def get_event(self, run: Run | None, workflow_id: str, key: str, timeout: float) -> Any:
        """The value of another workflow's event, waiting up to ``timeout``; ``None`` if unset."""
        if run is not None:
            replayed, value, state = self._begin(run, "toolkit.get_event")
            if replayed:
                return value
        deadline = time.monotonic() + timeout
        self.storage.start_listening()
        read = functools.partial(self.storage.get_event, workflow_id, key)
        while True:
            found, text = read() if run is None else self.wait_for_database(run, read)
            if found or time.monotonic() >= deadline:
                break
            wait = min(self.storage.poll_interval, max(deadline - time.monotonic(), 0))
            self.storage.wakeups.wait("inbox", workflow_id, wait)
            if run is not None:
                run.check()
        output = text if found else "null"
        if run is not None:
            params = self._params(run, "toolkit.get_event", state, "succeeded", output)
            self._checkpoint(run, params)
        return self.serializer.loads(output) if output is not None else None

    # -- waiting for results --

    def wait(self, workflow_id: str, timeout: float | None) -> Any:
        """The workflow's result once it has ended; raises if it failed or was cancelled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self._runs.get(workflow_id)
        if run is not None:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            run.done.wait(remaining)
            outcome = run.outcome
            if outcome is not None and outcome.status == "succeeded":
                return outcome.value
            if outcome is not None and outcome.status == "failed":
                raise WorkflowFailedError(workflow_id, outcome.error)
        else:
            succeeded = self._succeeded.get(workflow_id)  # a succeeded workflow stays so
            if succeeded is not None:
                return succeeded.value
        delay = 0.005
        caller = active_run()  # a workflow waiting for a child waits out outages too
        read = functools.partial(self.storage.get_workflow, workflow_id)
        while True:
            record = read() if caller is None else self.wait_for_database(caller, read)
            if record is None:
                raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
            if record.status == "succeeded":
                return self.serializer.loads(record.output) if record.output else None
            if record.status == "failed":
                raise WorkflowFailedError(workflow_id, record.error)
            if record.status == "cancelled":
                raise WorkflowCancelledError(workflow_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"workflow {workflow_id!r} did not finish within {timeout}s "
                    f"(status: {record.status})"
                )
            pause = delay if deadline is None else min(delay, max(deadline - time.monotonic(), 0))
            time.sleep(pause)
            delay = min(delay * 1.5, 0.25)


# -- steps outside any workflow ----------------------------------------------------------


def _unrecorded_outcome(
    step: StepDef,
    attempt: int,
    started: float,
    exc: Exception | None,
    result: Any = None,
    rejected: bool = False,
) -> tuple[bool, Any]:
    """After attempt ``attempt`` outside a workflow: ``(True, value)`` to return,
    ``(False, delay)`` to wait and try again; raises to end the step."""
    policy = step.policy
    if exc is None and not rejected and not policy.rejects(result):
        return True, result
    decision = policy.decide(step.name, attempt, time.monotonic() - started, exc, result)
    if not decision.retry:
        return True, policy.give_up(decision)
    policy.prepare_retry(decision)
    delay = decision.state.delay or 0.0
    if exc is not None:
        log.warning(
            "step %s failed (attempt %d), retrying in %.3fs: %r", step.name, attempt, delay, exc
        )
    else:
        log.warning(
            "step %s returned a value retry_on_result rejects (attempt %d), retrying in %.3fs: %s",
            step.name,
            attempt,
            delay,
            short_repr(result),
        )
    return False, delay


def run_unrecorded(step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a step with its retry policy and no checkpoint (outside a workflow)."""
    key = uuid.uuid4().hex
    started = time.monotonic()
    attempt = 1
    while True:
        token = _step_var.set(StepInfo(step.name, None, None, attempt, key, args, kwargs))
        try:  # the policy's hooks run in the step's context too
            try:
                result = step.fn(*args, **kwargs)
            except _HookFailed as failed:
                raise failed.error from None
            except _Rejected as rejected:
                done, value = _unrecorded_outcome(
                    step, attempt, started, None, rejected.result, True
                )
            except Exception as exc:
                done, value = _unrecorded_outcome(step, attempt, started, exc)
            else:
                done, value = _unrecorded_outcome(step, attempt, started, None, result)
        finally:
            _step_var.reset(token)
        if done:
            return value
        time.sleep(value)
        attempt += 1


async def run_unrecorded_async(step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    key = uuid.uuid4().hex
    started = time.monotonic()
    attempt = 1
    while True:
        token = _step_var.set(StepInfo(step.name, None, None, attempt, key, args, kwargs))
        try:  # the policy's hooks run in the step's context too
            try:
                result = await step.fn(*args, **kwargs)
            except Exception as exc:
                done, value = _unrecorded_outcome(step, attempt, started, exc)
            else:
                done, value = _unrecorded_outcome(step, attempt, started, None, result)
        finally:
            _step_var.reset(token)
        if done:
            return value
        await asyncio.sleep(value)
        attempt += 1


def active_run() -> Run | None:
    """The workflow run of this context, unless a step is already running (nested calls)."""
    if _step_var.get() is not None:
        return None
    return _run_var.get()


class _TransactionTarget:
    """Where a transaction step commits its writes, and how its commit is proven.

    :meth:`Executor.run_transaction` runs the one attempt loop; a target says
    which database the body's connection belongs to, what commits with the
    writes (the step's record, or an outputs row), and how to find a commit
    made by a run whose answer was lost.
    """

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def seal(self, conn: Any, output: str) -> bool:
        """Write the proof of commit in ``conn``; ``False``: refused (roll back)."""
        raise NotImplementedError

    def committed(self) -> str | None:
        """The output of this step if some run committed it, else ``None``."""
        raise NotImplementedError

    def refused(self) -> str | None:
        """After :meth:`seal` refused: the output another run committed, or ``None``
        to try again."""
        raise NotImplementedError

    def result(self, output: str) -> Any:
        """The step's value once ``output`` is committed."""
        raise NotImplementedError


class _StateStoreTarget(_TransactionTarget):
    """The writes and the step's record commit in one state-store transaction."""

    def __init__(self, ex: Executor, run: Run, step: StepDef, state: _Attempt) -> None:
        self.ex, self.run, self.step, self.state = ex, run, step, state

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self.ex.storage.transaction()

    def seal(self, conn: Any, output: str) -> bool:
        params = self.ex._params(self.run, self.step.name, self.state, "succeeded", output=output)
        return self.ex.storage.record_step_in(conn, params)

    def committed(self) -> str | None:
        record = self.ex._committed_output(self.run, self.state.number, self.step.name)
        if record is None:
            return None
        return record.output if record.output is not None else self.ex.serializer.dumps(None)

    def refused(self) -> str | None:
        # The record was refused: the workflow was cancelled or another process owns it.
        self.run.interrupt("it was cancelled or taken over by another process", lost=True)
        self.run.check()  # raises
        return None

    def result(self, output: str) -> Any:
        return self.ex.serializer.loads(output)


class _AppDatabaseTarget(_TransactionTarget):
    """The writes and an outputs row commit in one app-database transaction; the
    checkpoint in the state store follows, held back like a step's."""

    def __init__(self, ex: Executor, run: Run, step: StepDef, state: _Attempt) -> None:
        assert ex.app_db is not None
        self.ex, self.run, self.step, self.state = ex, run, step, state
        self.app_db: AppDatabase = ex.app_db
        self.store_id: str = ex.wait_for_database(run, ex.storage.store_id)
        self.wf_key = ex._workflow_key(run)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self.app_db.transaction()

    def seal(self, conn: Any, output: str) -> bool:
        self.run.check()  # cancelled meanwhile: roll back rather than commit
        return self.app_db.insert_output(
            conn, self.store_id, self.wf_key, self.state.number, self.run.workflow_id, output
        )

    def committed(self) -> str | None:
        return self.ex._app_output(self.run, self.store_id, self.wf_key, self.state.number)

    def refused(self) -> str | None:
        return self.committed()  # another run of this step committed: ours rolled back

    def result(self, output: str) -> Any:
        return self.ex._record_app_output(self.run, self.step, self.state, output)
