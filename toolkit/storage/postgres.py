"""PostgreSQL storage through psycopg 3: for production and many workers.

The system tables live in the ``durable`` schema. Hot-path statements are
prepared on first use (``prepare_threshold=0``) and run in autocommit mode.
Each executing process holds a session advisory lock derived from its owner
id, so a process that died (its session closed) is recognised at once,
without waiting for its leases to expire.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import pq
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import URL

from . import schema
from .base import HotStatement, Storage

MIGRATION_LOCK_KEY = 0x64757261626C65  # "durable"
QUEUE_CHANNEL = "durable_queue"
INBOX_CHANNEL = "durable_inbox"

log = logging.getLogger("toolkit.storage")


def owner_lock_key(owner: str) -> int:
    """The signed 64-bit advisory lock key of an owner id."""
    return int.from_bytes(
        hashlib.blake2b(owner.encode(), digest_size=8).digest(), "big", signed=True
    )


ENQUEUE_COLUMNS = (
    "workflow_id",
    "name",
    "inputs",
    "queue_name",
    "priority",
    "deduplication_id",
    "not_before",
)
"""The per-row columns of a batch enqueue, sent as one array each."""


class _HotConnection:
    """A psycopg connection of the hot path and the statements prepared on it."""

    __slots__ = ("encoding", "pgconn", "prepared", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw  # the detached SQLAlchemy connection: close() closes the driver's
        driver = raw.dbapi_connection
        self.pgconn = driver.pgconn
        self.encoding = driver.info.encoding
        self.prepared: set[bytes] = set()

    def close(self) -> None:
        self.raw.close()


class PostgresStorage(Storage):
    backend = "PostgreSQL"
    idle_poll_interval = 5.0  # LISTEN/NOTIFY wakes workers; the poll is only a fallback

    def __init__(self, url: URL):
        common = {"connect_timeout": 10, "application_name": "durable-toolkit"}
        engine = sa.create_engine(
            url, connect_args=common, pool_size=10, max_overflow=40, pool_pre_ping=True
        )
        hot = sa.create_engine(
            url,
            connect_args={**common, "prepare_threshold": 0},
            isolation_level="AUTOCOMMIT",
            pool_size=10,
            max_overflow=40,
            pool_reset_on_return=None,
            pool_pre_ping=False,
        )
        self._lock_conn: Any = None
        self._free_since: dict[str, float] = {}  # owner -> when its lock was first seen free
        self._lock_owner: str | None = None
        self._listener: threading.Thread | None = None
        self._listen_lock = threading.Lock()
        self._closing = threading.Event()
        self._enqueue_stmt: Any = None
        super().__init__(url, engine, hot, schema.Names(schema=schema.POSTGRES_SCHEMA, prefix=""))

    def _insert_fn(self) -> Callable[..., Any]:
        return pg_insert

    # -- hot path: prepared statements run through libpq, one blocking call each ---------

    def _hot_dialect(self) -> sa.Dialect:
        # $1, $2...: the statements are prepared by name on each hot connection.
        return PGDialect_psycopg(paramstyle="numeric_dollar")

    def _compile_finish_with_step(self, record_step: Any) -> HotStatement | None:
        w = self.workflows
        written = record_step.returning(self.steps.c.step_number).cte("step_written")
        stmt = (
            sa.update(w)
            .where(
                w.c.workflow_id == sa.bindparam("workflow_id"),
                w.c.owner == sa.bindparam("owner"),
                w.c.status == "pending",
                sa.exists(sa.select(written.c.step_number)),
            )
            .values(
                status=sa.bindparam("wf_status"),
                output=sa.bindparam("wf_output"),
                error=sa.bindparam("wf_error"),
                owner=sa.null(),
                lease_expires_at=sa.null(),
                updated_at=sa.bindparam("now"),
            )
        )
        return self._compile(stmt, "durable_finish_with_step")

    def _hot_connect(self) -> Any:
        raw = super()._hot_connect()
        try:
            return _HotConnection(raw)
        except self._driver_connection_errors() as exc:
            self._hot_discard(raw)
            raise self.unavailable(exc) from exc

    def _insert_enqueued(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> set[str]:
        """One INSERT ... SELECT FROM unnest(arrays): a single statement for any batch size."""
        if not rows:
            return set()
        stmt = self._enqueue_stmt
        if stmt is None:
            w = self.workflows
            arrays = {
                name: sa.bindparam(name, type_=ARRAY(w.c[name].type)) for name in ENQUEUE_COLUMNS
            }
            source = (
                sa.func.unnest(*arrays.values())
                .table_valued(*ENQUEUE_COLUMNS)
                .render_derived(name="batch")
            )
            columns = [*ENQUEUE_COLUMNS, "status", "created_at", "updated_at"]
            select = sa.select(
                *(source.c[name] for name in ENQUEUE_COLUMNS),
                sa.bindparam("status", type_=sa.Text),
                sa.bindparam("created_at", type_=sa.BigInteger),
                sa.bindparam("updated_at", type_=sa.BigInteger),
            )
            stmt = self._enqueue_stmt = (
                pg_insert(w)
                .from_select(columns, select)
                .on_conflict_do_nothing()
                .returning(w.c.workflow_id)
            )
        first = rows[0]
        params: dict[str, Any] = {name: [r[name] for r in rows] for name in ENQUEUE_COLUMNS}
        params.update(
            status=first["status"], created_at=first["created_at"], updated_at=first["updated_at"]
        )
        return set(conn.execute(stmt, params).scalars())

    def _hot_execute(self, conn: Any, statement: HotStatement, params: dict[str, Any]) -> int:
        """Run a statement prepared on this connection: one libpq call, the GIL released."""
        pgconn, encoding, prepared = conn.pgconn, conn.encoding, conn.prepared
        name = statement.name.encode()
        try:
            if name not in prepared:
                self._hot_check(pgconn, pgconn.prepare(name, statement.sql.encode(encoding)))
                prepared.add(name)
            constants = statement.constants
            values = []
            for key in statement.order:
                value = params[key] if key in params else constants[key]
                values.append(None if value is None else str(value).encode(encoding))
            result = pgconn.exec_prepared(name, values)
        except self._driver_connection_errors() as exc:
            raise self.unavailable(exc) from exc
        self._hot_check(pgconn, result, encoding)
        return int(result.command_tuples or 0)

    def _hot_check(self, pgconn: Any, result: Any, encoding: str = "utf-8") -> None:
        if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            return
        error = psycopg.errors.error_from_result(result, encoding=encoding)
        if pgconn.status == pq.ConnStatus.BAD:
            raise self.unavailable(error) from error
        raise error

    def _driver_connection_errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.OperationalError, psycopg.InterfaceError)

    def _lock_migrations(self, conn: sa.Connection) -> None:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))

    def _lock_queue(self, conn: sa.Connection, queue_name: str) -> None:
        key = sa.func.hashtext(sa.literal(f"durable-queue:{queue_name}", sa.Text))
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    def _notify_queue(self, conn: sa.Connection, queues: set[str]) -> None:
        for queue in sorted(queues):
            conn.execute(sa.select(sa.func.pg_notify(QUEUE_CHANNEL, queue)))

    def _notify_inbox(self, conn: sa.Connection, workflow_id: str) -> None:
        conn.execute(sa.select(sa.func.pg_notify(INBOX_CHANNEL, workflow_id)))

    def start_listening(self) -> None:
        with self._listen_lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._listener = threading.Thread(
                target=self._listen_loop, name="durable-listen", daemon=True
            )
            self._listener.start()

    def _listen_loop(self) -> None:
        """LISTEN for wake-ups; reconnect with backoff when the connection drops."""
        delay = 0.1
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._closing.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute("LISTEN durable_queue")  # QUEUE_CHANNEL
                    conn.execute("LISTEN durable_inbox")  # INBOX_CHANNEL
                    delay = 0.1
                    self.wakeups.signal_all()  # anything may have happened while deaf
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=1.0):
                            channel = "queue" if note.channel == QUEUE_CHANNEL else "inbox"
                            self.wakeups.signal(channel, note.payload)
            except psycopg.Error as exc:
                if self._closing.is_set():
                    return  # closed meanwhile (its connection may be gone with the database)
                if isinstance(exc, self._driver_connection_errors()):
                    self.unavailable(exc)  # logged once per outage, by the health
                else:
                    log.warning("listening for wake-ups failed, retrying in %.1fs: %s", delay, exc)
                # Short waits: wake-ups must resume within a second of the database's return.
                self._closing.wait(delay)
                delay = min(delay * 2, 1.0)
            except Exception:  # never let the listener die: polling would be all that is left
                if self._closing.is_set():
                    return
                log.exception("listening for wake-ups failed unexpectedly; retrying")
                self._closing.wait(1.0)

    def acquire_executor_lock(self, owner: str) -> None:
        if self._lock_conn is not None and not self._lock_conn.closed:
            return
        with self._translate_errors():
            raw = self.hot_engine.raw_connection()
        try:
            raw.detach()  # held for the life of the process, outside the pool
            cur = raw.cursor()
            cur.execute("SELECT pg_advisory_lock(%s)", (owner_lock_key(owner),))
            cur.close()
        except self._driver_connection_errors() as exc:
            with contextlib.suppress(Exception):
                raw.close()
            raise self.unavailable(exc) from exc
        self._lock_conn = raw
        self._lock_owner = owner

    def lock_alive(self) -> bool:
        """Whether the liveness session is still open (re-acquire it if not)."""
        conn = self._lock_conn
        if conn is None:
            return False
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.close()
            return True
        except Exception:  # any failure: the session is not to be trusted
            self._lock_conn = None
            with contextlib.suppress(Exception):
                conn.close()
            return False

    def dispose(self) -> None:
        self._closing.set()
        super().dispose()

    def release_executor_lock(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection may fail
                self._lock_conn.close()
            self._lock_conn = None

    def dead_owners(self, owners: Sequence[str], patient: bool = False) -> list[str]:
        """Owners whose liveness lock is free, on a server up long enough that a live
        owner would have taken it again after a restart (then every lock is free).

        ``patient`` (a worker's background orphan passes): the lock must also have
        been free at every look for longer than a live owner needs to take it again,
        since a live worker's liveness session alone may have been killed. An
        explicit ``recover()`` is not patient: its caller says the process died."""
        keys = {owner_lock_key(o): o for o in owners}
        with self._translate_errors(), self.engine.connect() as conn:
            uptime = conn.exec_driver_sql(
                "SELECT extract(epoch FROM now() - pg_postmaster_start_time())"
            ).scalar()
            if uptime is None or float(uptime) < self.health.settle_seconds:
                conn.rollback()
                return []
            rows = conn.exec_driver_sql(
                "SELECT k, pg_try_advisory_lock(k) FROM unnest(%(keys)s::bigint[]) AS k",
                {"keys": list(keys)},
            ).all()
            taken = [k for k, got in rows if got]
            if taken:
                conn.exec_driver_sql(
                    "SELECT pg_advisory_unlock(k) FROM unnest(%(keys)s::bigint[]) AS k",
                    {"keys": taken},
                )
            conn.rollback()
        now = time.monotonic()
        settle = self.health.settle_seconds
        free = {keys[k] for k in taken}
        for owner in list(self._free_since):
            if owner not in free:
                del self._free_since[owner]  # held again (or no longer asked about)
        dead = []
        for owner in sorted(free):
            since = self._free_since.setdefault(owner, now)
            if not patient or now - since >= settle:
                dead.append(owner)
        return dead

    def next_dead_check(self) -> float | None:
        """Seconds until an owner seen with a free lock may be judged dead (None: none)."""
        if not self._free_since:
            return None
        now = time.monotonic()
        return max(min(self._free_since.values()) + self.health.settle_seconds - now, 0.0)
