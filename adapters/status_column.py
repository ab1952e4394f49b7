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
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from toolkit import Durable, RetryPolicy, current_workflow_id
from toolkit.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DeterminismError,
    DurableError,
    StepFailedError,
)
from toolkit.queues import Queue
from toolkit.retry import NO_RETRY
from toolkit.storage import describe_url
from toolkit.worker import Worker

log = logging.getLogger("adapters.status_column")

LIVE = ("enqueued", "pending")
"""Durable statuses of a workflow that has not ended."""

WRITE_BACK_RETRY = RetryPolicy(
    max_attempts=10, initial_delay=0.2, backoff=2.0, max_delay=10.0, jitter=True
)
"""Retries of a write-back step (a deadlock or a lost connection on the legacy database)."""


class MappingError(DurableError):
    """The declared mapping does not match the legacy table (nothing was touched)."""


class RowFailedError(DurableError):
    """A row's handler failed and its retry budget is spent: the row is ``failed``."""


# -- the mapping -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StatusValues:
    """The status column of a legacy table and the values it holds.

    ``pending``, ``running``, ``done`` and ``failed`` are the values the legacy
    code writes (strings or numbers). ``other`` lists further values that may be
    in the table and that the adapter leaves alone (``"cancelled"``, ``"archived"``).
    A value in the table that is none of these stops the adapter before it
    touches anything.
    """

    column: str = "status"
    pending: Any
    running: Any
    done: Any
    failed: Any
    other: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "other", tuple(self.other))
        main = [self.pending, self.running, self.done, self.failed]
        if len({repr(v) for v in main}) != 4:
            raise ValueError(
                f"StatusValues: pending, running, done and failed must be four different "
                f"values, got {main!r}"
            )
        clash = [v for v in self.other if v in main]
        if clash:
            raise ValueError(f"StatusValues: other={clash!r} repeats a main status value")

    @property
    def declared(self) -> list[Any]:
        return [self.pending, self.running, self.done, self.failed, *self.other]


@dataclass(frozen=True, kw_only=True)
class LegacyColumns:
    """Optional bookkeeping columns of a legacy job table, by role.

    Each is the name of a column, or ``None`` when the table has none. The
    adapter writes them as a legacy worker would: ``attempts`` (attempts made),
    ``last_error`` (``"Type: message"`` of the last failure), ``next_retry_at``
    (when the next attempt starts; due rows only are claimed), ``locked_by``
    (the workflow id running the row), ``locked_at`` (when it started) and
    ``updated_at`` (every write). Time columns may be date-times (naive ones
    are UTC), epoch seconds (numbers) or ISO text.
    """

    attempts: str | None = None
    last_error: str | None = None
    next_retry_at: str | None = None
    locked_by: str | None = None
    locked_at: str | None = None
    updated_at: str | None = None

    def declared(self) -> dict[str, str]:
        """Role -> column name, for the declared columns."""
        return {
            role: name
            for role, name in (
                ("attempts", self.attempts),
                ("last_error", self.last_error),
                ("next_retry_at", self.next_retry_at),
                ("locked_by", self.locked_by),
                ("locked_at", self.locked_at),
                ("updated_at", self.updated_at),
            )
            if name is not None
        }


TIME_ROLES = ("next_retry_at", "locked_at", "updated_at")


def normalise_url(url: str | URL) -> URL:
    """A legacy database URL with a driver this toolkit installs.

    ``postgresql://`` means psycopg 3; ``mysql://`` and ``mariadb://`` mean PyMySQL.
    """
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigurationError(f"invalid legacy database URL {str(url)!r}") from None
    driver = parsed.drivername
    if driver in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if driver in ("mysql", "mariadb"):
        return parsed.set(drivername=f"{driver}+pymysql")
    return parsed


def same_database(a: URL, b: URL) -> bool:
    """Whether two URLs name the same database (same server and database, or same file)."""
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        return bool(a.database) and os.path.realpath(a.database or "") == os.path.realpath(
            b.database or ""
        )
    return (a.host or "localhost", a.port, a.database) == (
        b.host or "localhost",
        b.port,
        b.database,
    )


def app_url(app: Durable) -> URL:
    """The workflow database's URL (with its password: it is never printed)."""
    return app.database_url


class LegacyTable:
    """A legacy job table: where it is, its key, its status column and bookkeeping columns.

    Nothing connects until the table is first used; then it is reflected and
    checked once (:meth:`check`). Identifiers come from the reflected table, so
    they are always quoted by SQLAlchemy.
    """

    def __init__(
        self,
        url: str | URL,
        table: str,
        *,
        key: str,
        status: StatusValues,
        columns: LegacyColumns | None = None,
        schema: str | None = None,
    ) -> None:
        if not isinstance(status, StatusValues):
            raise TypeError("status must be a StatusValues(...)")
        if columns is not None and not isinstance(columns, LegacyColumns):
            raise TypeError("columns must be a LegacyColumns(...)")
        if not table or not key:
            raise ValueError("table and key must be non-empty column names")
        self.url = normalise_url(url)
        self.name = table
        self.schema = schema
        self.key = key
        self.status = status
        self.columns = columns or LegacyColumns()
        self._engine: sa.Engine | None = None
        self._write_engine: sa.Engine | None = None
        self._table: sa.Table | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_app(
        cls,
        app: Durable,
        legacy_url: str | URL | None,
        table: str,
        *,
        key: str,
        status: StatusValues,
        columns: LegacyColumns | None = None,
        schema: str | None = None,
    ) -> tuple[LegacyTable, bool]:
        """The table (``legacy_url=None``: in the app's own database) and whether it
        shares the app's database (then write-backs commit with the checkpoints)."""
        system = app_url(app)
        legacy = cls(
            legacy_url if legacy_url is not None else system,
            table,
            key=key,
            status=status,
            columns=columns,
            schema=schema,
        )
        return legacy, same_database(legacy.url, system)

    def __repr__(self) -> str:
        return f"LegacyTable({self.qualified_name!r} at {self.describe()})"

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    def describe(self) -> str:
        return describe_url(self.url)

    # -- connections --

    @property
    def engine(self) -> sa.Engine:
        """The engine for reads (plain SELECTs: no lock beyond the database's own)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._make_engine(write=False)
        return self._engine

    @property
    def write_engine(self) -> sa.Engine:
        """The engine for writes (SQLite: ``BEGIN IMMEDIATE``, one writer at a time)."""
        if self.backend != "sqlite":
            return self.engine
        if self._write_engine is None:
            with self._lock:
                if self._write_engine is None:
                    self._write_engine = self._make_engine(write=True)
        return self._write_engine

    def _make_engine(self, *, write: bool) -> sa.Engine:
        try:
            if self.backend == "sqlite":
                if not self.url.database or self.url.database == ":memory:":
                    raise ConfigurationError(
                        "the legacy table must be in a SQLite file, not an in-memory database"
                    )
                engine = sa.create_engine(
                    self.url, connect_args={"timeout": 30, "check_same_thread": False}
                )
                if write:

                    @event.listens_for(engine, "connect")
                    def _connect(dbapi_connection: Any, _record: Any) -> None:
                        dbapi_connection.isolation_level = None  # BEGIN is ours

                    @event.listens_for(engine, "begin")
                    def _begin(conn: sa.Connection) -> None:
                        conn.exec_driver_sql("BEGIN IMMEDIATE")

                return engine
            return sa.create_engine(self.url, pool_pre_ping=True)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigurationError(
                f"cannot open the legacy database {self.describe()}: {exc} "
                "(MySQL/MariaDB needs the 'mysql' extra: pip install 'durable-toolkit[mysql]')"
            ) from exc

    @contextlib.contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads; connection failures become DatabaseUnavailableError."""
        try:
            conn = self.engine.connect()
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise self._unavailable(exc) from exc
        try:
            yield conn
        finally:
            conn.rollback()
            conn.close()

    @contextlib.contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A connection in a transaction that commits on success."""
        try:
            conn = self.write_engine.connect()
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise self._unavailable(exc) from exc
        try:
            with conn.begin():
                yield conn
        finally:
            conn.close()

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return DatabaseUnavailableError(
            f"cannot use the legacy database at {self.describe()}: "
            f"{reason[0] if reason else type(exc).__name__}"
        )

    def dispose(self) -> None:
        for engine in (self._engine, self._write_engine):
            if engine is not None:
                engine.dispose()

    # -- reflection and checks --

    @property
    def table(self) -> sa.Table:
        """The reflected, checked table (reflected on first use)."""
        if self._table is None:
            with self.reading() as conn:
                table = self._reflect(conn)
                self._check_values(conn, table)
            self._table = table
        return self._table

    def check(self) -> dict[Any, int]:
        """Reflect and check the table now; return the row count of each status value.

        Raises :class:`MappingError` naming the table, the column and the values
        when the table or a declared column is missing, the key is not unique,
        a column has a type the adapter cannot write, or the status column holds
        a value that is not declared.
        """
        with self.reading() as conn:
            table = self._reflect(conn)
            counts = self._check_values(conn, table)
        self._table = table
        return counts

    def _reflect(self, conn: sa.Connection) -> sa.Table:
        where = f"in the {self.backend} database {self.describe()}"
        try:
            table = sa.Table(self.name, sa.MetaData(schema=self.schema), autoload_with=conn)
        except sa.exc.NoSuchTableError:
            names = sorted(sa.inspect(conn).get_table_names(schema=self.schema))
            raise MappingError(
                f"legacy table {self.qualified_name!r} not found {where} "
                f"(tables there: {', '.join(names) or 'none'})"
            ) from None
        wanted = {"key": self.key, "status": self.status.column, **self.columns.declared()}
        missing = [
            f"{role} column {name!r}" for role, name in wanted.items() if name not in table.c
        ]
        if missing:
            raise MappingError(
                f"legacy table {self.qualified_name!r} {where} has no {', '.join(missing)} "
                f"(its columns: {', '.join(table.c.keys())})"
            )
        self._check_key(conn, table)
        self._check_types(table)
        return table

    def _check_key(self, conn: sa.Connection, table: sa.Table) -> None:
        if [c.name for c in table.primary_key.columns] == [self.key]:
            return
        inspector = sa.inspect(conn)
        uniques = [
            u["column_names"] for u in inspector.get_unique_constraints(self.name, self.schema)
        ] + [
            i["column_names"]
            for i in inspector.get_indexes(self.name, self.schema)
            if i.get("unique")
        ]
        if [self.key] not in [list(u) for u in uniques]:
            raise MappingError(
                f"key column {self.key!r} of legacy table {self.qualified_name!r} is neither "
                "its primary key nor unique: each row needs a key of its own (it becomes "
                "part of the row's workflow id)"
            )

    def _check_types(self, table: sa.Table) -> None:
        problems = []
        for role, name in self.columns.declared().items():
            typ = table.c[name].type
            if role == "attempts" and not isinstance(typ, sa.Integer):
                problems.append(f"attempts column {name!r} is {typ}, not an integer")
            elif role in ("last_error", "locked_by") and not isinstance(typ, sa.String):
                problems.append(f"{role} column {name!r} is {typ}, not text")
            elif role in TIME_ROLES and not isinstance(
                typ, sa.DateTime | sa.Integer | sa.Numeric | sa.Float | sa.String
            ):
                problems.append(
                    f"{role} column {name!r} is {typ}: expected a date-time, a number "
                    "(epoch seconds) or text"
                )
        if problems:
            raise MappingError(f"legacy table {self.qualified_name!r}: " + "; ".join(problems))

    def _check_values(self, conn: sa.Connection, table: sa.Table) -> dict[Any, int]:
        col = table.c[self.status.column]
        rows = conn.execute(sa.select(col, sa.func.count()).group_by(col)).all()
        counts = {value: int(n) for value, n in rows}
        declared = self.status.declared
        unknown = {value: n for value, n in counts.items() if value not in declared}
        if unknown:
            listed = ", ".join(
                f"{'NULL' if v is None else repr(v)} ({n} row{'s' if n != 1 else ''})"
                for v, n in sorted(unknown.items(), key=lambda item: repr(item[0]))
            )
            raise MappingError(
                f"legacy table {self.qualified_name!r}, column {self.status.column!r} holds "
                f"values that are not declared: {listed}. Declared: "
                f"{', '.join(repr(v) for v in declared)}. Map them to pending/running/done/"
                "failed, or list them in StatusValues(other=...) to leave those rows alone."
            )
        return counts

    # -- values --

    def col(self, role: str) -> sa.Column[Any] | None:
        """The column of a bookkeeping role, or None when it is not declared."""
        name = self.columns.declared().get(role)
        return self.table.c[name] if name is not None else None

    def time_value(self, column: sa.Column[Any], when: datetime) -> Any:
        """``when`` (aware, UTC) as the column stores it."""
        typ = column.type
        if isinstance(typ, sa.DateTime):
            return when if typ.timezone else when.replace(tzinfo=None)
        if isinstance(typ, sa.Integer):
            return int(when.timestamp())
        if isinstance(typ, sa.Numeric | sa.Float):
            return when.timestamp()
        return when.strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def as_datetime(value: Any) -> datetime | None:
        """A stored time value as an aware UTC datetime (None when unreadable)."""
        if value is None:
            return None
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float | Decimal):
            return datetime.fromtimestamp(float(value), tz=UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return None

    def text_value(self, column: sa.Column[Any], text: str) -> str:
        length = getattr(column.type, "length", None)
        return text[:length] if length else text

    def clear_value(self, column: sa.Column[Any], fallback: Any) -> Any:
        """NULL when the column allows it, else ``fallback``."""
        return None if column.nullable else fallback

    def due(self, now: datetime) -> sa.ColumnElement[bool]:
        """Rows that may start now: pending, and due if there is a next_retry_at column."""
        t = self.table
        cond = t.c[self.status.column] == self.status.pending
        retry_at = self.col("next_retry_at")
        if retry_at is not None:
            cond = sa.and_(
                cond,
                sa.or_(retry_at.is_(None), retry_at <= self.time_value(retry_at, now)),
            )
        return cond

    def since_column(self) -> sa.Column[Any] | None:
        """The column that says since when a row is running: locked_at, else updated_at."""
        return (
            self.col("locked_at") if self.col("locked_at") is not None else self.col("updated_at")
        )


def json_key(value: Any) -> int | str:
    """A row key as it goes into a workflow id and the workflow's inputs."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return str(value)
    return value


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with JSON values: date-times as ISO text, decimals as text, bytes as base64."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, datetime | date):
            out[name] = value.isoformat()
        elif isinstance(value, Decimal | uuid.UUID):
            out[name] = str(value)
        elif isinstance(value, bytes | bytearray | memoryview):
            out[name] = base64.b64encode(bytes(value)).decode()
        else:
            out[name] = value
    return out


def _retry_delay(
    policy: RetryPolicy, exc: BaseException, attempt: int, elapsed: float
) -> float | None:
    """``policy.next_delay``, also for a failure replayed as StepFailedError (matched by name)."""
    if isinstance(exc, StepFailedError):
        name = exc.error_type

        def named(classes: tuple[type[BaseException], ...]) -> bool:
            return any(c.__name__ == name or c is Exception for c in classes)

        give_up = any(c.__name__ == name for c in policy.give_up_on)
        if give_up or not named(policy.retry_on):
            return None
        return policy.budget_delay(attempt, elapsed)
    return policy.next_delay(exc, attempt, elapsed)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, StepFailedError):
        return f"{exc.error_type}: {exc.error_message}"
    return f"{type(exc).__name__}: {exc}"


def _fmt_age(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _keys(keys: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(str(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


# -- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningRow:
    """A row in the running state: since when, by whom."""

    key: Any
    since: datetime | None
    age: float | None
    """Seconds since ``since`` at the time of the report (None when unknown)."""
    locked_by: str | None
    durable: bool
    """Whether the row is run by a workflow of this adapter (its id is in locked_by)."""


@dataclass(frozen=True)
class ShadowReport:
    """What a takeover would do to a legacy table now. Producing it changed nothing."""

    table: str
    database: str
    arrangement: str
    promise: str
    counts: dict[str, int]
    would_start: list[Any]
    """Keys of the pending, due rows a takeover starts (first ``limit``)."""
    would_start_total: int
    not_due: int
    """Pending rows whose next_retry_at is in the future."""
    next_due: datetime | None
    past_budget: list[tuple[Any, int]]
    """(key, attempts) of pending rows whose attempts already reach the retry budget."""
    past_budget_total: int
    max_attempts: int | None
    running: list[RunningRow]
    """Rows in the running state, oldest first (first ``limit``)."""
    running_total: int
    stuck_after: float
    stuck: list[RunningRow]
    """Running rows older than ``stuck_after`` seconds (first ``limit``)."""
    stuck_total: int
    failed_total: int
    taken_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""

        def running(rows: list[RunningRow]) -> list[dict[str, Any]]:
            return [
                {
                    "key": json_key(r.key),
                    "since": r.since.isoformat() if r.since else None,
                    "age_seconds": r.age,
                    "locked_by": r.locked_by,
                    "durable": r.durable,
                }
                for r in rows
            ]

        return {
            "table": self.table,
            "database": self.database,
            "arrangement": self.arrangement,
            "promise": self.promise,
            "counts": dict(self.counts),
            "would_start": [json_key(k) for k in self.would_start],
            "would_start_total": self.would_start_total,
            "not_due": self.not_due,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "past_budget": [[json_key(k), n] for k, n in self.past_budget],
            "past_budget_total": self.past_budget_total,
            "max_attempts": self.max_attempts,
            "running": running(self.running),
            "running_total": self.running_total,
            "stuck_after_seconds": self.stuck_after,
            "stuck": running(self.stuck),
            "stuck_total": self.stuck_total,
            "failed_total": self.failed_total,
            "taken_at": self.taken_at.isoformat(),
        }

    def __str__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "no rows"
        lines = [
            f"shadow report: table {self.table} ({self.database}); nothing was changed",
            f"  rows by status: {counts}",
            f"  would start now: {self.would_start_total} row(s)"
            + (f": {_keys(self.would_start)}" if self.would_start else ""),
        ]
        if self.not_due:
            due = self.next_due.isoformat(timespec="seconds") if self.next_due else "?"
            lines.append(f"  waiting for next_retry_at: {self.not_due} row(s), first due {due}")
        if self.past_budget:
            listed = ", ".join(f"{k} ({n} attempts)" for k, n in self.past_budget[:10])
            lines.append(
                f"  past their retry budget of {self.max_attempts} attempts: "
                f"{self.past_budget_total} pending row(s): {listed}; a takeover marks them "
                "failed without running them"
            )
        durable = sum(1 for r in self.running if r.durable)
        lines.append(
            f"  running: {self.running_total} row(s)"
            + (f", {durable} of them run by durable workflows" if durable else "")
        )
        if self.stuck_total:
            lines.append(
                f"  stuck in running for more than {_fmt_age(self.stuck_after)}: "
                f"{self.stuck_total} row(s)"
            )
            for r in self.stuck:
                who = f" (locked by {r.locked_by})" if r.locked_by else ""
                age = _fmt_age(r.age) if r.age is not None else "unknown time"
                lines.append(f"    {r.key}: {age}{who}")
        elif self.running_total and all(r.age is None for r in self.running):
            lines.append("    (no locked_at or updated_at column: how long they run is unknown)")
        if self.failed_total:
            lines.append(f"  failed: {self.failed_total} row(s) (a takeover leaves them alone)")
        lines.append(f"  arrangement: {self.arrangement}")
        lines.append(f"  write-back promise: {self.promise}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ClaimReport:
    """What one poll of the legacy table did."""

    started: list[str]
    """Workflow ids enqueued by this poll (one per row)."""
    restarted: list[str]
    """Among ``started``: new runs of rows whose earlier workflow had ended (re-queued rows)."""
    already_running: list[str]
    """Due rows whose workflow is enqueued or running already (nothing was started)."""

    def __str__(self) -> str:
        text = f"claimed {len(self.started)} row(s)"
        if self.restarted:
            text += f" ({len(self.restarted)} re-queued after their workflow ended)"
        if self.already_running:
            text += f"; {len(self.already_running)} already have a live workflow"
        return text


# -- the adapter -----------------------------------------------------------------------------


class StatusColumnAdapter:
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
        status: StatusValues,
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
        self.name = name or table
        if ":" in self.name or "#" in self.name:
            raise ValueError(f"adapter name {self.name!r} must not contain ':' or '#'")
        self.workflow_name = f"legacy.{self.name}"
        self.handler = handler
        self.user_workflow = workflow
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.queue = queue if queue is not None else app.queue(self.workflow_name)
        if self.queue.app is not app:
            raise ValueError("queue must be declared on the same app")
        self._register()

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
        return (
            "at least once, idempotent: each write-back is a guarded UPDATE committed in the "
            "legacy database before its checkpoint; after a crash between the two it is "
            "written again with the same values"
        )

    # -- registration --

    def _register(self) -> None:
        app, wf = self.app, self.workflow_name
        write_back: Callable[[Callable[..., Any], str], Any]
        if self.same_database:

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
        attempt = int(begun["attempts"])
        started = int(begun["started_at"])
        max_attempts = self.retry.max_attempts
        if max_attempts is not None and attempt >= max_attempts:
            self._attempt_failed(key, wid, attempt, started, None)
            raise RowFailedError(
                f"row {key!r} of {self.legacy.qualified_name}: its retry budget of "
                f"{max_attempts} attempts was spent before the takeover"
            )
        while True:
            attempt += 1
            try:
                if self.handler is not None:
                    result = self._handle(key)
                else:
                    assert self.user_workflow is not None
                    result = self.user_workflow(self._load(key))
            except DeterminismError:
                raise
            except Exception as exc:
                decision = self._attempt_failed(key, wid, attempt, started, exc)
                if not decision["held"]:
                    log.warning(
                        "%s: row %r was changed by someone else (%s); its workflow stops",
                        self.legacy.qualified_name,
                        key,
                        decision["reason"],
                    )
                    return None
                if decision["retry_in"] is None:
                    raise RowFailedError(
                        f"row {key!r} of {self.legacy.qualified_name} failed after "
                        f"{attempt} attempt(s): {decision['error']}"
                    ) from None
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

    def _select_row(self, conn: sa.Connection, key: Any, lock: bool) -> sa.Row[Any] | None:
        t = self.legacy.table
        query = sa.select(t).where(t.c[self.legacy.key] == key)
        if lock:
            query = query.with_for_update()
        return conn.execute(query).first()

    def _holds(self, row: sa.Row[Any], wid: str) -> tuple[bool, str]:
        """Whether the workflow ``wid`` holds a row (running, locked by it)."""
        m = row._mapping
        status = m[self.legacy.status.column]
        if status != self.legacy.status.running:
            return False, f"its status is {status!r}"
        lock = self.legacy.columns.locked_by
        if lock is not None and m[lock] != wid:
            return False, f"it is locked by {m[lock]!r}"
        return True, ""

    def _stamp(self, values: dict[str, Any], now: datetime) -> None:
        col = self.legacy.col("updated_at")
        if col is not None:
            values[col.name] = self.legacy.time_value(col, now)

    def _write_begin(self, conn: sa.Connection, key: Any, wid: str) -> dict[str, Any]:
        legacy = self.legacy
        st = legacy.status
        row = self._select_row(conn, key, lock=True)
        if row is None:
            return {"state": "skipped", "reason": "the row no longer exists"}
        m = row._mapping
        status = m[st.column]
        lock = legacy.columns.locked_by
        if status == st.running:
            mine = m[lock] == wid if lock is not None else not self.same_database
            if not mine:
                holder = f" by {m[lock]!r}" if lock is not None else ""
                return {"state": "skipped", "reason": f"it is already running{holder}"}
        elif status != st.pending:
            return {"state": "skipped", "reason": f"its status is {status!r}, not pending"}
        now = datetime.now(UTC)
        values: dict[str, Any] = {st.column: st.running}
        if lock is not None:
            values[lock] = legacy.text_value(legacy.table.c[lock], wid)
        locked_at = legacy.col("locked_at")
        if locked_at is not None:
            values[locked_at.name] = legacy.time_value(locked_at, now)
        self._stamp(values, now)
        t = legacy.table
        conn.execute(sa.update(t).where(t.c[legacy.key] == key).values(values))
        attempts_col = legacy.columns.attempts
        attempts = int(m[attempts_col] or 0) if attempts_col is not None else 0
        return {"state": "started", "attempts": attempts, "started_at": int(time.time() * 1000)}

    def _write_attempt_failed(
        self,
        conn: sa.Connection,
        key: Any,
        wid: str,
        attempt: int,
        started_ms: int,
        exc: BaseException | None,
    ) -> dict[str, Any]:
        legacy = self.legacy
        st = legacy.status
        if exc is None:  # the budget was spent before the takeover: no attempt was made
            delay, error = None, None
        else:
            elapsed = max(time.time() - started_ms / 1000, 0.0)
            delay = _retry_delay(self.retry, exc, attempt, elapsed)
            error = _error_text(exc)
        row = self._select_row(conn, key, lock=True)
        if row is None:
            return {"held": False, "retry_in": None, "reason": "the row no longer exists"}
        held, reason = self._holds(row, wid)
        if not held:
            if delay is None and row._mapping[st.column] == st.failed:
                # written already (a step re-run after a crash between its two commits)
                return {"held": True, "retry_in": None, "error": error, "reason": ""}
            return {"held": False, "retry_in": None, "reason": reason}
        now = datetime.now(UTC)
        values: dict[str, Any] = {}
        if exc is not None:
            attempts = legacy.col("attempts")
            if attempts is not None:
                values[attempts.name] = attempt
            last_error = legacy.col("last_error")
            if last_error is not None and error is not None:
                values[last_error.name] = legacy.text_value(last_error, error)
        retry_at = legacy.col("next_retry_at")
        if delay is None:
            values[st.column] = st.failed
            self._unlock(values, row)
            if retry_at is not None:
                values[retry_at.name] = legacy.clear_value(retry_at, row._mapping[retry_at.name])
        elif retry_at is not None:
            values[retry_at.name] = legacy.time_value(retry_at, now + timedelta(seconds=delay))
        self._stamp(values, now)
        t = legacy.table
        conn.execute(sa.update(t).where(t.c[legacy.key] == key).values(values))
        return {"held": True, "retry_in": delay, "error": error, "reason": ""}

    def _unlock(self, values: dict[str, Any], row: sa.Row[Any]) -> None:
        for role in ("locked_by", "locked_at"):
            col = self.legacy.col(role)
            if col is not None:
                values[col.name] = self.legacy.clear_value(col, row._mapping[col.name])

    def _write_done(self, conn: sa.Connection, key: Any, wid: str, attempt: int) -> dict[str, Any]:
        legacy = self.legacy
        st = legacy.status
        row = self._select_row(conn, key, lock=True)
        if row is None:
            return {"held": False, "reason": "the row no longer exists"}
        held, reason = self._holds(row, wid)
        if not held:
            if row._mapping[st.column] == st.done:
                return {"held": True, "reason": ""}  # written already (a re-run step)
            return {"held": False, "reason": reason}
        values: dict[str, Any] = {st.column: st.done}
        attempts = legacy.col("attempts")
        if attempts is not None:
            values[attempts.name] = attempt
        retry_at = legacy.col("next_retry_at")
        if retry_at is not None:
            values[retry_at.name] = legacy.clear_value(retry_at, row._mapping[retry_at.name])
        self._unlock(values, row)
        self._stamp(values, datetime.now(UTC))
        t = legacy.table
        conn.execute(sa.update(t).where(t.c[legacy.key] == key).values(values))
        return {"held": True, "reason": ""}

    def _read_row(self, key: Any) -> dict[str, Any]:
        with self.legacy.reading() as conn:
            row = self._select_row(conn, key, lock=False)
        if row is None:
            raise LookupError(f"row {key!r} of {self.legacy.qualified_name} no longer exists")
        return dict(row._mapping)

    def _call_handler(self, key: Any) -> Any:
        assert self.handler is not None
        return self.handler(self._read_row(key))

    def _load_row(self, key: Any) -> dict[str, Any]:
        return json_row(self._read_row(key))

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
        legacy = self.legacy
        stuck_s = (
            stuck_after.total_seconds()
            if isinstance(stuck_after, timedelta)
            else float(stuck_after)
        )
        counts = legacy.check()
        t = legacy.table
        st = legacy.status
        key = t.c[legacy.key]
        status = t.c[st.column]
        attempts = legacy.col("attempts")
        retry_at = legacy.col("next_retry_at")
        locked_by = legacy.col("locked_by")
        since_col = legacy.since_column()
        now = datetime.now(UTC)
        max_attempts = self.retry.max_attempts
        with legacy.reading() as conn:
            due = legacy.due(now)
            budget = (
                attempts >= max_attempts
                if attempts is not None and max_attempts is not None
                else sa.false()
            )
            would = (
                conn.execute(sa.select(key).where(due, sa.not_(budget)).order_by(key).limit(limit))
                .scalars()
                .all()
            )
            would_total = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(due, sa.not_(budget))
            ).scalar_one()
            past: list[tuple[Any, int]] = []
            if attempts is not None and max_attempts is not None:
                past = [
                    (k, int(n or 0))
                    for k, n in conn.execute(
                        sa.select(key, attempts).where(due, budget).order_by(key)
                    )
                ]
            not_due, next_due = 0, None
            if retry_at is not None:
                waiting = sa.and_(status == st.pending, sa.not_(due))
                not_due = conn.execute(
                    sa.select(sa.func.count()).select_from(t).where(waiting)
                ).scalar_one()
                if not_due:
                    next_due = legacy.as_datetime(
                        conn.execute(sa.select(sa.func.min(retry_at)).where(waiting)).scalar()
                    )
            cols = [key, *(c for c in (locked_by, since_col) if c is not None)]
            query = sa.select(*cols).where(status == st.running)
            query = query.order_by(since_col, key) if since_col is not None else query.order_by(key)
            running = [self._running_row(r._mapping, now) for r in conn.execute(query)]
        stuck = [r for r in running if r.age is not None and r.age > stuck_s]
        return ShadowReport(
            table=legacy.qualified_name,
            database=legacy.describe(),
            arrangement=self.arrangement,
            promise=self.promise,
            counts={self._label(v): counts[v] for v in self._ordered(counts)},
            would_start=list(would),
            would_start_total=int(would_total),
            not_due=int(not_due),
            next_due=next_due,
            past_budget=past[:limit],
            past_budget_total=len(past),
            max_attempts=max_attempts,
            running=running[:limit],
            running_total=len(running),
            stuck_after=stuck_s,
            stuck=stuck[:limit],
            stuck_total=len(stuck),
            failed_total=counts.get(st.failed, 0),
            taken_at=now,
        )

    def _ordered(self, counts: dict[Any, int]) -> list[Any]:
        """Status values in role order: pending, running, done, failed, then the others."""
        declared = self.legacy.status.declared
        return sorted(counts, key=lambda v: declared.index(v) if v in declared else len(declared))

    def _label(self, value: Any) -> str:
        st = self.legacy.status
        for role in ("pending", "running", "done", "failed"):
            if value == getattr(st, role):
                return f"{value} ({role})" if str(value) != role else role
        return str(value)

    def _running_row(self, m: Any, now: datetime) -> RunningRow:
        legacy = self.legacy
        since_col = legacy.since_column()
        since = legacy.as_datetime(m[since_col.name]) if since_col is not None else None
        lock = legacy.columns.locked_by
        holder = m[lock] if lock is not None else None
        return RunningRow(
            key=m[legacy.key],
            since=since,
            age=(now - since).total_seconds() if since is not None else None,
            locked_by=holder,
            durable=isinstance(holder, str) and holder.startswith(f"{self.name}:"),
        )

    # -- takeover --

    def claim(self, limit: int | None = None) -> ClaimReport:
        """Poll once: enqueue a workflow for each pending, due row that has no live one.

        Rows are read with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL, MariaDB/MySQL),
        so concurrent pollers and legacy workers holding a row are skipped. The
        row stays pending until its workflow starts (``begin`` marks it running).
        A row whose earlier workflow ended and that is pending again (re-queued
        by legacy code or the cron sweeper) gets a new run, ``<id>#2``, ``#3``...
        """
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
                log.warning("%s: poll failed, retrying in %.1fs: %s", self.adapter, backoff, exc)
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


__all__ = [
    "ClaimReport",
    "LegacyColumns",
    "LegacyTable",
    "MappingError",
    "RowFailedError",
    "RunningRow",
    "ShadowReport",
    "StatusColumnAdapter",
    "StatusValues",
    "Takeover",
    "TakeoverStats",
]
