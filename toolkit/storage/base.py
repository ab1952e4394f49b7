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
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ..errors import DatabaseUnavailableError, DurableError
from ..records import StepRecord, WorkflowRecord, from_ms, parse_error
from . import schema

log = logging.getLogger("toolkit.storage")

T = TypeVar("T")

_CONNECTION_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)


def now_ms() -> int:
    return int(time.time() * 1000)


def describe_url(url: URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return url.render_as_string(hide_password=True)


class Storage:
    """The system tables of one database, behind plain methods.

    Subclasses supply the engines and the executor-liveness lock of their backend.
    """

    backend = "base"

    def __init__(self, url: URL, engine: sa.Engine, hot_engine: sa.Engine, names: schema.Names):
        self.url = url
        self.engine = engine
        self.hot_engine = hot_engine
        self.names = names
        _, self.workflows, self.steps, self.migrations = schema.build_tables(names)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._compile_hot_statements()

    # -- connection and schema ------------------------------------------------

    def describe(self) -> str:
        return describe_url(self.url)

    def unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        reason = getattr(exc, "orig", None) or exc
        text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        return DatabaseUnavailableError(
            f"cannot use the {self.backend} database at {self.describe()}: {text}"
        )

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except _CONNECTION_ERRORS as exc:
            raise self.unavailable(exc) from exc

    def ensure_ready(self) -> None:
        """Connect once and apply missing migrations (first use upgrades automatically)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            with self._translate_errors(), self.engine.connect() as conn:
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

    def schema_version(self) -> int:
        with self._translate_errors(), self.engine.connect() as conn:
            return schema.current_version(conn, self.names)

    def _lock_migrations(self, conn: sa.Connection) -> None:
        """Serialise concurrent upgrades (backend-specific)."""

    def dispose(self) -> None:
        self.release_executor_lock()
        self.engine.dispose()
        self.hot_engine.dispose()

    # -- executor liveness (backend-specific) ---------------------------------

    def acquire_executor_lock(self, owner: str) -> None:
        """Mark this process alive as ``owner`` until it exits."""
        raise NotImplementedError

    def release_executor_lock(self) -> None:
        """Give up the liveness mark (the process is stopping)."""

    def dead_owners(self, owners: Sequence[str]) -> list[str]:
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
        typed: dict[str, sa.types.TypeEngine[Any]] = {c.name: c.type for c in s.columns}
        params = [sa.cast(sa.bindparam(name), typed[name]) for name in typed]
        fence = (
            sa.select(sa.literal(1))
            .where(
                w.c.workflow_id == sa.bindparam("workflow_id"),
                w.c.owner == sa.bindparam("owner"),
                w.c.status == "pending",
            )
            .exists()
        )
        stmt = ins(s).from_select(list(typed), sa.select(*params).where(fence))
        stmt = stmt.on_conflict_do_update(
            index_elements=[s.c.workflow_id, s.c.step_number],
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
        self._record_step_sql = self._compile(stmt)
        self._insert_workflow_sql = self._compile(insert_wf)
        self._finish_workflow_sql = self._compile(finish)

    def _compile(self, stmt: sa.Executable) -> tuple[str, dict[str, Any]]:
        """SQL text for the driver, with the values of the statement's own constants."""
        compiled = stmt.compile(dialect=self._hot_dialect())  # type: ignore[attr-defined]
        return str(compiled), dict(compiled.params)

    def _hot(self, statement: tuple[str, dict[str, Any]], params: dict[str, Any]) -> int:
        """Run one compiled statement in autocommit mode; return the row count."""
        sql, constants = statement
        params = {**constants, **params}
        try:
            raw = self.hot_engine.raw_connection()
        except _CONNECTION_ERRORS as exc:
            raise self.unavailable(exc) from exc
        try:
            cur = raw.cursor()
            try:
                cur.execute(sql, params)
                return int(cur.rowcount)
            finally:
                cur.close()
        except self._driver_connection_errors() as exc:
            raw.invalidate()
            raise self.unavailable(exc) from exc
        finally:
            raw.close()

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
        self, workflow_id: str, owner: str, status: str, output: str | None, error: str | None
    ) -> bool:
        """Record the end of a workflow this owner runs; ``False`` if it no longer runs it."""
        return (
            self._hot(
                self._finish_workflow_sql,
                {
                    "wid": workflow_id,
                    "me": owner,
                    "status": status,
                    "output": output,
                    "error": error,
                    "now": now_ms(),
                },
            )
            == 1
        )

    # -- transactions -----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection in a transaction that commits on success, rolls back on error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except _CONNECTION_ERRORS as exc:
            raise self.unavailable(exc) from exc

    def _run(self, fn: Callable[[sa.Connection], T]) -> T:
        with self.transaction() as conn:
            return fn(conn)

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
        )

    def _step_record(self, row: sa.Row[Any]) -> StepRecord:
        return StepRecord(
            workflow_id=row.workflow_id,
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
        w = self.workflows
        with self._translate_errors(), self.engine.connect() as conn:
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
        with self._translate_errors(), self.engine.connect() as conn:
            return [self._workflow_record(row) for row in conn.execute(query)]

    def load_steps(self, workflow_id: str) -> dict[int, StepRecord]:
        """Every recorded step of a workflow, by step number (the replay read)."""
        s = self.steps
        query = sa.select(s).where(s.c.workflow_id == workflow_id).order_by(s.c.step_number)
        with self._translate_errors(), self.engine.connect() as conn:
            return {row.step_number: self._step_record(row) for row in conn.execute(query)}

    # -- ownership ----------------------------------------------------------------

    def claim_orphans(
        self, owner: str, names: Sequence[str], lease_ms: int, limit: int = 1000
    ) -> list[tuple[str, str, str | None]]:
        """Take over ``pending`` workflows nobody alive runs; return (id, name, inputs).

        A workflow is an orphan when it has no owner, its lease expired, or its
        owner's process is provably gone.
        """
        if not names:
            return []
        w = self.workflows
        now = now_ms()
        with self._translate_errors(), self.engine.connect() as conn:
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
        dead = self.dead_owners(others) if others else []
        candidates = (
            sa.select(w.c.workflow_id)
            .where(
                w.c.status == "pending",
                w.c.name.in_(list(names)),
                sa.or_(
                    w.c.owner.is_(None),
                    w.c.lease_expires_at < now,
                    w.c.owner.in_(dead),
                ),
            )
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
                recoveries=w.c.recoveries + 1,
                updated_at=now,
            )
            .returning(w.c.workflow_id, w.c.name, w.c.inputs)
        )
        with self.transaction() as conn:
            return [(r.workflow_id, r.name, r.inputs) for r in conn.execute(stmt)]

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
        """Extend this owner's leases; return the running ids it no longer holds."""
        w = self.workflows
        now = now_ms()
        with self.transaction() as conn:
            conn.execute(
                sa.update(w)
                .where(w.c.owner == owner, w.c.status == "pending")
                .values(lease_expires_at=now + lease_ms)
            )
            if not running:
                return set()
            held = set(
                conn.execute(
                    sa.select(w.c.workflow_id).where(
                        w.c.workflow_id.in_(list(running)),
                        w.c.owner == owner,
                        w.c.status == "pending",
                    )
                ).scalars()
            )
        return set(running) - held

    def still_runs(self, workflow_id: str, owner: str) -> bool:
        """Whether ``owner`` still holds this ``pending`` workflow."""
        w = self.workflows
        with self._translate_errors(), self.engine.connect() as conn:
            row = conn.execute(
                sa.select(w.c.workflow_id).where(
                    w.c.workflow_id == workflow_id, w.c.owner == owner, w.c.status == "pending"
                )
            ).first()
        return row is not None

    # -- control ------------------------------------------------------------------

    def cancel(self, workflow_id: str) -> bool:
        """Mark an unfinished workflow ``cancelled``; ``False`` if it had already ended."""
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
        a fresh attempt budget so that it runs again.
        """
        w, s = self.workflows, self.steps
        now = now_ms()
        with self.transaction() as conn:
            changed = conn.execute(
                sa.update(w)
                .where(w.c.workflow_id == workflow_id, w.c.status.in_(["failed", "cancelled"]))
                .values(
                    status="pending",
                    output=None,
                    error=None,
                    owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            ).rowcount
            if changed != 1:
                return False
            last = (
                sa.select(sa.func.max(s.c.step_number))
                .where(s.c.workflow_id == workflow_id)
                .scalar_subquery()
            )
            conn.execute(
                sa.update(s)
                .where(
                    s.c.workflow_id == workflow_id, s.c.step_number == last, s.c.status == "failed"
                )
                .values(status="retrying", attempts=0, finished_at=None, next_attempt_at=None)
            )
        return True
