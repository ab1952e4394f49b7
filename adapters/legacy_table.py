"""The mapping of a legacy job table: where it is, its key, its state and bookkeeping columns.

:class:`LegacyTable` reflects the table once and checks the declared mapping
against it (see :mod:`adapters.legacy_checks`); the value helpers write times,
text and keys in the shape each column stores.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from toolkit import Durable, RetryPolicy
from toolkit.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DurableError,
    StepFailedError,
)
from toolkit.storage import describe_url

from .legacy_checks import check_constraints, id_width_problem, status_problems
from .row_state import ColumnsState, RowState, StateColumns, StatusState, is_flag

LIVE = ("enqueued", "pending")
"""Durable statuses of a workflow that has not ended."""

WRITE_BACK_RETRY = RetryPolicy(
    max_attempts=10, initial_delay=0.2, backoff=2.0, max_delay=10.0, jitter=True
)
"""Retries of a write-back step (a deadlock or a lost connection on the legacy database)."""


class MappingError(DurableError):
    """The declared mapping does not match the legacy table (nothing was touched)."""


class LegacyDatabaseUnavailableError(DatabaseUnavailableError):
    """The legacy database cannot be reached. Inside a workflow's write-back step the
    engine waits it out, as for its own database (the row's state is never lost)."""


class LegacyPollError(DurableError):
    """A poll of a legacy table could not reach the legacy database (nothing was claimed)."""


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


@dataclass(frozen=True)
class JsonKey:
    """A number kept under ``key`` in a JSON column (``JsonKey("payload", "retried")``)."""

    column: str
    key: str


@dataclass(frozen=True, kw_only=True)
class LegacyColumns:
    """Optional bookkeeping columns of a legacy job table, by role.

    Each is the name of a column, or ``None`` when the table has none. The
    adapter writes them as a legacy worker would: ``attempts`` (attempts made),
    ``last_error`` (``"Type: message"`` of the last failure), ``next_retry_at``
    (when the next attempt starts; due rows only are claimed), ``locked_by``
    (the workflow id running the row), ``locked_at`` (when it started) and
    ``updated_at`` (every write). Time columns may be date-times (naive ones
    are UTC), epoch seconds (numbers) or ISO text. ``attempts`` may be a
    :class:`JsonKey`: the count is kept in a JSON document (a JSON column or
    JSON text), read and written back with the rest of the document unchanged.
    """

    attempts: str | JsonKey | None = None
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
                (
                    "attempts",
                    self.attempts.column if isinstance(self.attempts, JsonKey) else self.attempts,
                ),
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


def is_app_database(app: Durable, url: URL) -> bool:
    """Whether ``url`` is the app's app database kept apart from the state store: then a
    ``@transaction`` writes there, exactly once through the app database's outputs row."""
    app_db = app.app_database
    return app_db is not None and same_database(url, app_db.url)


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
        status: StatusValues | StateColumns,
        columns: LegacyColumns | None = None,
        schema: str | None = None,
    ) -> None:
        if not isinstance(status, StatusValues | StateColumns):
            raise TypeError("status must be a StatusValues(...) or a StateColumns(...)")
        if columns is not None and not isinstance(columns, LegacyColumns):
            raise TypeError("columns must be a LegacyColumns(...)")
        if not table or not key:
            raise ValueError("table and key must be non-empty column names")
        self.url = normalise_url(url)
        self.name = table
        self.schema = schema
        self.key = key
        self.status = status
        self.state: RowState = (
            StatusState(self, status)
            if isinstance(status, StatusValues)
            else ColumnsState(self, status)
        )
        self.columns = columns or LegacyColumns()
        self._engine: sa.Engine | None = None
        self._write_engine: sa.Engine | None = None
        self._table: sa.Table | None = None
        self._reflected: sa.Table | None = None
        self._reflecting = threading.RLock()
        self._lock = threading.Lock()
        self.id_prefix: str | None = None
        """The prefix of the workflow ids written into ``locked_by`` (set by the adapter)."""

    @classmethod
    def for_app(
        cls,
        app: Durable,
        legacy_url: str | URL | None,
        table: str,
        *,
        key: str,
        status: StatusValues | StateColumns,
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
        return LegacyDatabaseUnavailableError(
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
        table = self._table
        if table is None:
            with self._reflecting:  # one thread reflects; the others wait for its table
                if self._table is None:
                    with self.reading() as conn:
                        reflected = self._reflect(conn)
                        self._check_values(conn, reflected)
                    self._table = reflected
                table = self._table
        return table

    def check(self) -> dict[Any, int]:
        """Reflect and check the table now; return the row count of each status value.

        Raises :class:`MappingError` naming the table, the column and the values
        when the table or a declared column is missing, the key is not unique,
        a column has a type the adapter cannot write, or the status column holds
        a value that is not declared.
        """
        with self._reflecting, self.reading() as conn:
            table = self._reflect(conn)
            counts = self._check_values(conn, table)
            if self._table is None:  # a table in use is never swapped: its columns are
                self._table = table  # in queries other threads are building right now
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
        wanted = {"key": self.key, **self.state_columns(), **self.columns.declared()}
        missing = [
            f"{role} column {name!r}" for role, name in wanted.items() if name not in table.c
        ]
        if missing:
            raise MappingError(
                f"legacy table {self.qualified_name!r} {where} has no {', '.join(missing)} "
                f"(its columns: {', '.join(table.c.keys())})"
            )
        self._reflected = table
        self._check_key(conn, table)
        self._check_types(table)
        self._check_widths_and_values(conn, table)
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
            if role == "attempts" and isinstance(self.columns.attempts, JsonKey):
                continue  # checked with the widths
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

    def state_columns(self) -> dict[str, str]:
        """Role -> column of the columns that hold a row's state."""
        if isinstance(self.status, StatusValues):
            return {"status": self.status.column}
        return self.status.declared()

    def _check_widths_and_values(self, conn: sa.Connection, table: sa.Table) -> None:
        problems: list[str] = []
        if isinstance(self.columns.attempts, JsonKey):
            typ = table.c[self.columns.attempts.column].type
            if not isinstance(typ, sa.JSON | sa.String):
                problems.append(
                    f"attempts column {self.columns.attempts.column!r} is {typ}, not JSON"
                )
        lock = self.columns.locked_by
        if lock is not None and self.id_prefix is not None:
            problem = id_width_problem(
                table.c[lock], table.c[self.key], self.id_prefix, self.backend
            )
            if problem:
                problems.append(problem)
        st = self.status
        if isinstance(st, StatusValues):
            checks = check_constraints(sa.inspect(conn), self.name, self.schema)
            roles = {"pending": st.pending, "running": st.running, "done": st.done}
            problems += status_problems(table.c[st.column], {**roles, "failed": st.failed}, checks)
        else:
            for role, name in st.declared().items():
                col = table.c[name]
                if not is_flag(col) and not col.nullable:
                    problems.append(
                        f"{role} column {name!r} is NOT NULL: a NULL there is what says a row "
                        f"is not {role}"
                    )
                elif not is_flag(col) and not isinstance(
                    col.type, sa.DateTime | sa.Integer | sa.Numeric | sa.Float | sa.String
                ):
                    problems.append(
                        f"{role} column {name!r} is {col.type}: expected a date-time, epoch "
                        "seconds, text or a boolean"
                    )
            if st.lease is not None and is_flag(table.c[st.declared()["taken"]]):
                problems.append("a lease column must hold a time, not a flag")
        if problems:
            raise MappingError(f"legacy table {self.qualified_name!r}: " + "; ".join(problems))

    def id_fits(self, workflow_id: str) -> bool:
        """Whether ``workflow_id`` fits whole in the ``locked_by`` column (it is never cut)."""
        lock = self.col("locked_by")
        width = getattr(lock.type, "length", None) if lock is not None else None
        return not width or len(workflow_id) <= width

    @property
    def reflected(self) -> sa.Table:
        """The table as last reflected (being checked, or checked), without reflecting it."""
        table = self._table if self._table is not None else self._reflected
        return table if table is not None else self.table

    def _check_values(self, conn: sa.Connection, table: sa.Table) -> dict[Any, int]:
        if not isinstance(self.status, StatusValues):
            return self.state.counts(conn, datetime.now(UTC))
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
        cond = self.state.cond("pending", now)
        assert cond is not None
        retry_at = self.col("next_retry_at")
        if retry_at is not None:
            cond = sa.and_(
                cond,
                sa.or_(retry_at.is_(None), retry_at <= self.time_value(retry_at, now)),
            )
        return cond

    def attempts_of(self, m: Any) -> int:
        """The attempts count of a row (0 without an attempts column)."""
        spec = self.columns.attempts
        if spec is None:
            return 0
        if isinstance(spec, JsonKey):
            doc = _json_doc(m[spec.column])
            value = doc.get(spec.key, 0) if isinstance(doc, dict) else 0
            return int(value or 0) if isinstance(value, int | float | str) else 0
        return int(m[spec] or 0)

    def attempts_values(self, m: Any, attempts: int) -> dict[str, Any]:
        """The values that write ``attempts`` into a row read as ``m``."""
        spec = self.columns.attempts
        if spec is None:
            return {}
        if isinstance(spec, JsonKey):
            raw = m[spec.column]
            doc = _json_doc(raw)
            doc = dict(doc) if isinstance(doc, dict) else {}
            doc[spec.key] = attempts
            col = self.table.c[spec.column]
            return {spec.column: doc if isinstance(col.type, sa.JSON) else json.dumps(doc)}
        return {spec: attempts}

    def attempts_column(self) -> sa.Column[Any] | None:
        """The attempts column when it holds a plain number (SQL can compare it)."""
        spec = self.columns.attempts
        return self.table.c[spec] if isinstance(spec, str) else None

    def since_column(self) -> sa.Column[Any] | None:
        """The column that says since when a row is running: locked_at, else the column
        that marks a row taken (not a lease), else updated_at."""
        if self.col("locked_at") is not None:
            return self.col("locked_at")
        if isinstance(self.status, StateColumns) and self.status.lease is None:
            taken = self.status.declared().get("taken")
            if taken is not None and not is_flag(self.table.c[taken]):
                return self.table.c[taken]
        return self.col("updated_at")


def _json_doc(raw: Any) -> Any:
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode()
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw


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
