"""App databases for the tests: PostgreSQL, MariaDB (fresh database each) and SQLite."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.adapters.conftest import legacy_postgres_url, mariadb_url  # noqa: E402

__all__ = ["legacy_postgres_url", "mariadb_url"]


@pytest.fixture(params=["postgres", "mariadb", "sqlite"])
def app_db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh, empty app database: PostgreSQL, MariaDB or a SQLite file."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/app.db"
    if request.param == "postgres":
        return str(request.getfixturevalue("legacy_postgres_url"))
    return str(request.getfixturevalue("mariadb_url"))
