"""Status-column adapter: rows of a legacy job table become durable workflows.

A legacy job table (``jobs(id, payload, status, attempts, last_error, ...)``)
polled by a worker loop is declared once (:class:`LegacyTable`: key column,
status column and its values, optional bookkeeping columns). Then:

* :meth:`StatusColumnAdapter.shadow` reads the table and reports what a
  takeover would do; it writes nothing and locks nothing;
* :meth:`StatusColumnAdapter.claim` (one poll) and
  :meth:`StatusColumnAdapter.takeover` (a poller plus a worker) start one
  durable workflow per pending row, with the row's key in the workflow id, and
  every state change of that workflow is written back to the legacy columns,
  so legacy readers keep seeing the values they always did.

The workflow of a row: ``begin`` (status running, locks) -> attempts of the
handler (each a step) -> after a failed attempt, ``attempt_failed`` (attempts,
last_error, next_retry_at; or status failed when the retry budget is spent) and
a durable sleep -> ``done`` (status done). The write-backs are
``@transaction`` steps when the legacy table lives in the workflow database
(exactly once, with the checkpoint) and guarded, idempotent steps when it lives
elsewhere (at least once). See docs/adapters.md for the promise of each
arrangement.

Tables without a status column (state in nullable times or a flag, rows
deleted when done or when claimed, a lease column) declare ``status=StateColumns(...)``
(:mod:`adapters.row_state`); tables declared as Django or SQLAlchemy models
are mapped from the model (:meth:`StatusColumnAdapter.from_model`,
:mod:`adapters.models`). The mapping is checked against the real table once,
up front (:mod:`adapters.legacy_checks`).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from toolkit import Durable, RetryPolicy, current_workflow_id
from toolkit.errors import DeterminismError, DurableError
from toolkit.queues import Queue
from toolkit.retry import NO_RETRY

from .legacy_table import (
    LIVE,
    WRITE_BACK_RETRY,
    JsonKey,
    LegacyColumns,
    LegacyDatabaseUnavailableError,
    LegacyPollError,
    LegacyTable,
    MappingError,
    RowFailedError,
    StatusValues,
    app_url,
    is_app_database,
    json_key,
)
from .row_state import StateColumns
from .shadow import shadow_report
from .status_reports import ClaimReport, RunningRow, ShadowReport
from .takeover import Takeover, TakeoverStats
from .write_back import RowWriteBacks

log = logging.getLogger("adapters.status_column")


class RetryRefusedError(DurableError):
    """A row's dead letter cannot be retried: its row is no longer failed (nothing changed)."""


RETRY_EVENT = "durable.legacy.retries"
"""The event that counts the retries of a row's dead letter (see ``prepare_retry``)."""

_ADAPTERS: weakref.WeakKeyDictionary[Durable, dict[str, StatusColumnAdapter]] = (
    weakref.WeakKeyDictionary()
)


def adapter_of(app: Durable, workflow_name: str) -> StatusColumnAdapter | None:
    """The status-column adapter constructed on ``app`` whose row workflow is ``workflow_name``."""
    return _ADAPTERS.get(app, {}).get(workflow_name)


# -- the adapter -----------------------------------------------------------------------------


class StatusColumnAdapter(RowWriteBacks):
    """Runs the rows of a legacy job table as durable workflows, keeping the status column.

    ``legacy_url`` is the SQLAlchemy URL of the database holding ``table``
    (PostgreSQL, MySQL/MariaDB or SQLite); ``None`` means the workflow
    database itself. Give exactly one of ``handler`` (a function of the row as
    a dict, run as a durable step once per attempt: at least once, with the
    idempotency key ``current_step().idempotency_key``) or ``workflow`` (a
    function of the row, run as workflow code: the ``@step`` and
    ``@transaction`` functions it calls are checkpointed, and its transactions
    are exactly once). ``retry`` is the retry budget of a row, counted with the
    attempts already in the legacy ``attempts`` column.

    Construct the adapter in every process that runs workers (it registers the
    row workflow and its steps on ``app``); run :meth:`takeover` (or call
    :meth:`claim`) in at least one of them.
    """

    def __init__(
        self,
        app: Durable,
        legacy_url: str | URL | None,
        *,
        table: str,
        key: str,
        status: StatusValues | StateColumns,
        columns: LegacyColumns | None = None,
        handler: Callable[[dict[str, Any]], Any] | None = None,
        workflow: Callable[[dict[str, Any]], Any] | None = None,
        retry: RetryPolicy | None = None,
        name: str | None = None,
        schema: str | None = None,
        queue: Queue | None = None,
        batch_size: int = 100,
    ) -> None:
        if (handler is None) == (workflow is None):
            raise ValueError("give exactly one of handler= (run as a step) or workflow=")
        fn = handler if handler is not None else workflow
        if not callable(fn):
            raise TypeError(f"the handler must be callable, got {fn!r}")
        import inspect

        if inspect.iscoroutinefunction(fn):
            raise TypeError("the handler must be a plain (synchronous) function")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.app = app
        self.legacy, self.same_database = LegacyTable.for_app(
            app, legacy_url, table, key=key, status=status, columns=columns, schema=schema
        )
        self.exactly_once = self.same_database or is_app_database(app, self.legacy.url)
        """Write-backs are ``@transaction`` steps: the table is in the workflow database,
        or in the app database kept apart from it (``Durable(app_database_url=)``)."""
        self.name = name or table
        if ":" in self.name or "#" in self.name:
            raise ValueError(f"adapter name {self.name!r} must not contain ':' or '#'")
        self.legacy.id_prefix = f"{self.name}:"
        self._warned: set[str] = set()
        self.workflow_name = f"legacy.{self.name}"
        self.handler = handler
        self.user_workflow = workflow
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.queue = queue if queue is not None else app.queue(self.workflow_name)
        if self.queue.app is not app:
            raise ValueError("queue must be declared on the same app")
        self._register()

    def _warn_once(self, text: str) -> None:
        """Log a warning once per distinct text (a poll repeats the same finding)."""
        if text not in self._warned:
            if len(self._warned) > 1000:
                self._warned.clear()
            self._warned.add(text)
            log.warning("%s", text)

    @classmethod
    def from_model(
        cls,
        app: Durable,
        model: Any,
        legacy_url: str | URL | None = None,
        *,
        status: StatusValues | StateColumns | None = None,
        columns: LegacyColumns | None = None,
        **options: Any,
    ) -> StatusColumnAdapter:
        """The adapter of a table declared as a Django or SQLAlchemy model.

        The table, its schema and its key come from the model; ``status`` and
        ``columns`` name fields (translated to their database columns), and
        what is not given is found by the conventional names job tables use
        (see :mod:`adapters.models`): a ``status``/``state`` field whose
        choices name the four states, ``attempts``, ``last_error``,
        ``locked_at``... ``adapter.mapping`` and the shadow report show the
        result; the table check runs as for a hand-written mapping. Other
        keyword arguments are those of the constructor (``handler=``, ``retry=``...).
        """
        from .models import infer_columns, infer_status, table_of, translate_state

        found = table_of(model)
        state: StatusValues | StateColumns = (
            translate_state(found, status)
            if isinstance(status, StateColumns)
            else infer_status(found, status)
        )
        options.setdefault("schema", found.schema)
        return cls(
            app,
            legacy_url,
            table=found.table,
            key=found.key,
            status=state,
            columns=infer_columns(found, columns),
            **options,
        )

    @property
    def mapping(self) -> str:
        """The mapping in one line: table, key, state and bookkeeping columns."""
        legacy = self.legacy
        st = legacy.status
        if isinstance(st, StatusValues):
            roles = ", ".join(
                f"{r}={getattr(st, r)!r}" for r in ("pending", "running", "done", "failed")
            )
            state = f"status column {st.column!r} ({roles})"
        else:
            parts = [f"{role} {name!r}" for role, name in st.declared().items()]
            if st.lease is not None:
                parts.append(f"lease {int(st.lease.total_seconds())}s")
            if st.delete is not None:
                parts.append(f"rows deleted when {st.delete}")
            state = "state in " + ", ".join(parts)
        extra = legacy.columns.declared()
        cols = ", ".join(f"{r} {c!r}" for r, c in extra.items()) or "none"
        return f"table {legacy.qualified_name!r}, key {legacy.key!r}, {state}; bookkeeping: {cols}"

    def __repr__(self) -> str:
        return f"StatusColumnAdapter({self.legacy.qualified_name!r}, name={self.name!r})"

    # -- ids --

    def workflow_id(self, key: Any, generation: int = 1) -> str:
        """The workflow id of a row: ``"<name>:<key>"``, then ``"<name>:<key>#2"``, ... ."""
        base = f"{self.name}:{json_key(key)}"
        return base if generation == 1 else f"{base}#{generation}"

    @property
    def arrangement(self) -> str:
        legacy, system = self.legacy.backend, app_url(self.app).get_backend_name()
        if self.same_database:
            where = "file" if legacy == "sqlite" else "database"
            return f"legacy table in the workflow {where} ({legacy})"
        return f"legacy table in {legacy} ({self.legacy.describe()}), workflow state in {system}"

    @property
    def promise(self) -> str:
        if self.same_database:
            return "exactly once: each write-back commits in the transaction of its checkpoint"
        if self.exactly_once:
            return (
                "exactly once: each write-back commits with its outputs row in the app "
                "database (the legacy database), its checkpoint follows"
            )
        return (
            "at least once, idempotent: each write-back is a guarded UPDATE committed in the "
            "legacy database before its checkpoint; after a crash between the two it is "
            "written again with the same values"
        )

    # -- registration --

    def _register(self) -> None:
        app, wf = self.app, self.workflow_name
        write_back: Callable[[Callable[..., Any], str], Any]
        if self.exactly_once:

            def write_back(fn: Callable[..., Any], step: str) -> Any:
                return app.transaction(fn, name=f"{wf}.{step}", retry=WRITE_BACK_RETRY)

        else:

            def write_back(fn: Callable[..., Any], step: str) -> Any:
                def in_legacy(*args: Any) -> Any:
                    with self.legacy.writing() as conn:
                        return fn(conn, *args)

                in_legacy.__qualname__ = fn.__qualname__
                return app.step(in_legacy, name=f"{wf}.{step}", retry=WRITE_BACK_RETRY)

        self._begin = write_back(self._write_begin, "begin")
        self._attempt_failed = write_back(self._write_attempt_failed, "attempt_failed")
        self._done = write_back(self._write_done, "done")
        self._handle = app.step(self._call_handler, name=f"{wf}.handle", retry=NO_RETRY)
        self._load = app.step(self._load_row, name=f"{wf}.load_row", retry=WRITE_BACK_RETRY)
        self._give_up = app.step(self._check_give_up, name=f"{wf}.give_up", retry=NO_RETRY)
        _ADAPTERS.setdefault(app, {})[wf] = self
        app.workflow(self._run_row, name=wf)

    # -- the row workflow --

    def _run_row(self, key: Any) -> Any:
        wid = current_workflow_id() or self.workflow_id(key)
        begun = self._begin(key, wid)
        if begun["state"] != "started":
            log.warning(
                "%s: row %r not started: %s", self.legacy.qualified_name, key, begun["reason"]
            )
            return None
        recorded = begun.get("row")  # the row's values, when begin deleted it
        attempt = int(begun["attempts"])
        started = int(begun["started_at"])
        base = attempt  # the retry budget counts the attempts made since `base`
        retries = 0  # how many retries of this dead letter were taken up
        max_attempts = self.retry.max_attempts
        if max_attempts is not None and attempt >= max_attempts:
            self._attempt_failed(key, wid, attempt, started, None)
            why = f"its retry budget of {max_attempts} attempts was spent before the takeover"
            again = self._give_up(key, wid, attempt, why, retries)
            retries += 1
            attempt = base = int(again["attempts"])
            started = int(again["started_at"])
        while True:
            attempt += 1
            try:
                if self.handler is not None:
                    result = self._handle(key, recorded)
                else:
                    assert self.user_workflow is not None
                    result = self.user_workflow(self._load(key, recorded))
            except DeterminismError:
                raise
            except Exception as exc:
                decision = self._attempt_failed(key, wid, attempt, started, exc, base)
                if not decision["held"]:
                    log.warning(
                        "%s: row %r was changed by someone else (%s); its workflow stops",
                        self.legacy.qualified_name,
                        key,
                        decision["reason"],
                    )
                    return None
                if decision["retry_in"] is None:
                    # The row is failed, and so is the workflow, in the step below. A retry
                    # of this dead letter (retry_dead_letter) counts itself in an event and
                    # puts the row back to running; the step then runs again and returns:
                    # fresh attempts follow.
                    why = f"failed after {attempt} attempt(s): {decision['error']}"
                    again = self._give_up(key, wid, attempt, why, retries)
                    retries += 1
                    attempt = base = int(again["attempts"])
                    started = int(again["started_at"])
                    continue
                self.app.sleep(float(decision["retry_in"]))
                continue
            outcome = self._done(key, wid, attempt)
            if not outcome["held"]:
                log.warning(
                    "%s: row %r was changed by someone else (%s); not marked done",
                    self.legacy.qualified_name,
                    key,
                    outcome["reason"],
                )
            return result

    def _check_give_up(
        self, key: Any, wid: str, attempt: int, why: str, retries: int
    ) -> dict[str, Any]:
        """Fail the workflow (RowFailedError), unless a retry was asked for since."""
        found, value = self.app.storage.get_event(wid, RETRY_EVENT)
        if not found or int(value or 0) <= retries:
            raise RowFailedError(f"row {key!r} of {self.legacy.qualified_name} {why}")
        attempts = attempt
        if self.legacy.columns.attempts is not None:
            with self.legacy.reading() as conn:
                row = self._select_row(conn, key, lock=False)
            if row is not None:
                attempts = self.legacy.attempts_of(row._mapping)
        return {"attempts": attempts, "started_at": int(time.time() * 1000)}

    def prepare_retry(self, workflow_id: str) -> bool:
        """Ready a dead letter of this adapter for ``app.resume``: fresh attempts follow.

        Called by :func:`adapters.dead_letter.retry_dead_letter`. When the
        workflow failed because its row's retry budget was spent (its last step
        is ``give_up``), puts the failed row back to running, held by the
        workflow, and counts the retry in the workflow's event
        ``durable.legacy.retries``: the resume runs ``give_up`` again, which
        reads it and lets the workflow go on with a fresh retry budget (the
        ``attempts`` column counting on). Returns True then; False when the
        workflow failed elsewhere (a plain resume is right). Raises
        :class:`RetryRefusedError`, changing nothing, when the row is no longer
        failed (someone re-queued or removed it: the adapter runs a re-queued
        row as a new run).
        """
        steps = self.app.list_steps(workflow_id)
        if not steps or steps[-1].name != f"{self.workflow_name}.give_up":
            return False
        record = self.app.get_workflow(workflow_id)
        args, _ = self.app.executor.decode_inputs(workflow_id, record.inputs)
        found, value = self.app.storage.get_event(workflow_id, RETRY_EVENT)
        count = str(int(value or 0) + 1 if found else 1)
        storage = self.app.storage
        legacy = self.legacy
        if not args or legacy.state.deletes_on_claim:  # the workflow holds all of the row
            with storage.transaction() as conn:
                storage.set_event(conn, workflow_id, RETRY_EVENT, count)
            return True
        key = args[0]
        t = legacy.table
        now = datetime.now(UTC)
        values = legacy.state.unfail(now, running=True)
        lock = legacy.col("locked_by")
        if lock is not None and legacy.id_fits(workflow_id):
            values[lock.name] = workflow_id
        locked_at = legacy.col("locked_at")
        if locked_at is not None:
            values[locked_at.name] = legacy.time_value(locked_at, now)
        retry_at = legacy.col("next_retry_at")
        if retry_at is not None and retry_at.nullable:
            values[retry_at.name] = None
        self._stamp(values, now)
        failed = legacy.state.cond("failed", now)
        where = [t.c[legacy.key] == key] + ([failed] if failed is not None else [])
        update = sa.update(t).where(*where).values(values)
        update = update.execution_options(preserve_rowcount=True)

        def refuse(conn: sa.Connection) -> RetryRefusedError:
            row = self._select_row(conn, key, lock=False)
            where = "is gone" if row is None else f"is {legacy.state.of(row._mapping, now)}"
            return RetryRefusedError(
                f"row {key!r} of {legacy.qualified_name} {where}, no longer failed: someone "
                f"re-queued or removed it (a re-queued row runs as a new run); "
                f"{workflow_id!r} was left as it is"
            )

        if self.same_database:
            with storage.transaction() as conn:
                if not conn.execute(update).rowcount:
                    raise refuse(conn)
                storage.set_event(conn, workflow_id, RETRY_EVENT, count)
        else:
            with legacy.writing() as conn:
                if not conn.execute(update).rowcount:
                    raise refuse(conn)
            with storage.transaction() as conn:
                storage.set_event(conn, workflow_id, RETRY_EVENT, count)
        return True

    # -- shadow --

    def check(self) -> dict[Any, int]:
        """Reflect and check the legacy table; return the row count of each status value."""
        return self.legacy.check()

    def shadow(
        self,
        *,
        stuck_after: timedelta | float = timedelta(minutes=15),
        limit: int = 20,
    ) -> ShadowReport:
        """Report what a takeover would do now. Reads the legacy table only: changes nothing.

        ``stuck_after``: a running row older than this (by ``locked_at``, else
        ``updated_at``) is reported as stuck. ``limit``: how many keys each
        list of the report holds (the totals count every row).
        """
        return shadow_report(self, stuck_after=stuck_after, limit=limit)

    # -- takeover --

    def claim(self, limit: int | None = None) -> ClaimReport:
        """Poll once: enqueue a workflow for each pending, due row that has no live one.

        Rows are read with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL, MariaDB/MySQL),
        so concurrent pollers and legacy workers holding a row are skipped. The
        row stays pending until its workflow starts (``begin`` marks it running).
        A row whose earlier workflow ended and that is pending again (re-queued
        by legacy code or the cron sweeper) gets a new run, ``<id>#2``, ``#3``...

        When the legacy database (not the workflow database) cannot be reached,
        raises :class:`LegacyPollError`: a worker polling with ``app.poll`` logs
        it once and goes on with its other work, instead of backing off as for an
        outage of its own database.
        """
        try:
            return self._claim(limit)
        except LegacyDatabaseUnavailableError as exc:
            raise LegacyPollError(str(exc)) from None

    def _claim(self, limit: int | None) -> ClaimReport:
        legacy = self.legacy
        t = legacy.table
        want = limit or self.batch_size
        query = (
            sa.select(t.c[legacy.key])
            .where(legacy.due(datetime.now(UTC)))
            .order_by(t.c[legacy.key])
            .limit(want)
            .with_for_update(skip_locked=True)
        )
        storage = self.app.storage
        if self.same_database:
            with storage.transaction() as conn:
                keys = list(conn.execute(query).scalars())
                report = self._enqueue(conn, keys)
        elif legacy.backend == "sqlite":  # no row locks; the workflow ids are the guard
            with legacy.reading() as lconn:
                keys = list(lconn.execute(query).scalars())
            with storage.transaction() as conn:
                report = self._enqueue(conn, keys)
        else:
            with legacy.writing() as lconn:  # hold the row locks while enqueueing
                keys = list(lconn.execute(query).scalars())
                with storage.transaction() as conn:
                    report = self._enqueue(conn, keys)
        if report.started:
            storage.wakeups.signal("queue", self.queue.name)
            log.info("%s: %s", legacy.qualified_name, report)
        return report

    def _enqueue(self, conn: sa.Connection, keys: list[Any]) -> ClaimReport:
        if not keys:
            return ClaimReport([], [], [])
        storage = self.app.storage
        w = storage.workflows
        bases = {self.workflow_id(k): k for k in keys}
        seen = dict(
            conn.execute(
                sa.select(w.c.workflow_id, w.c.status).where(w.c.workflow_id.in_(list(bases)))
            ).all()
        )
        plan: list[tuple[str, Any, bool]] = []
        live: list[str] = []
        for base, key in bases.items():
            if base not in seen:
                plan.append((base, key, False))
                continue
            generation, status = 1, seen[base]
            pattern = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "#%"
            for wid, st in conn.execute(
                sa.select(w.c.workflow_id, w.c.status).where(
                    w.c.workflow_id.like(pattern, escape="\\")
                )
            ):
                suffix = wid[len(base) + 1 :]
                if suffix.isdigit() and int(suffix) > generation:
                    generation, status = int(suffix), st
            if status in LIVE:
                live.append(self.workflow_id(key, generation))
            else:
                plan.append((self.workflow_id(key, generation + 1), key, True))
        restarts = [key for _, key, again in plan if again]
        if restarts and self.legacy.backend == "sqlite" and not self.same_database:
            # No row locks here: the row was read as pending before its workflow ended,
            # which wrote its end back to the legacy row first. Read the row again.
            still = self._still_due(restarts)
            plan = [p for p in plan if not p[2] or p[1] in still]
        executor = self.app.executor
        too_long = [wid for wid, _, _ in plan if not self.legacy.id_fits(wid)]
        if too_long:
            self._warn_once(
                f"{self.legacy.qualified_name}: not started, their workflow ids do not fit "
                f"whole in column {self.legacy.columns.locked_by!r}: {', '.join(too_long[:5])}"
            )
            plan = [p for p in plan if p[0] not in too_long]
        rows = [
            {
                "workflow_id": wid,
                "name": self.workflow_name,
                "inputs": executor.encode_inputs(self.workflow_name, (json_key(key),), {}),
                "queue_name": self.queue.name,
            }
            for wid, key, _ in plan
        ]
        inserted = storage.enqueue_in(conn, rows) if rows else set()
        started = [wid for wid, _, _ in plan if wid in inserted]
        restarted = [wid for wid, _, again in plan if again and wid in inserted]
        return ClaimReport(started, restarted, live)

    def _still_due(self, keys: list[Any]) -> set[Any]:
        legacy = self.legacy
        t = legacy.table
        query = sa.select(t.c[legacy.key]).where(
            t.c[legacy.key].in_(keys), legacy.due(datetime.now(UTC))
        )
        with legacy.reading() as conn:
            return set(conn.execute(query).scalars())

    def due_rows(self) -> int:
        """How many rows are pending and due now (a plain count: no lock)."""
        legacy = self.legacy
        with legacy.reading() as conn:
            query = sa.select(sa.func.count()).select_from(legacy.table)
            return int(conn.execute(query.where(legacy.due(datetime.now(UTC)))).scalar_one())

    def live_workflows(self) -> list[str]:
        """Ids of this adapter's workflows that are enqueued or running."""
        records = self.app.storage.list_workflows(status=list(LIVE), name=self.workflow_name)
        return [r.workflow_id for r in records]

    def takeover(
        self,
        *,
        poll_interval: float = 1.0,
        worker: bool = True,
        worker_schedules: bool = False,
    ) -> Takeover:
        """Start taking the table over in this process and return the running :class:`Takeover`.

        A poller thread calls :meth:`claim` every ``poll_interval`` seconds
        (at once again when a poll filled a whole batch). With ``worker`` an
        in-process :class:`~toolkit.worker.Worker` runs the adapter's queue
        (and, with ``worker_schedules``, the app's schedules); without it, run
        ``durable worker`` processes. Checks the table first: a mapping error is
        raised here, before anything is touched.
        """
        self.legacy.check()
        return Takeover(
            self, poll_interval=poll_interval, worker=worker, schedules=worker_schedules
        ).start()


__all__ = [
    "ClaimReport",
    "JsonKey",
    "LegacyColumns",
    "LegacyPollError",
    "LegacyTable",
    "MappingError",
    "RetryRefusedError",
    "RowFailedError",
    "RunningRow",
    "ShadowReport",
    "StateColumns",
    "StatusColumnAdapter",
    "StatusValues",
    "Takeover",
    "TakeoverStats",
]
