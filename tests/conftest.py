"""Shared fixtures: a fresh database per test, on SQLite and on PostgreSQL.

PostgreSQL comes from, in order:
1. ``$DURABLE_TEST_POSTGRES_URL``;
2. the server on the default local port (127.0.0.1:5432, user postgres), if one answers;
3. a throwaway cluster started from the local binaries (tests/pg_cluster.py; as the
   ``postgres`` user when run as root, since initdb refuses root);
4. testcontainers, where a Docker engine answers.
Each test run creates its own database and drops it at the end; each test
gets empty schemas, so runs and tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from toolkit import Durable

ENV_URL = "DURABLE_TEST_POSTGRES_URL"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_database(url: str, dbname: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


DEFAULT_LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def _default_port() -> Iterator[str]:
    """The server on the default local port, if one answers there."""
    with psycopg.connect(DEFAULT_LOCAL_URL, connect_timeout=3, autocommit=True):
        pass
    yield DEFAULT_LOCAL_URL


@contextlib.contextmanager
def _local_server() -> Iterator[str]:
    """A throwaway cluster from the local binaries (as ``postgres`` when run as root)."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests import pg_cluster

    why = pg_cluster.available()
    if why:
        raise RuntimeError(why)
    cluster = pg_cluster.OwnedCluster()
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.destroy()


@contextlib.contextmanager
def _container() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer  # type: ignore[import-not-found]

    with PostgresContainer("postgres:15") as pg:
        yield pg.get_connection_url().replace("+psycopg2", "")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL of a PostgreSQL server we may create databases on, or skip."""
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    errors = []
    for source in (_default_port, _local_server, _container):
        try:
            with source() as found:
                yield found
                return
        except Exception as exc:
            errors.append(f"{source.__name__}: {exc}")
    pytest.skip("no PostgreSQL: set $DURABLE_TEST_POSTGRES_URL (" + "; ".join(errors) + ")")


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A database created for this test run, dropped at its end."""
    name = f"durable_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(postgres_admin_url, name)
    finally:
        with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _reset_postgres(url: str) -> None:
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS durable CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh, empty database URL; every durable-state test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    url = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    return str(url)


@pytest.fixture
def backend(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite") else "postgres"


@pytest.fixture
def make_app(db_url: str) -> Iterator[Callable[..., Durable]]:
    """Build ``Durable`` apps on the test database; all are closed after the test."""
    apps: list[Durable] = []

    def make(**kwargs: Any) -> Durable:
        app = Durable(db_url, **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: Callable[..., Durable]) -> Durable:
    return make_app(lease_timeout=2.0)
