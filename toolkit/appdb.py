"""The application's own database, apart from the state store.

When ``Durable(url, app_database_url=...)`` names another database (another
PostgreSQL server, MySQL/MariaDB, a SQLite file), a ``@transaction`` receives a
connection to *that* database. Its writes and one row of the small outputs
table there (state store id, workflow key, step number, output) commit in one
transaction of the app database; the checkpoint in the state store follows.
Replay and takeover look in the outputs table before running a transaction
whose checkpoint is missing, so a crash between the two commits neither runs
it twice nor loses its result. The outputs table is created by
``durable db upgrade`` (or ``Durable.upgrade()``), never silently.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigurationError, DatabaseUnavailableError
from .storage.health import DatabaseHealth

ENV_VAR = "DURABLE_APP_DATABASE_URL"
OUTPUTS = "outputs"
"""The outputs table: ``durable.outputs`` on PostgreSQL, ``durable_outputs`` elsewhere."""

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
    "mariadb+pymysql": "mysql+pymysql",
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
}
_CONNECTION_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)


def resolve_app_url(url: str | URL) -> URL:
    """The app database URL with its driver, or a one-line :class:`ConfigurationError`."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            "invalid app database URL: expected postgresql://..., mysql://... (MariaDB too) "
            "or sqlite:///file.db"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"unsupported app database {parsed.render_as_string(hide_password=True)!r}: "
            "a @transaction's app database may be PostgreSQL, MySQL/MariaDB or SQLite"
        )
    if driver == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigurationError("the app database must be a SQLite file, not in memory")
    return parsed.set(drivername=driver)


_LOOPBACK = {"", "localhost", "127.0.0.1", "::1"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


def same_database(a: URL, b: URL) -> bool:
    """Whether two resolved URLs name the same database (then nothing is apart).

    Host names of the loopback interface (``localhost``, ``127.0.0.1``, ``::1``,
    none) are one host, and a missing port is the backend's default. Any other
    difference counts as another database: keeping the two apart is always
    correct, only slower, while merging two databases would not be.
    """
    backend = a.get_backend_name()
    if backend != b.get_backend_name():
        return False
    if backend == "sqlite":
        from pathlib import Path

        return Path(a.database or "").resolve() == Path(b.database or "").resolve()

    def where(url: URL) -> tuple[str, int | None, str | None]:
        host = (url.host or "").lower()
        return (
            "loopback" if host in _LOOPBACK else host,
            url.port or _DEFAULT_PORTS.get(backend),
            url.database,
        )

    return where(a) == where(b)


class AppDatabase:
    """The app database of one ``Durable`` app: connections and the outputs table."""

    def __init__(self, url: str | URL) -> None:
        self.url = resolve_app_url(url)
        self.backend = self.url.get_backend_name()
        if self.backend == "mysql":
            try:
                import pymysql  # noqa: F401
            except ImportError:
                raise ConfigurationError(
                    "a MySQL/MariaDB app database needs PyMySQL: "
                    "pip install 'durable-toolkit[mysql]'"
                ) from None
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.backend == "postgresql":
            options["connect_args"] = {"connect_timeout": 10, "application_name": "durable-app"}
        elif self.backend == "mysql":
            options["connect_args"] = {"connect_timeout": 10}
            options["isolation_level"] = "READ COMMITTED"
        else:
            options["connect_args"] = {"timeout": 30}
        self.engine = sa.create_engine(self.url, **options)
        self.health = DatabaseHealth(self.describe())
        schema = "durable" if self.backend == "postgresql" else None
        name = OUTPUTS if schema else f"durable_{OUTPUTS}"
        self.metadata = sa.MetaData(schema=schema)
        self.outputs = sa.Table(
            name,
            self.metadata,
            sa.Column("store_id", sa.String(32), primary_key=True),
            sa.Column("wf_key", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("step_number", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("workflow_id", sa.Text, nullable=False),
            sa.Column("output", sa.Text().with_variant(mysql.LONGTEXT(), "mysql")),
            sa.Column("created_at", sa.BigInteger, nullable=False),
            mysql_charset="utf8mb4",  # any id the toolkit accepts, whatever the default
        )
        self._checked = False

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        reason = getattr(exc, "orig", None) or exc
        text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        self.health.failed(text)
        return DatabaseUnavailableError(f"cannot use the app database at {self.describe()}: {text}")

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except _CONNECTION_ERRORS as exc:
            raise self._unavailable(exc) from exc
        self.health.succeeded()

    # -- set-up ------------------------------------------------------------------------

    def check(self) -> None:
        """Reachable and upgraded, or one clear error (at start-up, not at the first step)."""
        if self._checked:
            return
        with self._translated(), self.engine.connect() as conn:
            present = sa.inspect(conn).has_table(self.outputs.name, schema=self.outputs.schema)
        if not present:
            raise ConfigurationError(
                f"the app database at {self.describe()} has no durable-toolkit outputs table "
                f"({self.outputs.fullname}); run `durable db upgrade` (or app.upgrade())"
            )
        self._checked = True

    def upgrade(self) -> bool:
        """Create the outputs table if it is missing; ``True`` if it was created."""
        with self._translated(), self.engine.begin() as conn:
            if self.outputs.schema is not None:
                conn.execute(sa.schema.CreateSchema(self.outputs.schema, if_not_exists=True))
            if sa.inspect(conn).has_table(self.outputs.name, schema=self.outputs.schema):
                return False
            self.metadata.create_all(conn, tables=[self.outputs])
            return True

    def dispose(self) -> None:
        self.engine.dispose()

    # -- transactions and outputs ---------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection in a transaction that commits on success; a lost connection raises
        :class:`DatabaseUnavailableError`, any other error is raised as it is."""
        try:
            conn = self.engine.connect()
        except _CONNECTION_ERRORS as exc:
            raise self._unavailable(exc) from exc
        try:
            with conn.begin():
                yield conn
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise self._unavailable(exc) from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        self.health.succeeded()

    def insert_output(
        self,
        conn: sa.Connection,
        store_id: str,
        wf_key: int,
        step_number: int,
        workflow_id: str,
        output: str,
    ) -> bool:
        """Record a transaction's output in its own transaction; ``False`` if another run
        of the same step already committed (the caller must roll back)."""
        try:
            conn.execute(
                self.outputs.insert().values(
                    store_id=store_id,
                    wf_key=wf_key,
                    step_number=step_number,
                    workflow_id=workflow_id,
                    output=output,
                    created_at=int(time.time() * 1000),
                )
            )
        except sa.exc.IntegrityError:
            return False
        return True

    def find_output(self, store_id: str, wf_key: int, step_number: int) -> str | None:
        """The committed output of a transaction step, or ``None`` if it never committed."""
        o = self.outputs
        with self._translated(), self.engine.connect() as conn:
            return conn.execute(
                sa.select(o.c.output).where(
                    o.c.store_id == store_id, o.c.wf_key == wf_key, o.c.step_number == step_number
                )
            ).scalar()

    def output_keys(self, store_id: str, older_than_ms: int, limit: int) -> list[int]:
        """Workflow keys (of this state store) with outputs rows older than the cut-off."""
        o = self.outputs
        with self._translated(), self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(o.c.wf_key)
                    .where(o.c.store_id == store_id, o.c.created_at < older_than_ms)
                    .distinct()
                    .limit(limit)
                ).scalars()
            )

    def delete_outputs(self, store_id: str, wf_keys: Sequence[int]) -> int:
        """Delete the outputs rows of these workflows; the number of rows deleted."""
        if not wf_keys:
            return 0
        o = self.outputs
        with self._translated(), self.engine.begin() as conn:
            return conn.execute(
                sa.delete(o).where(o.c.store_id == store_id, o.c.wf_key.in_(list(wf_keys)))
            ).rowcount
