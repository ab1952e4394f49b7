"""Bad configuration fails early with a clear message and never prints a password."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from toolkit import ConfigurationError, DatabaseUnavailableError, Durable
from toolkit.storage import schema


def test_malformed_url_fails_at_construction():
    with pytest.raises(ConfigurationError, match="invalid database URL"):
        Durable("not a url")


def test_malformed_url_hides_the_password():
    with pytest.raises(ConfigurationError) as info:
        Durable("postgresql://user:hunter2@host:notaport/db")
    assert "hunter2" not in str(info.value)


def test_unsupported_backend_is_named():
    with pytest.raises(ConfigurationError, match="unsupported database"):
        Durable("mysql://root@127.0.0.1/test")


def test_in_memory_sqlite_is_refused():
    app = Durable("sqlite://")
    with pytest.raises(ConfigurationError, match="in-memory"):
        app.list_workflows()


def test_unreachable_postgres_fails_clearly_without_the_password():
    app = Durable("postgresql://user:hunter2@127.0.0.1:1/nothing")

    @app.workflow()
    def wf() -> None:
        return None

    with pytest.raises(DatabaseUnavailableError) as info:
        app.start(wf)
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "hunter2" not in message and "***" in message


def test_environment_variable_is_the_default_url(tmp_path, monkeypatch):
    monkeypatch.setenv("DURABLE_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    app = Durable()
    assert app.list_workflows() == []
    assert (tmp_path / "env.db").exists()
    app.close()


def test_one_executing_process_per_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path}/one.db"
    first, second = Durable(url), Durable(url)

    @first.workflow(name="w")
    def w1() -> int:
        return 1

    @second.workflow(name="w")
    def w2() -> int:
        return 2

    assert first.run(w1, timeout=10) == 1
    with pytest.raises(ConfigurationError, match="SQLite supports one executing process"):
        second.start(w2)
    # Reading is always allowed.
    assert len(second.list_workflows()) == 1
    first.close()
    second.close()


def test_upgrade_is_versioned_and_idempotent(make_app, backend):
    app = make_app()
    assert app.upgrade() == [v for v, _, _ in schema.MIGRATIONS]
    assert app.upgrade() == []
    assert app.storage.schema_version() == schema.LATEST_VERSION
    inspector = sa.inspect(app.connection())
    if backend == "postgres":
        assert set(inspector.get_table_names(schema="durable")) >= {"workflows", "steps"}
        assert "workflows" not in inspector.get_table_names()  # nothing in public
    else:
        assert set(inspector.get_table_names()) >= {"durable_workflows", "durable_steps"}


def test_migrated_tables_match_the_table_definitions(make_app):
    app = make_app()
    app.upgrade()
    storage = app.storage
    inspector = sa.inspect(storage.engine)
    for table in (storage.workflows, storage.steps):
        reflected = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
        assert reflected == {c.name for c in table.columns}


def test_first_use_upgrades_automatically(make_app):
    app = make_app()
    assert app.list_workflows() == []
    assert app.storage.schema_version() == schema.LATEST_VERSION
