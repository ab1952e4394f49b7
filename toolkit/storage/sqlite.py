"""SQLite storage: the embedded default, for one executing process.

WAL mode, ``synchronous=FULL`` (a committed checkpoint survives power loss),
and ``BEGIN IMMEDIATE`` for transactions so that writers queue on the busy
timeout instead of failing. Only one process may run workflows on a SQLite
file at a time; a lock file next to the database enforces it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL

from ..errors import ConfigurationError
from . import schema
from .base import Storage, T

BUSY_TIMEOUT_MS = 30_000


def _configure(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS:d}")
    # WAL is a property of the file: set it once. Switching needs an exclusive lock
    # and fails at once ("database is locked") while another process opens the same
    # new file, whatever the busy timeout: retry for a while.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


class SQLiteStorage(Storage):
    backend = "SQLite"
    poll_interval = 0.2  # no LISTEN/NOTIFY: poll, cheaply, on the local file
    idle_poll_interval = 5.0  # between full looks; change_token() is glanced at in between
    glance_interval = 0.1  # two stat() calls: work from another process starts within ~0.1 s

    def __init__(self, url: URL):
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise ConfigurationError(
                "an in-memory SQLite database cannot hold durable state: use a file, "
                "e.g. sqlite:///.durable/state.db"
            )
        self.path = Path(database)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the folder for the SQLite database {self.path}: {exc}"
            ) from exc
        args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        engine = sa.create_engine(url, connect_args=args, pool_size=10, max_overflow=40)
        event.listen(engine, "connect", _configure)

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # Writers take the write lock at once (they queue on the busy timeout instead
            # of failing on a lock upgrade); readers read a WAL snapshot and never wait.
            read_only = conn.get_execution_options().get("durable_read_only", False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        hot = sa.create_engine(
            url, connect_args=args, pool_size=10, max_overflow=40, pool_reset_on_return=None
        )
        event.listen(hot, "connect", _configure)
        self._lock_fd: int | None = None
        self._hot_write_lock = threading.Lock()
        super().__init__(url, engine, hot, schema.Names(schema=None, prefix=schema.SQLITE_PREFIX))

    def _insert_fn(self) -> Callable[..., Any]:
        return sqlite_insert

    def _hot_dialect(self) -> sa.Dialect:
        # Named parameters, so the compiled statements take the same dicts as PostgreSQL.
        from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

        return SQLiteDialect_pysqlite(paramstyle="named")

    def _driver_connection_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.OperationalError,)

    _hot_begin = "BEGIN IMMEDIATE"  # take the write lock now: wait on busy_timeout, never fail
    _correlated_returning = False

    def _hot_run(self, work: Callable[[Any], T]) -> T:
        # SQLite has one writer at a time: threads of this process queue on a lock
        # instead of on SQLite's busy handler, whose sleeps grow to 100 ms.
        with self._hot_write_lock:
            return super()._hot_run(work)

    def _insert_enqueued(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> set[str]:
        """One prepared INSERT per row on the driver connection (sqlite3 caches it)."""
        if not rows:
            return set()
        w = self.workflows
        stmt = sqlite_insert(w).values({name: sa.bindparam(name) for name in rows[0]})
        sql = self._compile(stmt.on_conflict_do_nothing()).sql
        driver = conn.connection.driver_connection
        assert driver is not None
        inserted: set[str] = set()
        try:
            cur = driver.cursor()
            try:
                for row in rows:
                    cur.execute(sql, row)
                    if cur.rowcount == 1:
                        inserted.add(row["workflow_id"])
            finally:
                cur.close()
        except sqlite3.OperationalError as exc:
            raise self.unavailable(exc) from exc
        return inserted

    def change_token(self) -> object:
        """The size and modification time of the database and its WAL: every commit moves them."""
        token: list[tuple[int, int] | None] = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                token.append(None)
            else:
                token.append((st.st_mtime_ns, st.st_size))
        return tuple(token)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".executor-lock")

    def acquire_executor_lock(self, owner: str) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigurationError(
                f"{holder} is already running workflows on the SQLite database {self.path}. "
                "SQLite supports one executing process; use PostgreSQL for several workers."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({owner})".encode(), 0)
        self._lock_fd = fd

    def release_executor_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def dead_owners(self, owners: Sequence[str], patient: bool = False) -> list[str]:
        # Holding the lock file means every other owner's process has exited.
        return list(owners) if self._lock_fd is not None else []
