"""Storage shared by the SQLite and PostgreSQL backends: every SQL statement lives here.

The hot path (start a workflow, checkpoint a step, finish a workflow) runs
statements compiled once per backend on a driver connection in autocommit
mode: one round trip and one commit each, and no read before a step runs for
the first time. Everything else goes through SQLAlchemy Core.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import telemetry
from ..errors import DatabaseUnavailableError, DurableError, WorkflowConflictError
from ..ids import check_id
from ..records import RESUMABLE_STATUSES, StepRecord, WorkflowRecord, from_ms, parse_error
from . import schema
from .health import DatabaseHealth

log = logging.getLogger("toolkit.storage")

T = TypeVar("T")

_CONNECTION_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)


SET_EVENT_STEP = "toolkit.set_event"
"""The step name under which ``set_event`` records itself (see ``Storage.fork``)."""

HOT_CONNECTIONS_KEPT = 32
"""Idle driver connections kept for the hot statements (more are closed after use)."""


class HotStatement(NamedTuple):
    """A hot-path statement compiled once: its SQL, constants and (numbered) parameter order."""

    name: str
    sql: str
    constants: dict[str, Any]
    order: tuple[str, ...]


def now_ms() -> int:
    return int(time.time() * 1000)


def describe_url(url: URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return url.render_as_string(hide_password=True)


class Orphan(NamedTuple):
    """A workflow taken over from a dead, expired or departed owner."""

    workflow_id: str
    name: str
    inputs: str | None
    recoveries: int
    queue_name: str | None


class ClaimedWorkflow(NamedTuple):
    """A workflow just claimed from its queue."""

    workflow_id: str
    name: str
    inputs: str | None
    due_ms: int
    """When it could first have started: its ``created_at`` or its ``not_before``."""
    replay: bool
    """It has recorded steps (it was resumed): load them before running it."""


class Storage:
    """The system tables of one database, behind plain methods.

    Subclasses supply the engines and the executor-liveness lock of their backend.
    """

    backend = "base"
    poll_interval = 1.0
    idle_poll_interval = 1.0
    """How long an idle worker sleeps between looks at its queues when nothing wakes it."""
    glance_interval = 0.2
    """How often an idle worker compares :meth:`change_token` (where there is one)."""
    """Seconds between database polls when no wake-up arrives."""

    def __init__(self, url: URL, engine: sa.Engine, hot_engine: sa.Engine, names: schema.Names):
        self.url = url
        self.engine = engine
        self.read_engine = engine.execution_options(durable_read_only=True)
        """The same pool, for reads only: on SQLite its transactions do not take the
        write lock (a read inside a ``@transaction``, which holds it, does not wait
        for itself), so a write through it would fail at once with "database is
        locked" instead of queueing. Writes go through :meth:`transaction`."""
        self.hot_engine = hot_engine
        self.names = names
        self.health = DatabaseHealth(describe_url(url))
        tables = schema.build_tables(names)
        self.workflows, self.steps, self.migrations = (
            tables.workflows,
            tables.steps,
            tables.migrations,
        )
        self.schedules, self.messages, self.events = (
            tables.schedules,
            tables.messages,
            tables.events,
        )
        self.meta = tables.meta
        self.workers = tables.workers
        self._store_id: str | None = None
        self._ready = False
        self._ready_lock = threading.Lock()
        self.wakeups = Wakeups()
        self._hot_free: list[Any] = []
        self._hot_closed = False
        self._compile_hot_statements()

    def start_listening(self) -> None:
        """Deliver wake-ups from other processes (PostgreSQL LISTEN); a no-op elsewhere."""

    def change_token(self) -> object:
        """A cheap value that changes when another process may have written; ``None``: no such.

        Lets an idle worker look at the database only when something changed.
        """
        return None

    # -- connection and schema ------------------------------------------------

    def describe(self) -> str:
        return describe_url(self.url)

    def unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        """The toolkit's error for a lost or refused connection (and note the outage)."""
        reason = getattr(exc, "orig", None) or exc
        text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        self.health.failed(text)
        if (tel := telemetry.active) is not None:
            tel.database_error(self.backend, "unavailable")
        return DatabaseUnavailableError(
            f"cannot use the {self.backend} database at {self.describe()}: {text}"
        )

    def connection_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions (SQLAlchemy's and the driver's) that mean the connection is unusable."""
        return _CONNECTION_ERRORS + self._driver_connection_errors()

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except self.connection_errors() as exc:
            raise self.unavailable(exc) from exc
        self.health.succeeded()

    def ensure_ready(self) -> None:
        """Connect once and apply missing migrations (first use upgrades automatically)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            with self._translate_errors(), self.read_engine.connect() as conn:
                version = schema.current_version(conn, self.names)
            if version < schema.LATEST_VERSION:
                self.upgrade()
            elif version > schema.LATEST_VERSION:
                raise DurableError(
                    f"the database at {self.describe()} has schema version {version}, newer than "
                    f"this toolkit's {schema.LATEST_VERSION}: upgrade durable-toolkit"
                )
            self._ready = True

    def upgrade(self) -> list[int]:
        """Apply the missing migrations; return the versions applied (empty if none)."""
        with self._translate_errors(), self.engine.begin() as conn:
            self._lock_migrations(conn)
            return schema.upgrade(conn, self.names)

    def store_id(self) -> str:
        """This state store's random identity (created by migration 4, never changes)."""
        if self._store_id is None:
            meta = self.meta
            with self._translate_errors(), self.read_engine.connect() as conn:
                value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "store_id"))
                self._store_id = str(value.scalar_one())
        return self._store_id

    def schema_version(self) -> int:
        with self._translate_errors(), self.read_engine.connect() as conn:
            return schema.current_version(conn, self.names)

    def _lock_migrations(self, conn: sa.Connection) -> None:
        """Serialise concurrent upgrades (backend-specific)."""

    def dispose(self) -> None:
        self.release_executor_lock()
        self.engine.dispose()
        self._hot_dispose()
        self.hot_engine.dispose()

    # -- executor liveness (backend-specific) ---------------------------------

    def acquire_executor_lock(self, owner: str) -> None:
        """Mark this process alive as ``owner`` until it exits."""
        raise NotImplementedError

    def release_executor_lock(self) -> None:
        """Give up the liveness mark (the process is stopping)."""

    def dead_owners(self, owners: Sequence[str], patient: bool = False) -> list[str]:
        """The owners among ``owners`` whose process is provably gone."""
        raise NotImplementedError

    # -- hot path ---------------------------------------------------------------

    def _hot_dialect(self) -> sa.Dialect:
        return self.hot_engine.dialect

    def _insert_fn(self) -> Callable[..., Any]:
        raise NotImplementedError

    def _compile_hot_statements(self) -> None:
        w, s = self.workflows, self.steps
        ins = self._insert_fn()
        # The workflow's key comes from its row, which must still be pending with this
        # owner: a checkpoint of a cancelled or taken-over run inserts nothing.
        typed = {c.name: c.type for c in s.columns if c.name != "wf_key"}
        params = [sa.cast(sa.bindparam(name), typed[name]) for name in typed]
        source = sa.select(w.c.wf_key, *params).where(
            w.c.workflow_id == sa.bindparam("workflow_id"),
            w.c.owner == sa.bindparam("owner"),
            w.c.status == "pending",
        )
        stmt = ins(s).from_select(["wf_key", *typed], source)
        stmt = stmt.on_conflict_do_update(
            index_elements=[s.c.wf_key, s.c.step_number],
            set_={
                name: stmt.excluded[name]
                for name in (
                    "status",
                    "attempts",
                    "output",
                    "error",
                    "finished_at",
                    "next_attempt_at",
                )
            },
            where=sa.and_(s.c.status == "retrying", s.c.name == stmt.excluded.name),
        )
        self.record_step_stmt = stmt.execution_options(preserve_rowcount=True)
        insert_wf = (
            ins(w)
            .inline()  # no RETURNING of the generated key: nothing reads it
            .values(
                {
                    name: sa.bindparam(name)
                    for name in (
                        "workflow_id",
                        "name",
                        "status",
                        "inputs",
                        "queue_name",
                        "priority",
                        "deduplication_id",
                        "not_before",
                        "owner",
                        "lease_expires_at",
                        "created_at",
                        "updated_at",
                        "started_at",
                    )
                }
            )
            .on_conflict_do_nothing(index_elements=[w.c.workflow_id])
        )
        finish = (
            sa.update(w)
            .where(
                w.c.workflow_id == sa.bindparam("wid"),
                w.c.owner == sa.bindparam("me"),
                w.c.status == "pending",
            )
            .values(
                status=sa.bindparam("status"),
                output=sa.bindparam("output"),
                error=sa.bindparam("error"),
                owner=None,
                lease_expires_at=None,
                updated_at=sa.bindparam("now"),
            )
        )
        self._record_step_sql = self._compile(stmt, "durable_record_step")
        self._insert_workflow_sql = self._compile(insert_wf, "durable_insert_workflow")
        self._finish_workflow_sql = self._compile(finish, "durable_finish_workflow")
        # The last step's checkpoint and the workflow's end in one commit (see finish_workflow).
        self._finish_with_step_sql = self._compile_finish_with_step(stmt)

    def _compile_finish_with_step(self, record_step: Any) -> HotStatement | None:
        """One statement that records a step and ends its workflow, or None (two statements).

        Where the dialect allows data-modifying CTEs (PostgreSQL), the workflow
        row is updated only if the step row was written: both or neither.
        """
        return None

    def _compile(self, stmt: sa.Executable, name: str = "") -> HotStatement:
        """SQL text for the driver, with the values of the statement's own constants."""
        compiled = stmt.compile(dialect=self._hot_dialect())  # type: ignore[attr-defined]
        order = tuple(compiled.positiontup or ())
        return HotStatement(name, str(compiled), dict(compiled.params), order)

    # Driver connections for the hot statements, kept in a free list: taking one
    # is a list pop (atomic under the GIL), far cheaper than a pool checkout.

    _hot_begin = "BEGIN"

    _correlated_returning = True
    """The dialect keeps table names in a ``RETURNING`` subquery (SQLAlchemy renders
    SQLite's unqualified, which would make a correlated subquery compare a column
    with itself)."""

    def _hot(self, statement: HotStatement, params: dict[str, Any]) -> int:
        """Run one compiled statement in autocommit mode; return the row count."""
        return self._hot_run(lambda conn: self._hot_execute(conn, statement, params))

    def _hot_run(self, work: Callable[[Any], T]) -> T:
        try:
            conn = self._hot_free.pop()
        except IndexError:
            conn = self._hot_connect()
        try:
            result = work(conn)
        except self._driver_connection_errors() as exc:
            self._hot_discard(conn)
            raise self.unavailable(exc) from exc
        except BaseException:
            self._hot_discard(conn)  # its state is unknown: never reuse it
            raise
        self.health.succeeded()
        if self._hot_closed or len(self._hot_free) >= HOT_CONNECTIONS_KEPT:
            self._hot_discard(conn)
        else:
            self._hot_free.append(conn)
        return result

    def _hot_connect(self) -> Any:
        """A new driver connection in autocommit mode, owned by the free list."""
        try:
            raw = self.hot_engine.raw_connection()
        except self.connection_errors() as exc:
            raise self.unavailable(exc) from exc
        raw.detach()  # ours from now on: closed by _hot_discard, never returned to the pool
        return raw

    def _hot_discard(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.close()

    def _hot_dispose(self) -> None:
        self._hot_closed = True
        while self._hot_free:
            self._hot_discard(self._hot_free.pop())

    def _hot_execute(self, conn: Any, statement: HotStatement, params: dict[str, Any]) -> int:
        """Run one statement on a hot connection (DB-API, named parameters)."""
        try:
            cur = conn.cursor()
            try:
                cur.execute(statement.sql, {**statement.constants, **params})
                return int(cur.rowcount)
            finally:
                cur.close()
        except self._driver_connection_errors() as exc:
            raise self.unavailable(exc) from exc

    def _hot_transaction(self, steps: Sequence[tuple[HotStatement, dict[str, Any]]]) -> bool:
        """Run statements in one transaction; stop and roll back at the first that changes
        no row. ``True`` when every statement changed a row (and it committed)."""

        def work(conn: Any) -> bool:
            try:
                cur = conn.cursor()
                try:
                    cur.execute(self._hot_begin)
                    for statement, params in steps:
                        cur.execute(statement.sql, {**statement.constants, **params})
                        if cur.rowcount != 1:
                            cur.execute("ROLLBACK")
                            return False
                    cur.execute("COMMIT")
                    return True
                finally:
                    cur.close()
            except self._driver_connection_errors() as exc:
                raise self.unavailable(exc) from exc

        return self._hot_run(work)

    def _driver_connection_errors(self) -> tuple[type[BaseException], ...]:
        return ()

    def insert_workflow(
        self,
        *,
        workflow_id: str,
        name: str,
        inputs: str,
        status: str,
        owner: str | None,
        lease_ms: int | None,
        queue_name: str | None = None,
        priority: int = 0,
        deduplication_id: str | None = None,
        not_before: int | None = None,
    ) -> bool:
        """Insert a workflow; ``False`` when the id already exists (nothing changed)."""
        check_id(workflow_id)
        if deduplication_id is not None:
            check_id(deduplication_id, "deduplication id")
        now = now_ms()
        count = self._hot(
            self._insert_workflow_sql,
            {
                "workflow_id": workflow_id,
                "name": name,
                "status": status,
                "inputs": inputs,
                "queue_name": queue_name,
                "priority": priority,
                "deduplication_id": deduplication_id,
                "not_before": not_before,
                "owner": owner,
                "lease_expires_at": (now + lease_ms) if lease_ms is not None else None,
                "created_at": now,
                "updated_at": now,
                "started_at": now if status == "pending" else None,
            },
        )
        return count == 1

    def step_params(
        self,
        *,
        workflow_id: str,
        owner: str,
        step_number: int,
        name: str,
        status: str,
        attempts: int,
        output: str | None,
        error: str | None,
        started_at: int,
        next_attempt_at: int | None = None,
    ) -> dict[str, Any]:
        return {
            "workflow_id": workflow_id,
            "owner": owner,
            "step_number": step_number,
            "name": name,
            "status": status,
            "attempts": attempts,
            "output": output,
            "error": error,
            "started_at": started_at,
            "finished_at": None if status == "retrying" else now_ms(),
            "next_attempt_at": next_attempt_at,
        }

    def record_step(self, params: dict[str, Any]) -> bool:
        """Checkpoint a step in its own commit.

        ``False`` means the checkpoint was refused: the workflow is no longer
        ``pending`` with this owner (cancelled, or taken over), or the step is
        already recorded as finished.
        """
        return self._hot(self._record_step_sql, params) == 1

    def record_step_in(self, conn: sa.Connection, params: dict[str, Any]) -> bool:
        """Checkpoint a step inside the caller's transaction (a ``@transaction`` step)."""
        return conn.execute(self.record_step_stmt, params).rowcount == 1

    def finish_workflow(
        self,
        workflow_id: str,
        owner: str,
        status: str,
        output: str | None,
        error: str | None,
        step: dict[str, Any] | None = None,
    ) -> bool:
        """Record the end of a workflow this owner runs; ``False`` if it no longer runs it.

        With ``step`` (the parameters of a step checkpoint, see :meth:`step_params`)
        the step is recorded in the same commit: both or neither.
        """
        finish = {
            "wid": workflow_id,
            "me": owner,
            "status": status,
            "output": output,
            "error": error,
            "now": now_ms(),
        }
        if step is None:
            return self._hot(self._finish_workflow_sql, finish) == 1
        combined = self._finish_with_step_sql
        if combined is None:
            return self._hot_transaction(
                [(self._record_step_sql, step), (self._finish_workflow_sql, finish)]
            )
        both = {
            **step,
            "wf_status": status,
            "wf_output": output,
            "wf_error": error,
            "now": finish["now"],
        }
        return self._hot(combined, both) == 1

    # -- transactions -----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection in a transaction that commits on success, rolls back on error.

        A failure to connect, or a connection lost midway, raises
        :class:`DatabaseUnavailableError`; any other database error (a missing
        table, a deadlock, a serialization failure) is raised as it is.
        """
        try:
            conn = self.engine.connect()
        except self.connection_errors() as exc:
            raise self.unavailable(exc) from exc
        try:
            with conn.begin():
                yield conn
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:  # lost, not an error of the SQL that ran
                raise self.unavailable(exc) from exc
            if (tel := telemetry.active) is not None:
                tel.database_error(self.backend, "error")
            raise
        finally:
            with contextlib.suppress(Exception):  # closing a dead connection may fail
                conn.close()
        self.health.succeeded()

    # -- reads ------------------------------------------------------------------

    def _workflow_record(self, row: sa.Row[Any]) -> WorkflowRecord:
        return WorkflowRecord(
            workflow_id=row.workflow_id,
            name=row.name,
            status=row.status,
            created_at=from_ms(row.created_at),  # type: ignore[arg-type]
            updated_at=from_ms(row.updated_at),  # type: ignore[arg-type]
            error=parse_error(row.error),
            inputs=row.inputs,
            output=row.output,
            queue_name=row.queue_name,
            owner=row.owner,
            lease_expires_at=from_ms(row.lease_expires_at),
            recoveries=row.recoveries,
            started_at=from_ms(row.started_at),
        )

    def _step_record(self, workflow_id: str, row: sa.Row[Any]) -> StepRecord:
        return StepRecord(
            workflow_id=workflow_id,
            step_number=row.step_number,
            name=row.name,
            status=row.status,
            attempts=row.attempts,
            output=row.output,
            error=parse_error(row.error),
            started_at=from_ms(row.started_at),
            finished_at=from_ms(row.finished_at),
            next_attempt_at=from_ms(row.next_attempt_at),
        )

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        check_id(workflow_id)
        w = self.workflows
        with self._translate_errors(), self.read_engine.connect() as conn:
            row = conn.execute(sa.select(w).where(w.c.workflow_id == workflow_id)).first()
        return self._workflow_record(row) if row is not None else None

    def list_workflows(
        self,
        *,
        status: str | Sequence[str] | None = None,
        name: str | None = None,
        queue_name: str | None = None,
        limit: int | None = None,
    ) -> list[WorkflowRecord]:
        """Workflows, newest first."""
        w = self.workflows
        query = sa.select(w).order_by(w.c.created_at.desc(), w.c.workflow_id.desc())
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            query = query.where(w.c.status.in_(statuses))
        if name is not None:
            query = query.where(w.c.name == name)
        if queue_name is not None:
            query = query.where(w.c.queue_name == queue_name)
        if limit is not None:
            query = query.limit(limit)
        with self._translate_errors(), self.read_engine.connect() as conn:
            return [self._workflow_record(row) for row in conn.execute(query)]

    def load_steps(self, workflow_id: str) -> dict[int, StepRecord]:
        """Every recorded step of a workflow, by step number (the replay read)."""
        s = self.steps
        query = (
            sa.select(s).where(s.c.wf_key == self._key_of(workflow_id)).order_by(s.c.step_number)
        )
        with self._translate_errors(), self.read_engine.connect() as conn:
            rows = conn.execute(query)
            return {row.step_number: self._step_record(workflow_id, row) for row in rows}

    def workflow_key(self, workflow_id: str) -> int | None:
        """The workflow's integer key (never reused, unlike an id after a prune)."""
        w = self.workflows
        with self._translate_errors(), self.read_engine.connect() as conn:
            value = conn.execute(
                sa.select(w.c.wf_key).where(w.c.workflow_id == workflow_id)
            ).scalar()
        return int(value) if value is not None else None

    def keys_not_done(self, wf_keys: Sequence[int]) -> set[int]:
        """Those of ``wf_keys`` whose workflow exists and did not succeed or fail (a
        cancelled one may be resumed with a committed transaction not yet checkpointed)."""
        if not wf_keys:
            return set()
        w = self.workflows
        with self._translate_errors(), self.read_engine.connect() as conn:
            return set(
                conn.execute(
                    sa.select(w.c.wf_key).where(
                        w.c.wf_key.in_(list(wf_keys)),
                        w.c.status.not_in(["succeeded", "failed"]),
                    )
                ).scalars()
            )

    def _key_of(self, workflow_id: str) -> sa.ScalarSelect[Any]:
        """The integer key of a workflow, as a subquery (steps refer to workflows by it)."""
        w = self.workflows
        return sa.select(w.c.wf_key).where(w.c.workflow_id == workflow_id).scalar_subquery()

    # -- ownership ----------------------------------------------------------------

    def claim_orphans(
        self,
        owner: str,
        names: Sequence[str],
        lease_ms: int,
        limit: int = 1000,
        *,
        foreign: bool = True,
        patient: bool = False,
    ) -> list[Orphan]:
        """Take over ``pending`` workflows nobody alive runs; return what was taken.

        A workflow is an orphan when it has no owner, its lease expired, or its
        owner's process is provably gone. ``recoveries`` counts the takeovers
        from another owner, dead or expired (a workflow released by a clean
        shutdown has no owner, and one of ``owner``'s own is not counted).
        ``foreign=False`` takes only unowned workflows and ``owner``'s own
        expired ones: right after a database outage, when other owners may be
        alive but not yet reconnected.
        """
        if not names:
            return []
        w = self.workflows
        now = now_ms()
        if foreign:
            with self._translate_errors(), self.read_engine.connect() as conn:
                others = list(
                    conn.execute(
                        sa.select(w.c.owner)
                        .where(
                            w.c.status == "pending",
                            w.c.owner.is_not(None),
                            w.c.owner != owner,
                            w.c.lease_expires_at >= now,
                        )
                        .distinct()
                    ).scalars()
                )
            dead = self.dead_owners(others, patient) if others else []
            orphaned = sa.or_(w.c.owner.is_(None), w.c.lease_expires_at < now, w.c.owner.in_(dead))
        else:
            orphaned = sa.or_(
                w.c.owner.is_(None), sa.and_(w.c.owner == owner, w.c.lease_expires_at < now)
            )
        candidates = (
            sa.select(w.c.workflow_id)
            .where(w.c.status == "pending", w.c.name.in_(list(names)), orphaned)
            .order_by(w.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            sa.update(w)
            .where(w.c.workflow_id.in_(candidates.scalar_subquery()))
            .values(
                owner=owner,
                lease_expires_at=now + lease_ms,
                recoveries=w.c.recoveries
                + sa.case((w.c.owner.is_(None), 0), (w.c.owner == owner, 0), else_=1),
                updated_at=now,
            )
            .returning(w.c.workflow_id, w.c.name, w.c.inputs, w.c.recoveries, w.c.queue_name)
        )
        with self.transaction() as conn:
            return [Orphan(*row) for row in conn.execute(stmt)]

    def next_foreign_expiry(self, owner: str, names: Sequence[str]) -> int | None:
        """When the earliest lease of another owner's running workflow (of ``names``) runs out."""
        if not names:
            return None
        w = self.workflows
        with self._translate_errors(), self.read_engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(w.c.lease_expires_at)).where(
                    w.c.status == "pending",
                    w.c.owner.is_not(None),
                    w.c.owner != owner,
                    w.c.name.in_(list(names)),
                )
            ).scalar()
        return int(value) if value is not None else None

    def claim_workflow(self, workflow_id: str, owner: str, lease_ms: int) -> bool:
        """Take a ``pending`` workflow that has no owner (after ``resume``)."""
        w = self.workflows
        now = now_ms()
        stmt = (
            sa.update(w)
            .where(w.c.workflow_id == workflow_id, w.c.status == "pending", w.c.owner.is_(None))
            .values(owner=owner, lease_expires_at=now + lease_ms, updated_at=now)
        )
        with self.transaction() as conn:
            return conn.execute(stmt).rowcount == 1

    def heartbeat(self, owner: str, lease_ms: int, running: Sequence[str]) -> set[str]:
        """Extend the leases of the workflows this owner runs; return those it no longer holds.

        Only ``running`` workflows are renewed: a workflow this process stopped
        running keeps its lease until it expires, then anyone may take it over.
        """
        if not running:
            return set()
        w = self.workflows
        stmt = (
            sa.update(w)
            .where(
                w.c.workflow_id.in_(list(running)),
                w.c.owner == owner,
                w.c.status == "pending",
            )
            .values(lease_expires_at=now_ms() + lease_ms)
            .returning(w.c.workflow_id)
        )
        with self.transaction() as conn:
            held = set(conn.execute(stmt).scalars())
        return set(running) - held

    # -- control ------------------------------------------------------------------

    def cancel(self, workflow_id: str) -> bool:
        """Mark an unfinished workflow ``cancelled``; ``False`` if it had already ended."""
        check_id(workflow_id)
        w = self.workflows
        stmt = (
            sa.update(w)
            .where(w.c.workflow_id == workflow_id, w.c.status.in_(["pending", "enqueued"]))
            .values(status="cancelled", owner=None, lease_expires_at=None, updated_at=now_ms())
        )
        with self.transaction() as conn:
            return conn.execute(stmt).rowcount == 1

    def resume(self, workflow_id: str) -> bool:
        """Make a failed or cancelled workflow ``pending`` again, with no owner.

        Recorded steps stay as they are, except a failed last step, which gets
        a fresh attempt budget so that it runs again. The recovery count starts
        again from zero. A queued workflow goes back to ``enqueued``, under its
        queue's limits; the worker that claims it replays its recorded steps.
        Raises ``WorkflowConflictError`` (and changes nothing) if its
        deduplication id is held by another live workflow of its queue.
        """
        try:
            return self._resume(workflow_id)
        except sa.exc.IntegrityError as exc:
            w = self.workflows
            with self._translate_errors(), self.read_engine.connect() as conn:
                row = conn.execute(
                    sa.select(w.c.queue_name, w.c.deduplication_id).where(
                        w.c.workflow_id == workflow_id
                    )
                ).first()
            if row is None or row.deduplication_id is None:
                raise
            holder = self.live_duplicate(row.queue_name, row.deduplication_id)
            if holder is None:
                raise
            raise WorkflowConflictError(
                f"workflow {workflow_id!r} cannot be resumed: its deduplication id "
                f"{row.deduplication_id!r} is held by workflow {holder!r} of queue "
                f"{row.queue_name!r}, which is still enqueued or running; resume it once "
                "that one has ended"
            ) from exc

    def _resume(self, workflow_id: str) -> bool:
        w, s = self.workflows, self.steps
        now = now_ms()
        with self.transaction() as conn:
            changed = conn.execute(
                sa.update(w)
                .where(w.c.workflow_id == workflow_id, w.c.status.in_(RESUMABLE_STATUSES))
                .values(
                    status=sa.case((w.c.queue_name.is_not(None), "enqueued"), else_="pending"),
                    # Due again from now: a worker's claim lag counts from the resume.
                    not_before=sa.case((w.c.queue_name.is_not(None), now), else_=w.c.not_before),
                    output=None,
                    error=None,
                    owner=None,
                    lease_expires_at=None,
                    recoveries=0,
                    updated_at=now,
                )
                .returning(w.c.status, w.c.queue_name)
            ).first()
            if changed is None:
                return False
            if changed.status == "enqueued":
                self._notify_queue(conn, {changed.queue_name})
            key = self._key_of(workflow_id)
            last = sa.select(sa.func.max(s.c.step_number)).where(s.c.wf_key == key)
            conn.execute(
                sa.update(s)
                .where(s.c.wf_key == key, s.c.step_number == last.scalar_subquery())
                .where(s.c.status == "failed")
                .values(
                    status="retrying",
                    attempts=0,
                    started_at=now,  # a fresh budget: attempts and max_elapsed
                    finished_at=None,
                    next_attempt_at=None,
                )
            )
        return True

    def fork(self, workflow_id: str, new_id: str, from_step: int) -> WorkflowRecord | None:
        """Copy a workflow as ``new_id`` with the checkpoints of its steps before ``from_step``.

        The copy has the same name, inputs, queue and priority, and no owner:
        ``pending``, or ``enqueued`` if the original came from a queue. One
        transaction: all of it or nothing. Returns the original's record, or
        ``None`` if there is no workflow ``workflow_id``. Raises
        ``WorkflowConflictError`` if ``new_id`` is taken, ``DurableError`` if a
        step before ``from_step`` has not finished (``retrying``: nothing to
        replay). Steps that set an event are not copied: they run again in the
        copy, so its events exist under its own id.
        """
        check_id(workflow_id)
        check_id(new_id)
        w, s = self.workflows, self.steps
        now = now_ms()
        ins = self._insert_fn()
        step_columns = [c.name for c in s.columns if c.name != "wf_key"]
        with self.transaction() as conn:
            source = conn.execute(sa.select(w).where(w.c.workflow_id == workflow_id)).first()
            if source is None:
                return None
            unfinished = conn.execute(
                sa.select(s.c.step_number, s.c.name, s.c.status)
                .where(
                    s.c.wf_key == source.wf_key,
                    s.c.step_number < from_step,
                    s.c.status.not_in(["succeeded", "failed"]),  # a failure replays too
                )
                .order_by(s.c.step_number)
                .limit(1)
            ).first()
            if unfinished is not None:
                raise DurableError(
                    f"step {unfinished.step_number} ({unfinished.name}) of workflow "
                    f"{workflow_id!r} has not finished ({unfinished.status}), so it cannot be "
                    f"replayed: fork from step {unfinished.step_number} or an earlier one"
                )
            queued = source.queue_name is not None
            created = conn.execute(
                ins(w)
                .values(
                    workflow_id=new_id,
                    name=source.name,
                    status="enqueued" if queued else "pending",
                    inputs=source.inputs,
                    queue_name=source.queue_name,
                    priority=source.priority,
                    created_at=now,
                    updated_at=now,
                    started_at=None if queued else now,
                )
                .on_conflict_do_nothing(index_elements=[w.c.workflow_id])
                .returning(w.c.wf_key)
            ).scalar()
            if created is None:
                raise WorkflowConflictError(f"workflow id {new_id!r} is already used")
            conn.execute(
                sa.insert(s).from_select(
                    ["wf_key", *step_columns],
                    sa.select(
                        sa.literal(created, s.c.wf_key.type), *(s.c[c] for c in step_columns)
                    ).where(
                        s.c.wf_key == source.wf_key,
                        s.c.step_number < from_step,
                        s.c.name != SET_EVENT_STEP,
                    ),
                )
            )
            if queued:
                self._notify_queue(conn, {source.queue_name})
            return self._workflow_record(source)

    # -- queues -------------------------------------------------------------------

    def enqueue_many(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Insert enqueued workflows in batches; return the ids actually inserted.

        A row whose id exists, or whose deduplication id is live in its queue,
        is skipped (nothing changes for it).
        """
        with self.transaction() as conn:
            return self.enqueue_in(conn, rows)

    def enqueue_in(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
        """``enqueue_many`` inside the caller's transaction: the rows commit with it."""
        for r in rows:
            check_id(r["workflow_id"])
            if r.get("deduplication_id") is not None:
                check_id(r["deduplication_id"], "deduplication id")
        now = now_ms()
        inserted: set[str] = set()
        full = [
            {
                "workflow_id": r["workflow_id"],
                "name": r["name"],
                "status": "enqueued",
                "inputs": r["inputs"],
                "queue_name": r["queue_name"],
                "priority": r.get("priority", 0),
                "deduplication_id": r.get("deduplication_id"),
                # Counted from the same instant as created_at.
                "not_before": now + r["delay_ms"] if r.get("delay_ms") else None,
                "created_at": now,
                "updated_at": now,
            }
            for r in rows
        ]
        inserted.update(self._insert_enqueued(conn, full))
        self._notify_queue(conn, {r["queue_name"] for r in full})
        return inserted

    def _insert_enqueued(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> set[str]:
        """Insert full workflow rows, skipping conflicts; return the ids inserted."""
        w = self.workflows
        ins = self._insert_fn()
        inserted: set[str] = set()
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            stmt = ins(w).values(chunk).on_conflict_do_nothing().returning(w.c.workflow_id)
            inserted.update(conn.execute(stmt).scalars())
        return inserted

    def _notify_queue(self, conn: sa.Connection, queues: set[str]) -> None:
        """Wake workers waiting for these queues (PostgreSQL: NOTIFY at commit)."""

    def live_duplicate(self, queue_name: str, deduplication_id: str) -> str | None:
        """The id of the enqueued or running workflow holding this deduplication id."""
        w = self.workflows
        with self._translate_errors(), self.read_engine.connect() as conn:
            return conn.execute(
                sa.select(w.c.workflow_id).where(
                    w.c.queue_name == queue_name,
                    w.c.deduplication_id == deduplication_id,
                    w.c.status.in_(["enqueued", "pending"]),
                )
            ).scalar()

    def _lock_queue(self, conn: sa.Connection, queue_name: str) -> None:
        """Serialise claims on one queue across processes (backend-specific)."""

    def claim_from_queue(
        self,
        *,
        owner: str,
        queue_name: str,
        names: Sequence[str],
        want: int,
        lease_ms: int,
        concurrency: int | None,
        rate_limit: tuple[int, float] | None,
    ) -> list[ClaimedWorkflow]:
        """Start up to ``want`` runnable enqueued workflows of a queue, in priority order.

        Runs under a per-queue lock so that the queue's global concurrency and
        rate limit hold across every worker (a resumed workflow counts as a new
        start). ``ClaimedWorkflow.replay`` says the workflow has recorded steps
        (it was resumed), so its runner must load them first.
        """
        if want <= 0 or not names:
            return []
        w, s = self.workflows, self.steps
        now = now_ms()
        # The statuses are literals in the SQL, not parameters, so that even a generic
        # (parameter-blind) plan matches the partial indexes: ``workflows_queue_running``
        # for the count, ``workflows_queue_claim`` for the candidates. Both hold live
        # rows only, so a claim's cost does not grow with the finished workflows.
        pending = sa.literal_column("'pending'", sa.Text)
        enqueued = sa.literal_column("'enqueued'", sa.Text)
        with self.transaction() as conn:
            self._lock_queue(conn, queue_name)
            if concurrency is not None:
                running = conn.execute(
                    sa.select(sa.func.count()).where(
                        w.c.queue_name == queue_name, w.c.status == pending
                    )
                ).scalar_one()
                want = min(want, concurrency - running)
            if rate_limit is not None:
                limit, period = rate_limit
                started = conn.execute(
                    sa.select(sa.func.count()).where(
                        w.c.queue_name == queue_name,
                        w.c.started_at >= now - int(period * 1000),
                    )
                ).scalar_one()
                want = min(want, limit - started)
            if want <= 0:
                return []
            candidates = (
                sa.select(w.c.workflow_id)
                .where(
                    w.c.status == enqueued,
                    w.c.queue_name == queue_name,
                    w.c.name.in_(list(names)),
                    sa.or_(w.c.not_before.is_(None), w.c.not_before <= now),
                )
                .order_by(w.c.priority.desc(), w.c.created_at, w.c.workflow_id)
                .limit(want)
                .with_for_update(skip_locked=True)
            )
            stmt = (
                sa.update(w)
                .where(w.c.workflow_id.in_(candidates.scalar_subquery()))
                .values(
                    status="pending",
                    owner=owner,
                    lease_expires_at=now + lease_ms,
                    started_at=now,
                    updated_at=now,
                )
                .returning(
                    w.c.workflow_id,
                    w.c.name,
                    w.c.inputs,
                    w.c.priority,
                    w.c.created_at,
                    w.c.not_before,
                    w.c.wf_key,
                    *(
                        # One index probe in the same statement: a fresh workflow has no steps.
                        [sa.exists().where(s.c.wf_key == w.c.wf_key).label("replay")]
                        if self._correlated_returning
                        else []
                    ),
                )
            )
            rows = sorted(conn.execute(stmt), key=lambda r: (-r.priority, r.created_at))
            if self._correlated_returning:
                with_steps = {r.wf_key for r in rows if r.replay}
            elif rows:
                with_steps = set(
                    conn.execute(
                        sa.select(s.c.wf_key)
                        .distinct()
                        .where(s.c.wf_key.in_([r.wf_key for r in rows]))
                    ).scalars()
                )
            else:
                with_steps = set()
            return [
                ClaimedWorkflow(
                    r.workflow_id,
                    r.name,
                    r.inputs,
                    max(r.created_at, r.not_before or 0),
                    r.wf_key in with_steps,
                )
                for r in rows
            ]

    def next_due(self, queue_names: Sequence[str]) -> int | None:
        """The earliest ``not_before`` of a delayed enqueued workflow in these queues."""
        w = self.workflows
        with self._translate_errors(), self.read_engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.min(w.c.not_before)).where(
                    w.c.status == "enqueued",
                    w.c.queue_name.in_(list(queue_names)),
                    w.c.not_before > now_ms(),
                )
            ).scalar()

    def release(self, owner: str, workflow_ids: Sequence[str]) -> int:
        """Give up running workflows (clean shutdown): they stay pending, claimable at once."""
        if not workflow_ids:
            return 0
        w = self.workflows
        with self.transaction() as conn:
            return conn.execute(
                sa.update(w)
                .where(
                    w.c.owner == owner,
                    w.c.status == "pending",
                    w.c.workflow_id.in_(list(workflow_ids)),
                )
                .values(owner=None, lease_expires_at=None, updated_at=now_ms())
            ).rowcount

    def queue_stats(self) -> list[dict[str, Any]]:
        """Per queue: enqueued (runnable and delayed), running, oldest enqueued time."""
        w = self.workflows
        now = now_ms()
        query = (
            sa.select(
                w.c.queue_name,
                sa.func.sum(sa.case((w.c.status == "enqueued", 1), else_=0)).label("enqueued"),
                sa.func.sum(
                    sa.case((sa.and_(w.c.status == "enqueued", w.c.not_before > now), 1), else_=0)
                ).label("delayed"),
                sa.func.sum(sa.case((w.c.status == "pending", 1), else_=0)).label("running"),
                sa.func.min(sa.case((w.c.status == "enqueued", w.c.created_at))).label("oldest"),
            )
            .where(w.c.queue_name.is_not(None), w.c.status.in_(["enqueued", "pending"]))
            .group_by(w.c.queue_name)
            .order_by(w.c.queue_name)
        )
        with self._translate_errors(), self.read_engine.connect() as conn:
            return [
                {
                    "queue": r.queue_name,
                    "enqueued": int(r.enqueued or 0),
                    "delayed": int(r.delayed or 0),
                    "running": int(r.running or 0),
                    "oldest": from_ms(r.oldest),
                }
                for r in conn.execute(query)
            ]

    # -- schedules ------------------------------------------------------------------

    def schedule_ticks(
        self,
        *,
        schedule: str,
        plan: Callable[[int | None], tuple[list[int], int]],
        make_row: Callable[[int], dict[str, Any]],
        owner: str,
        lease_ms: int,
    ) -> list[dict[str, Any]]:
        """Record the due ticks of a schedule; return the workflow rows this call won.

        ``plan(last_tick)`` returns the ticks to fire and the tick to record as the
        last one seen (ticks are epoch milliseconds).
        Each tick's workflow id is unique, so a tick becomes exactly one workflow
        however many workers race for it; the winner owns it and runs it.
        """
        s, w = self.schedules, self.workflows
        ins = self._insert_fn()
        now = now_ms()
        won: list[dict[str, Any]] = []
        with self.transaction() as conn:
            self._lock_queue(conn, f"schedule:{schedule}")
            last = conn.execute(sa.select(s.c.last_tick).where(s.c.name == schedule)).scalar()
            ticks, seen = plan(last)
            if last is not None and seen <= last:
                return []
            for tick in ticks:
                row = make_row(tick)
                stmt = (
                    ins(w)
                    .values(
                        **row,
                        status="pending",
                        owner=owner,
                        lease_expires_at=now + lease_ms,
                        started_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing()
                )
                if conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount == 1:
                    won.append(row)
            upsert = ins(s).values(name=schedule, last_tick=seen)
            upsert = upsert.on_conflict_do_update(
                index_elements=[s.c.name], set_={"last_tick": upsert.excluded.last_tick}
            )
            conn.execute(upsert)
        return won

    # -- messages and events ----------------------------------------------------------

    def send_message(
        self, workflow_id: str, topic: str, value: str, conn: sa.Connection | None = None
    ) -> None:
        """Put a message in a workflow's inbox (inside ``conn``'s transaction if given)."""
        check_id(workflow_id)
        check_id(topic, "topic")
        m = self.messages
        stmt = sa.insert(m).values(
            workflow_id=workflow_id, topic=topic, value=value, created_at=now_ms()
        )
        if conn is not None:
            conn.execute(stmt)
            self._notify_inbox(conn, workflow_id)
            return
        with self.transaction() as tx:
            tx.execute(stmt)
            self._notify_inbox(tx, workflow_id)

    def _notify_inbox(self, conn: sa.Connection, workflow_id: str) -> None:
        """Wake a workflow waiting in ``recv`` (PostgreSQL: NOTIFY at commit)."""

    def take_message(self, conn: sa.Connection, workflow_id: str, topic: str) -> tuple[bool, Any]:
        """Delete and return the oldest message of a topic, inside ``conn``'s transaction."""
        m = self.messages
        oldest = (
            sa.select(m.c.message_id, m.c.value)
            .where(m.c.workflow_id == workflow_id, m.c.topic == topic)
            .order_by(m.c.message_id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = conn.execute(oldest).first()
        if row is None:
            return False, None
        conn.execute(sa.delete(m).where(m.c.message_id == row.message_id))
        return True, row.value

    def set_event(self, conn: sa.Connection, workflow_id: str, key: str, value: str) -> None:
        check_id(key, "event key")
        e = self.events
        ins = self._insert_fn()
        stmt = ins(e).values(workflow_id=workflow_id, key=key, value=value, updated_at=now_ms())
        stmt = stmt.on_conflict_do_update(
            index_elements=[e.c.workflow_id, e.c.key],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
        conn.execute(stmt)
        self._notify_inbox(conn, workflow_id)

    def get_event(self, workflow_id: str, key: str) -> tuple[bool, str | None]:
        check_id(workflow_id)
        check_id(key, "event key")
        e = self.events
        with self._translate_errors(), self.read_engine.connect() as conn:
            row = conn.execute(
                sa.select(e.c.value).where(e.c.workflow_id == workflow_id, e.c.key == key)
            ).first()
        return (True, row.value) if row is not None else (False, None)

    # -- dead letters -------------------------------------------------------------------

    def insert_failed_workflows(
        self, rows: Sequence[dict[str, Any]], conn: sa.Connection | None = None
    ) -> set[str]:
        """Insert workflows that already ended ``failed`` (imported dead letters).

        Each row has ``workflow_id``, ``name``, ``inputs``, ``error`` (JSON text) and
        ``failed_at`` (epoch ms, kept as the creation and update time), and may have
        ``events``: ``{key: value text}`` set on the workflow with it. A row whose id
        exists is skipped, so importing twice creates nothing new. Runs inside
        ``conn``'s transaction when given (the caller commits), else commits itself.
        Returns the ids actually inserted.
        """
        w, e = self.workflows, self.events
        for r in rows:
            check_id(r["workflow_id"])
        full = [
            {
                "workflow_id": r["workflow_id"],
                "name": r["name"],
                "status": "failed",
                "inputs": r["inputs"],
                "error": r["error"],
                "created_at": r["failed_at"],
                "updated_at": r["failed_at"],
            }
            for r in rows
        ]
        ins = self._insert_fn()
        inserted: set[str] = set()
        now = now_ms()

        def insert(c: sa.Connection) -> None:
            for start in range(0, len(full), 500):
                chunk = full[start : start + 500]
                stmt = ins(w).values(chunk).on_conflict_do_nothing().returning(w.c.workflow_id)
                inserted.update(c.execute(stmt).scalars())
            events = [
                {"workflow_id": r["workflow_id"], "key": k, "value": v, "updated_at": now}
                for r in rows
                if r["workflow_id"] in inserted
                for k, v in (r.get("events") or {}).items()
            ]
            for start in range(0, len(events), 500):
                stmt = ins(e).values(events[start : start + 500]).on_conflict_do_nothing()
                c.execute(stmt)

        if not full:
            return inserted
        if conn is not None:
            insert(conn)
        else:
            with self.transaction() as tx:
                insert(tx)
        return inserted

    def get_events(self, key: str, workflow_ids: Sequence[str]) -> dict[str, str | None]:
        """The value of event ``key`` of each of these workflows that has it."""
        e = self.events
        found: dict[str, str | None] = {}
        with self._translate_errors(), self.read_engine.connect() as conn:
            for start in range(0, len(workflow_ids), 500):
                chunk = list(workflow_ids[start : start + 500])
                query = sa.select(e.c.workflow_id, e.c.value).where(
                    e.c.key == key, e.c.workflow_id.in_(chunk)
                )
                found.update({r.workflow_id: r.value for r in conn.execute(query)})
        return found

    def delete_workflows(self, workflow_ids: Sequence[str], *, status: str) -> list[str]:
        """Delete the workflows among ``workflow_ids`` that are in ``status``.

        Their steps, messages and events go with them, in one transaction. A
        workflow whose status changed meanwhile is left alone. Returns the ids deleted.
        """
        w, s, m, e = self.workflows, self.steps, self.messages, self.events
        deleted: list[str] = []
        with self.transaction() as conn:
            for start in range(0, len(workflow_ids), 500):
                chunk = list(workflow_ids[start : start + 500])
                gone = conn.execute(
                    sa.delete(w)
                    .where(w.c.workflow_id.in_(chunk), w.c.status == status)
                    .returning(w.c.workflow_id, w.c.wf_key)
                ).all()
                if not gone:
                    continue
                ids = [row.workflow_id for row in gone]
                conn.execute(sa.delete(s).where(s.c.wf_key.in_([row.wf_key for row in gone])))
                for table in (m, e):
                    conn.execute(sa.delete(table).where(table.c.workflow_id.in_(ids)))
                deleted.extend(ids)
        return deleted


class Wakeups:
    """In-process wake-up signals, keyed by channel and name (a queue, a workflow id).

    Waiters always re-check the database after waking and wake on their own
    after their timeout, so a lost signal only costs latency, never correctness.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], threading.Event] = {}

    def event(self, channel: str, name: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault((channel, name), threading.Event())

    def signal(self, channel: str, name: str) -> None:
        with self._lock:
            event = self._events.get((channel, name))
        if event is not None:
            event.set()

    def signal_all(self) -> None:
        with self._lock:
            events = list(self._events.values())
        for event in events:
            event.set()

    def bind(self, channel: str, name: str, event: threading.Event) -> None:
        """Make ``event`` the one signalled for (channel, name)."""
        with self._lock:
            self._events[(channel, name)] = event

    def wait(self, channel: str, name: str, timeout: float) -> bool:
        event = self.event(channel, name)
        woke = event.wait(timeout)
        event.clear()
        return woke
