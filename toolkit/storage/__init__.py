"""Storage backends: SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import ConfigurationError
from .base import Storage, describe_url, now_ms

DEFAULT_URL = "sqlite:///.durable/state.db"
ENV_VAR = "DURABLE_DATABASE_URL"

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "Storage",
    "describe_url",
    "now_ms",
    "open_storage",
    "resolve_url",
]


def _mask(text: str) -> str:
    """Hide a password in a URL that did not even parse."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)


def resolve_url(url: str | URL | None = None) -> URL:
    """The database URL: the argument, else ``$DURABLE_DATABASE_URL``, else the SQLite default.

    ``postgresql://`` and ``postgres://`` mean PostgreSQL through psycopg 3.
    """
    text = url if url is not None else (os.environ.get(ENV_VAR) or DEFAULT_URL)
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError):
        shown = _mask(str(text))
        raise ConfigurationError(
            f"invalid database URL {shown!r}: expected sqlite:///path/to/file.db or "
            "postgresql://user@host:5432/dbname"
        ) from None
    driver = parsed.drivername
    if driver in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if driver in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ConfigurationError(
        f"unsupported database {describe_url(parsed)!r}: durable-toolkit stores its state in "
        "SQLite (sqlite:///file.db) or PostgreSQL (postgresql://...)"
    )


def open_storage(url: str | URL | None = None) -> Storage:
    """A storage for the URL. Connects lazily: call ``ensure_ready()`` to check it."""
    resolved = resolve_url(url)
    if resolved.get_backend_name() == "sqlite":
        from .sqlite import SQLiteStorage

        return SQLiteStorage(resolved)
    from .postgres import PostgresStorage

    return PostgresStorage(resolved)
