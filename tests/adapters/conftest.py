"""Fixtures for the adapter tests: fresh legacy databases on SQLite, PostgreSQL and MariaDB.

MariaDB comes from ``$DURABLE_TEST_MARIADB_URL`` (default
``mysql+pymysql://root@127.0.0.1:3306/test``); each test gets a database of its
own (uuid name), dropped after it. Tests needing it skip when it is unreachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.schema import CreateSchema, DropSchema

MARIADB_ENV = "DURABLE_TEST_MARIADB_URL"
MARIADB_DEFAULT = "mysql+pymysql://root@127.0.0.1:3306/test"


def _mariadb_admin() -> tuple[sa.Engine, URL]:
    """An engine on the MariaDB server and its URL, or skip the test."""
    try:
        import pymysql  # noqa: F401
    except ImportError:
        pytest.skip("PyMySQL is not installed (pip install 'durable-toolkit[mysql]')")
    url = make_url(os.environ.get(MARIADB_ENV, MARIADB_DEFAULT)).set(drivername="mysql+pymysql")
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5}, poolclass=sa.NullPool)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.skip(
            f"no MariaDB/MySQL at {url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig).splitlines()[0]}"
        )
    return engine, url


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database (dropped after the test)."""
    engine, url = _mariadb_admin()
    name = f"legacy_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(CreateSchema(name))  # MySQL: CREATE DATABASE, identifier quoted
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(DropSchema(name, if_exists=True))
        engine.dispose()


@pytest.fixture
def legacy_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for a legacy table (dropped after the test)."""
    admin = postgres_admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"legacy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            make_url(admin)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def legacy_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh, empty database for a LEGACY table: SQLite file, PostgreSQL or MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/legacy.db"
    if request.param == "postgres":
        return str(request.getfixturevalue("legacy_postgres_url"))
    return str(request.getfixturevalue("mariadb_url"))
