"""The public application object: declare workflows, steps and transactions, run them.

Nothing here speaks SQL: declarations are handed to the engine
(:mod:`toolkit.engine`), which makes them durable on a storage backend.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from . import telemetry
from .appdb import ENV_VAR as APP_ENV_VAR
from .appdb import AppDatabase, resolve_app_url, same_database
from .engine import (
    Executor,
    StepDef,
    WorkflowDef,
    _is_async,
    _run_var,
    active_run,
    reject_in_transaction,
    run_unrecorded,
    run_unrecorded_async,
)
from .errors import (
    ConfigurationError,
    DurableError,
    NotRegisteredError,
    WorkflowConflictError,
    WorkflowNotFoundError,
)
from .handle import WorkflowHandle
from .ids import new_workflow_id
from .queues import Queue, Schedule
from .records import RESUMABLE_STATUSES, STATUSES, StepRecord, WorkflowRecord
from .retention import PruneCounts, RetentionSpec, normalize_retention, parse_duration
from .retention import prune as prune_finished
from .retry import NO_RETRY, RetryPolicy
from .serialization import JSONSerializer, Serializer
from .storage import Storage, open_storage, resolve_url
from .storage.retention import FINISHED_STATUSES

F = TypeVar("F", bound=Callable[..., Any])


def qualified_name(fn: Callable[..., Any]) -> str:
    """The default registered name of a function: ``module.qualname``."""
    return f"{fn.__module__}.{fn.__qualname__}"


class Durable:
    """A durable-execution application bound to one database.

    ``url`` is a SQLAlchemy URL (``sqlite:///file.db`` or ``postgresql://...``);
    without it ``$DURABLE_DATABASE_URL`` is used, else ``sqlite:///.durable/state.db``.
    A malformed URL fails here; the connection is opened on first use, and an
    unreachable database fails then with :class:`~toolkit.errors.DatabaseUnavailableError`.
    ``lease_timeout`` (seconds) is how long a running workflow stays claimed by a
    process that stopped renewing its lease before another process may take it over.
    ``max_recoveries`` is how many times a workflow may be taken over from a
    process that died (or lost its lease) while running it; one more and it is
    failed with :class:`~toolkit.errors.RecoveryLimitError` instead of crashing
    yet another process (``None``: no limit). A clean shutdown does not count.
    ``app_database_url`` (else ``$DURABLE_APP_DATABASE_URL``) puts the business
    writes of ``@transaction`` steps in another database than the workflow state
    (PostgreSQL, MySQL/MariaDB or SQLite): they stay exactly-once through an
    outputs table there (see :mod:`toolkit.appdb`). Default: the state database.
    ``retention`` is how long finished workflows are kept before running workers
    delete them with their steps, events and messages: a duration (seconds, a
    ``timedelta`` or a text such as ``"7d"``) for ``succeeded``, ``failed`` and
    ``cancelled`` alike, or a mapping per status (``{"succeeded": "7d",
    "failed": "30d"}``; a status left out is kept forever). Default: keep
    everything. Unfinished workflows are never deleted.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        lease_timeout: float = 30.0,
        serializer: Serializer | None = None,
        max_recoveries: int | None = 20,
        app_database_url: str | None = None,
        retention: RetentionSpec = None,
    ) -> None:
        if lease_timeout <= 0:
            raise ValueError("lease_timeout must be positive")
        if max_recoveries is not None and max_recoveries < 0:
            raise ValueError("max_recoveries must be >= 0 or None")
        self.max_recoveries = max_recoveries
        self.retention: dict[str, float] = normalize_retention(retention)
        """Seconds each finished status is kept (a status not in it: forever)."""
        self._url = url
        if url is not None:
            resolve_url(url)  # a malformed URL fails now, not at first use
        self.lease_timeout = lease_timeout
        self.serializer: Serializer = serializer or JSONSerializer()
        self._workflows: dict[str, WorkflowDef] = {}
        self._queues: dict[str, Queue] = {}
        self._schedules: dict[str, Schedule] = {}
        self._pollers: list[tuple[Callable[[], Any], float]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._storage: Storage | None = None
        self._executor: Executor | None = None
        self._app_url = app_database_url
        self._app_db: AppDatabase | None = None
        if app_database_url is not None:
            resolve_app_url(app_database_url)  # a malformed or unsupported URL fails now

    # -- plumbing --

    def _fresh_after_fork(self) -> None:
        if self._pid != os.getpid():  # engines and threads do not survive a fork
            self._pid = os.getpid()
            self._storage = None
            self._executor = None
            self._app_db = None

    @property
    def storage(self) -> Storage:
        """The storage backend, connected and upgraded on first use."""
        self._fresh_after_fork()
        if self._storage is None:
            with self._lock:
                if self._storage is None:
                    self._storage = open_storage(self._url)
        self._storage.ensure_ready()
        return self._storage

    @property
    def executor(self) -> Executor:
        storage = self.storage
        if self._executor is None:
            app_db = self.app_database  # takes the lock itself
            with self._lock:
                if self._executor is None:
                    self._executor = Executor(
                        storage,
                        self.serializer,
                        self.lease_timeout,
                        self._workflows.get,
                        max_recoveries=self.max_recoveries,
                        app_db=app_db,
                    )
        return self._executor

    @property
    def app_database(self) -> AppDatabase | None:
        """The app database of ``@transaction`` steps, or ``None`` when it is the state
        database (the argument, else ``$DURABLE_APP_DATABASE_URL``; not connected yet)."""
        self._fresh_after_fork()
        if self._app_db is None:
            text = self._app_url if self._app_url is not None else os.environ.get(APP_ENV_VAR)
            if not text:
                return None
            url = resolve_app_url(text)
            if same_database(url, resolve_url(self._url)):
                return None
            with self._lock:
                if self._app_db is None:
                    self._app_db = AppDatabase(url)
        return self._app_db

    def configure(
        self,
        *,
        url: str | None = None,
        lease_timeout: float | None = None,
        app_database_url: str | None = None,
    ) -> None:
        """Override the database URLs or lease timeout before first use (``durable worker``)."""
        if self._storage is not None:
            raise DurableError("configure() must be called before the app first uses its database")
        if url is not None:
            resolve_url(url)
            self._url = url
        if app_database_url is not None:
            resolve_app_url(app_database_url)
            self._app_url = app_database_url
            self._app_db = None
        if lease_timeout is not None:
            if lease_timeout <= 0:
                raise ValueError("lease_timeout must be positive")
            self.lease_timeout = lease_timeout

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        from .storage import describe_url

        return describe_url(resolve_url(self._url))

    @property
    def database_url(self) -> sa.URL:
        """The database URL as a SQLAlchemy ``URL``, resolved without connecting.

        It carries the password (to connect elsewhere to the same database);
        its ``str()`` hides it.
        """
        return resolve_url(self._url)

    def has_workflow(self, name: str) -> bool:
        """Whether a workflow of that name is registered in this app (this process has its code)."""
        return name in self._workflows

    def close(self) -> None:
        """Stop running workflows in this process and close connections.

        Workflows still running stay ``pending`` and are resumed by ``recover()``
        or a worker.
        """
        if self._executor is not None:
            self._executor.stop()
        if self._storage is not None:
            self._storage.dispose()
        if self._app_db is not None:
            self._app_db.dispose()
        self._executor = None
        self._storage = None
        self._app_db = None

    def prune_app_outputs(self, older_than: float = 3600.0, batch: int = 1000) -> int:
        """Delete outputs rows of the app database that no replay can need any more.

        A row is needed until its transaction's checkpoint is in the state store;
        once its workflow succeeded or failed (every checkpoint written) or is gone,
        it is not. Only rows older than ``older_than`` seconds are looked at; at
        most ``batch`` workflows per call. Returns the number of rows deleted (0
        without an app database). Workers call it every few minutes.
        """
        app_db = self.app_database
        if app_db is None:
            return 0
        storage = self.storage
        store_id = storage.store_id()
        cutoff = int((time.time() - older_than) * 1000)
        keys = app_db.output_keys(store_id, cutoff, batch)
        keep = storage.keys_not_done(keys)
        return app_db.delete_outputs(store_id, [k for k in keys if k not in keep])

    def upgrade(self) -> list[int]:
        """Create or upgrade the system tables, and the outputs table of the app
        database if there is one; return the state store's migration versions applied."""
        self._fresh_after_fork()
        if self._storage is None:
            self._storage = open_storage(self._url)
        applied = self._storage.upgrade()
        app_db = self.app_database
        if app_db is not None:
            app_db.upgrade()
        return applied

    # -- declarations --

    def workflow(self, fn: Any = None, /, *, name: str | None = None) -> Any:
        """Declare a workflow: a function whose steps are checkpointed.

        Calling the decorated function outside a workflow runs it durably and
        waits for its result (``app.run``); inside a workflow it is an ordinary
        call whose steps belong to the calling workflow.
        """

        def decorate(func: F) -> F:
            wf = WorkflowDef(func, name or qualified_name(func), _is_async(func))
            with self._lock:
                existing = self._workflows.get(wf.name)
                if existing is not None and existing.fn is not func:
                    raise DurableError(f"another function is already registered as {wf.name!r}")
                self._workflows[wf.name] = wf
            wrapper: Any
            if wf.is_async:

                @functools.wraps(func)
                async def wrapper(*args: Any, **kwargs: Any) -> Any:
                    if _run_var.get() is not None:
                        return await func(*args, **kwargs)
                    return await asyncio.to_thread(self.run, wf.name, *args, **kwargs)

            else:

                @functools.wraps(func)
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    if _run_var.get() is not None:
                        return func(*args, **kwargs)
                    return self.run(wf.name, *args, **kwargs)

            wrapper.__durable_workflow__ = wf
            return wrapper

        return decorate(fn) if fn is not None else decorate

    def step(
        self, fn: Any = None, /, *, retry: RetryPolicy | None = None, name: str | None = None
    ) -> Any:
        """Declare a step: at-least-once work on the outside world.

        Inside a workflow its outcome is checkpointed and replayed after a
        crash; it may run more than once if the process dies before its
        checkpoint commits, so hand ``current_step().idempotency_key`` to
        the APIs it calls. Outside a workflow it runs with its retry policy
        and records nothing.
        """

        def decorate(func: F) -> F:
            sd = StepDef(func, name or qualified_name(func), retry or NO_RETRY, _is_async(func))
            return _step_wrapper(sd)

        return decorate(fn) if fn is not None else decorate

    def transaction(
        self, fn: Any = None, /, *, retry: RetryPolicy | None = None, name: str | None = None
    ) -> Any:
        """Declare a transaction step: exactly-once writes to the workflow's database.

        The function receives a SQLAlchemy ``Connection`` as its first argument
        (the caller does not pass it). Its writes and the step's checkpoint
        commit in one database transaction: after any crash, either both are
        there or neither is, and a committed transaction never runs again.
        """

        def decorate(func: F) -> F:
            if _is_async(func):
                raise TypeError(
                    f"@transaction function {qualified_name(func)} must be synchronous: "
                    "it runs inside a database transaction"
                )
            sd = StepDef(
                func, name or qualified_name(func), retry or NO_RETRY, False, "transaction"
            )

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                run = active_run()
                if run is not None:
                    return run.executor.run_transaction(run, sd, args, kwargs)
                app_db = self.app_database
                opener = app_db.transaction if app_db is not None else self.storage.transaction

                def attempt(*a: Any, **k: Any) -> Any:
                    with opener() as conn:  # a rejected result rolls back
                        return reject_in_transaction(sd.policy, func(conn, *a, **k))

                return run_unrecorded(StepDef(attempt, sd.name, sd.policy, False), args, kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate(fn) if fn is not None else decorate

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> Queue:
        """Declare a queue (see :class:`~toolkit.queues.Queue` for the limits)."""
        if not isinstance(name, str):
            raise TypeError(f"a queue name is a string, not {type(name).__name__}")
        queue = Queue(name, concurrency, worker_concurrency, rate_limit, app=self)
        existing = self._queues.get(name)
        if existing is not None and existing != queue:
            raise DurableError(f"queue {name!r} is already declared with other limits")
        self._queues[name] = queue
        return queue

    @property
    def queues(self) -> dict[str, Queue]:
        """The declared queues by name."""
        return dict(self._queues)

    @property
    def schedules(self) -> dict[str, Schedule]:
        """The declared schedules by name."""
        return dict(self._schedules)

    def poll(self, fn: Callable[[], Any], *, every: float = 1.0) -> None:
        """Have every worker of this app call ``fn()`` about every ``every`` seconds.

        For work that starts workflows from outside the queues, such as an
        adapter's ``claim`` of a legacy table: ``app.poll(adapter.claim)``
        makes ``durable worker`` the whole deployment. Each worker calls it in
        its own loop, so ``fn`` must be safe to run in several processes at
        once; an exception is logged and the next call happens on time.
        """
        if every <= 0:
            raise ValueError("every must be positive")
        self._pollers.append((fn, every))

    @property
    def pollers(self) -> list[tuple[Callable[[], Any], float]]:
        """The functions registered with :meth:`poll` and their intervals."""
        return list(self._pollers)

    def scheduled(
        self, cron: str, *, name: str | None = None, catch_up: bool = False
    ) -> Callable[[F], F]:
        """Declare a workflow run on a cron timetable (UTC), once per tick across all workers.

        The function receives the tick as an aware UTC ``datetime``. Workers
        (``durable worker``) fire the ticks; ``catch_up`` says whether a worker
        that was down runs every missed tick or only the latest.
        """

        def decorate(func: F) -> F:
            schedule = Schedule(name or qualified_name(func), cron, catch_up)

            if _is_async(func):

                async def run_tick_async(tick: str) -> Any:
                    return await func(datetime.fromisoformat(tick))

                wf = WorkflowDef(run_tick_async, schedule.name, True)
            else:

                def run_tick(tick: str) -> Any:
                    return func(datetime.fromisoformat(tick))

                wf = WorkflowDef(run_tick, schedule.name, False)
            with self._lock:
                if schedule.name in self._workflows:
                    raise DurableError(f"{schedule.name!r} is already registered")
                self._workflows[schedule.name] = wf
                self._schedules[schedule.name] = schedule
            return func

        return decorate

    def schedule_row(self, schedule: Schedule, tick_ms: int) -> dict[str, Any]:
        """The workflow row of one tick: its id makes the tick unique."""
        tick = datetime.fromtimestamp(tick_ms / 1000, tz=UTC).isoformat()
        return {
            "workflow_id": f"{schedule.name}@{tick}",
            "name": schedule.name,
            "inputs": self.executor.encode_inputs(schedule.name, (tick,), {}),
        }

    def _enqueue(
        self,
        queue: Queue,
        fn: Callable[..., Any] | str,
        calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]],
        *,
        workflow_ids: Sequence[str] | None = None,
        priority: int = 0,
        delay: float | None = None,
        deduplication_ids: Sequence[str] | None = None,
    ) -> list[WorkflowHandle]:
        wf = self._workflow_def(fn)
        executor = self.executor
        run = active_run()
        delay_ms = int(delay * 1000) if delay else None
        rows: list[dict[str, Any]] = []
        for i, (args, kwargs) in enumerate(calls):
            if workflow_ids is not None:
                wid = workflow_ids[i]
            elif run is not None:  # deterministic, so a replay enqueues nothing new
                wid = f"{run.workflow_id}:{run.take_step_number()}"
            else:
                wid = new_workflow_id()
            rows.append(
                {
                    "workflow_id": wid,
                    "name": wf.name,
                    "inputs": executor.encode_inputs(wf.name, args, kwargs),
                    "queue_name": queue.name,
                    "priority": priority,
                    "deduplication_id": deduplication_ids[i] if deduplication_ids else None,
                    "delay_ms": delay_ms,
                }
            )
        storage = self.storage
        inserted = (
            storage.enqueue_many(rows)
            if run is None
            else executor.wait_for_database(run, lambda: storage.enqueue_many(rows))
        )
        storage.wakeups.signal("queue", queue.name)
        handles = []
        for row in rows:
            wid = row["workflow_id"]
            if wid not in inserted:
                wid = self._existing_for(queue, row)
            handles.append(WorkflowHandle(self, wid))
        return handles

    def _existing_for(self, queue: Queue, row: dict[str, Any]) -> str:
        """The workflow that stands for a row ``enqueue_many`` did not insert."""
        storage = self.storage
        for _ in range(3):
            dedup = row["deduplication_id"]
            if dedup is not None:
                holder = storage.live_duplicate(queue.name, dedup)
                if holder is not None:
                    return holder
            existing = storage.get_workflow(row["workflow_id"])
            if existing is not None:
                if existing.name != row["name"]:
                    raise WorkflowConflictError(
                        f"workflow id {row['workflow_id']!r} is already used by workflow "
                        f"{existing.name!r}, not {row['name']!r}"
                    )
                return existing.workflow_id
            # The deduplication holder ended between our insert and our look: insert again.
            if storage.enqueue_many([row]):
                storage.wakeups.signal("queue", queue.name)
                return str(row["workflow_id"])
        raise DurableError(f"could not enqueue {row['workflow_id']!r}: its dedup holder churns")

    # -- messages and events --

    def send(self, workflow_id: str, topic: str, value: Any) -> None:
        """Send a message to a workflow; it takes it with ``recv(topic)``.

        Inside a workflow the send is a step that commits with its checkpoint,
        so a replay does not send it again.
        """
        run = active_run()
        executor = run.executor if run is not None else self.executor
        executor.send(run, workflow_id, topic, value)

    def recv(self, topic: str, timeout: float = 60.0) -> Any:
        """Inside a workflow: the next message sent to it on ``topic``, or ``None`` on timeout.

        The message is consumed exactly once: taking it and checkpointing it
        commit together.
        """
        run = active_run()
        if run is None:
            raise DurableError("recv() must be called inside a workflow")
        return run.executor.recv(run, topic, timeout)

    def set_event(self, key: str, value: Any) -> None:
        """Inside a workflow: publish ``value`` under ``key`` for ``get_event`` readers."""
        run = active_run()
        if run is None:
            raise DurableError("set_event() must be called inside a workflow")
        run.executor.set_event(run, key, value)

    def get_event(self, workflow_id: str, key: str, timeout: float = 60.0) -> Any:
        """A workflow's event value, waiting up to ``timeout`` seconds; ``None`` if never set."""
        run = active_run()
        executor = run.executor if run is not None else self.executor
        return executor.get_event(run, workflow_id, key, timeout)

    def _workflow_def(self, fn: Callable[..., Any] | str) -> WorkflowDef:
        if isinstance(fn, str):
            wf = self._workflows.get(fn)
            if wf is None:
                raise NotRegisteredError(f"no workflow named {fn!r} is registered in this app")
            return wf
        declared: WorkflowDef | None = getattr(fn, "__durable_workflow__", None)
        if declared is None:
            raise NotRegisteredError(
                f"{qualified_name(fn)} is not a workflow: decorate it with @app.workflow()"
            )
        if self._workflows.get(declared.name) is not declared:
            raise NotRegisteredError(f"workflow {declared.name!r} is registered in another app")
        return declared

    # -- running --

    def start(
        self,
        fn: Callable[..., Any] | str,
        *args: Any,
        workflow_id: str | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle:
        """Start a workflow in this process and return its handle at once.

        Starting an id that already exists starts nothing and returns the
        handle of the existing run. Arguments must be serializable.
        """
        wf = self._workflow_def(fn)
        executor = self.executor
        run = active_run()
        if workflow_id is not None:
            wid = workflow_id
        elif run is not None:  # deterministic, so a replay starts nothing new
            wid = f"{run.workflow_id}:{run.take_step_number()}"
        else:
            wid = new_workflow_id()
        inputs = executor.encode_inputs(wf.name, args, kwargs)
        started = (
            executor.start(wf, wid, inputs)
            if run is None
            else executor.wait_for_database(run, lambda: executor.start(wf, wid, inputs))
        )
        if not started:
            existing = self.storage.get_workflow(wid)
            if existing is not None and existing.name != wf.name:
                raise WorkflowConflictError(
                    f"workflow id {wid!r} is already used by workflow {existing.name!r}, "
                    f"not {wf.name!r}"
                )
        return WorkflowHandle(self, wid)

    def run(
        self,
        fn: Callable[..., Any] | str,
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """``start`` then ``result``: run a workflow and return what it returned."""
        return self.start(fn, *args, workflow_id=workflow_id, **kwargs).result(timeout=timeout)

    def handle(self, workflow_id: str) -> WorkflowHandle:
        """A handle on an existing workflow. Raises if no such workflow is recorded."""
        if self.storage.get_workflow(workflow_id) is None:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
        return WorkflowHandle(self, workflow_id)

    def recover(self) -> list[WorkflowHandle]:
        """Resume every ``pending`` workflow left by a process that died.

        Only workflows registered in this app are taken; each resumes at its
        first step without a checkpoint. Returns their handles.
        """
        resumed = self.executor.recover(list(self._workflows))
        if (tel := telemetry.active) is not None:
            tel.recovered(len(resumed))
        return [WorkflowHandle(self, orphan.workflow_id) for orphan in resumed]

    def sleep(self, seconds: float) -> None:
        """Sleep durably: the wake-up time is checkpointed, so a restart sleeps only the rest.

        Outside a workflow this is :func:`time.sleep`.
        """
        run = active_run()
        if run is None:
            time.sleep(seconds)
        else:
            run.executor.sleep(run, seconds)

    async def sleep_async(self, seconds: float) -> None:
        """``sleep`` for ``async def`` workflows."""
        run = active_run()
        if run is None:
            await asyncio.sleep(seconds)
        else:
            await run.executor.sleep_async(run, seconds)

    # -- inspecting and controlling --

    def get_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow's record. Raises :class:`WorkflowNotFoundError` if there is none."""
        record = self.storage.get_workflow(workflow_id)
        if record is None:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
        return record

    def list_workflows(
        self,
        status: str | None = None,
        name: str | None = None,
        limit: int | None = None,
    ) -> list[WorkflowRecord]:
        """Recorded workflows, newest first, optionally filtered by status and name."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
        return self.storage.list_workflows(status=status, name=name, limit=limit)

    def list_steps(self, workflow_id: str) -> list[StepRecord]:
        """The recorded steps of a workflow, in order."""
        self.get_workflow(workflow_id)
        return list(self.storage.load_steps(workflow_id).values())

    def prune(
        self,
        older_than: float | timedelta | str | None = None,
        *,
        status: str | Sequence[str] | None = None,
        dry_run: bool = False,
        batch_size: int = 500,
    ) -> PruneCounts:
        """Delete finished workflows older than ``older_than`` (default: the app's
        ``retention``) with their steps, events and messages; return what was deleted.

        Only ``succeeded``, ``failed`` and ``cancelled`` workflows are deleted
        (``status`` narrows it to some of them), in batches of ``batch_size``,
        one short transaction each (on SQLite, with a rest between batches as long
        as two batches took, so that running workers still get the write lock).
        ``dry_run`` deletes nothing and returns what
        would be deleted. A deleted workflow's id may be used again by ``start``
        or ``enqueue``: it starts a new workflow.
        """
        statuses = [status] if isinstance(status, str) else list(status or FINISHED_STATUSES)
        unknown = [s for s in statuses if s not in FINISHED_STATUSES]
        if unknown:
            raise ValueError(
                f"only finished workflows are pruned ({', '.join(FINISHED_STATUSES)}), "
                f"not {', '.join(map(repr, unknown))}"
            )
        if older_than is not None:
            policy = dict.fromkeys(statuses, parse_duration(older_than, "older_than"))
        else:
            policy = {s: self.retention[s] for s in statuses if s in self.retention}
        storage = self.storage
        # SQLite has one writer at a time: back-to-back batches would starve a running
        # worker's checkpoints, so rest between them as a worker's own pruner does.
        rest = _rest if storage.backend == "SQLite" else None
        return prune_finished(storage, policy, dry_run=dry_run, batch_size=batch_size, pause=rest)

    def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow that has not finished: it runs no further step.

        A step already running in some process finishes, but its checkpoint
        is refused (a transaction rolls back). Cancelling a finished workflow
        changes nothing.
        """
        storage = self.storage
        executor = self._executor
        run = executor.local_run(workflow_id) if executor is not None else None
        if run is not None:  # steps that already returned here keep their checkpoints
            run.executor.flush(run, quiet=True)
        if not storage.cancel(workflow_id):
            self.get_workflow(workflow_id)  # raises if it does not exist
        if run is not None:
            run.interrupt("it was cancelled", lost=True)

    def resume(self, workflow_id: str) -> WorkflowHandle:
        """Run a failed or cancelled workflow again from where it stopped.

        Recorded steps are replayed, not re-run; a step that failed gets a fresh
        attempt budget. A queued workflow goes back to its queue (``enqueued``)
        and runs on a worker, under the queue's limits. Any other workflow
        resumes here at once if it is registered in this app, else it waits
        for ``recover()`` or a worker that has it (also when another process
        holds the SQLite database for running workflows: that process takes
        it over).
        """
        record = self.get_workflow(workflow_id)
        executor = self._executor
        stoppable = record.status in RESUMABLE_STATUSES
        if stoppable and executor is not None and executor.stopping_here(workflow_id):
            raise DurableError(
                f"workflow {workflow_id!r} is still stopping in this process (its current "
                "step has not returned yet); resume it once its handle's result() has raised"
            )
        if self.storage.resume(workflow_id):
            self._run_unowned(workflow_id, record)
        # else not failed or cancelled: nothing to do
        return WorkflowHandle(self, workflow_id)

    def fork(
        self, workflow_id: str, from_step: int, *, new_id: str | None = None
    ) -> WorkflowHandle:
        """Restart a workflow from step ``from_step``, as a new workflow.

        The new workflow (id ``new_id``, else a fresh one) has the same
        name and inputs. The checkpoints of the steps numbered below
        ``from_step`` are copied, so those steps are replayed, not re-run;
        ``from_step`` and every step after it run again. The original, whatever
        its status, is left as it is. The new workflow runs like a resumed one:
        back through its queue if the original came from one, else here at
        once if registered in this app, else by ``recover()`` or a worker.
        Step numbers are those of ``list_steps`` (the first step is 1).
        """
        if from_step < 1:
            raise ValueError(f"from_step must be 1 or more, not {from_step}")
        if new_id is None:
            new_id = new_workflow_id()
        record = self.storage.fork(workflow_id, new_id, from_step)
        if record is None:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
        self._run_unowned(new_id, record)
        return WorkflowHandle(self, new_id)

    def _run_unowned(self, workflow_id: str, record: WorkflowRecord) -> None:
        """Run a workflow just made runnable with no owner (resumed or forked from ``record``)."""
        if record.queue_name is not None:
            self.storage.wakeups.signal("queue", record.queue_name)
            return  # in its queue: a worker claims it under the queue's limits
        if record.name not in self._workflows:
            return  # for recover() or a worker that has its code
        executor = self.executor
        try:
            executor.ensure_alive()
        except ConfigurationError:  # SQLite: another process runs workflows; it takes this
            return
        if self.storage.claim_workflow(workflow_id, executor.owner, executor.lease_ms):
            executor.resume_claimed(workflow_id, record.name, record.inputs)

    def _wait(self, workflow_id: str, timeout: float | None) -> Any:
        executor = self._executor
        if executor is None:
            executor = self.executor
        return executor.wait(workflow_id, timeout)

    def connection(self) -> sa.Engine:
        """The SQLAlchemy engine of the database ``@transaction`` steps write to (the app
        database when it is apart, else the workflow database), for setup and reads."""
        app_db = self.app_database
        return app_db.engine if app_db is not None else self.storage.engine


def _step_wrapper(sd: StepDef) -> Any:
    if sd.is_async:

        @functools.wraps(sd.fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            run = active_run()
            if run is None:
                return await run_unrecorded_async(sd, args, kwargs)
            return await run.executor.run_step_async(run, sd, args, kwargs)

        async_wrapper.__durable_step__ = sd  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(sd.fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = active_run()
        if run is None:
            return run_unrecorded(sd, args, kwargs)
        return run.executor.run_step(run, sd, args, kwargs)

    wrapper.__durable_step__ = sd  # type: ignore[attr-defined]
    return wrapper


def _rest(seconds: float) -> bool:
    """Pause between two prune batches (never asks to stop)."""
    time.sleep(seconds)
    return False
