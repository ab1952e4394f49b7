"""Opening the state store for reading only: never create a file, folder, schema or table.

``Durable.storage`` creates and upgrades the system tables on first use, which
is right for an application and wrong for ``durable workflows list`` pointed
at a mistyped URL. :func:`open_read_only` checks first, with reads only, that
the database holds the toolkit's tables at this toolkit's version, and only
then opens the usual :class:`~toolkit.storage.base.Storage` (whose first-use
check then finds nothing to do).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import ConfigurationError, DurableError
from . import open_storage, resolve_url, schema
from .base import Storage, describe_url


class NoTablesError(ConfigurationError):
    """The database has no durable-toolkit tables (or the SQLite file does not exist)."""


def _no_tables(url: URL, why: str = "") -> NoTablesError:
    detail = f" ({why})" if why else ""
    return NoTablesError(
        f"no durable-toolkit tables in {describe_url(url)}{detail}; run `durable db upgrade`"
    )


def _check_version(url: URL, version: int) -> None:
    if version == 0:
        raise _no_tables(url)
    if version < schema.LATEST_VERSION:
        raise ConfigurationError(
            f"the durable-toolkit tables in {describe_url(url)} are at version {version}, "
            f"this toolkit reads version {schema.LATEST_VERSION}; run `durable db upgrade`"
        )
    if version > schema.LATEST_VERSION:
        raise DurableError(
            f"the database at {describe_url(url)} has schema version {version}, newer than "
            f"this toolkit's {schema.LATEST_VERSION}: upgrade durable-toolkit"
        )


_SQLITE_MIGRATIONS = "durable_migrations"
assert _SQLITE_MIGRATIONS == schema.SQLITE_PREFIX + "migrations"


def _sqlite_version(url: URL) -> int:
    """The schema version of a SQLite file, read without creating or changing anything."""
    path = Path(url.database or "")
    if not path.is_file():
        raise _no_tables(url, "no such file")
    try:
        # mode=rw: fails instead of creating the file; nothing below writes.
        conn = sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise ConfigurationError(f"cannot open the SQLite database {path}: {exc}") from exc
    try:
        found = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            (_SQLITE_MIGRATIONS,),
        ).fetchone()[0]
        if not found:
            return 0
        value = conn.execute("SELECT max(version) FROM durable_migrations").fetchone()[0]
        return int(value or 0)
    except sqlite3.DatabaseError as exc:
        raise ConfigurationError(f"cannot read the SQLite database {path}: {exc}") from exc
    finally:
        conn.close()


def open_read_only(url: str | URL | None = None) -> Storage:
    """A storage for reading: raises a one-line error instead of creating anything.

    A SQLite file that does not exist, or a database without the system tables,
    raises :class:`NoTablesError` ("no durable-toolkit tables in ...; run
    `durable db upgrade`"); tables older or newer than this toolkit raise too.
    Nothing is created or upgraded, on SQLite (no folder, file or table) or on
    PostgreSQL (no schema or table). Close it with ``dispose()``.
    """
    resolved = resolve_url(url)
    if resolved.get_backend_name() == "sqlite":
        _check_version(resolved, _sqlite_version(resolved))
        return open_storage(resolved)
    storage = open_storage(resolved)  # connects lazily; schema_version() only reads
    try:
        _check_version(resolved, storage.schema_version())
    except BaseException:
        storage.dispose()
        raise
    return storage
