"""Every mapping is checked once, up front, against the real table (SQLite, PostgreSQL, MariaDB).

A mistake is one line naming the table, the column and what is wrong, and
nothing changes: neither the legacy table nor the workflow database.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from adapters.status_column import LegacyColumns, MappingError, StatusColumnAdapter, StatusValues
from toolkit import Durable

from .test_status_column import engine_for

VALUES = StatusValues(column="state", pending="NEW", running="WORKING", done="DONE", failed="DEAD")


def make_outbox(url: str, owner_width: int, state: sa.types.TypeEngine[Any] | None = None) -> None:
    engine = engine_for(url)
    md = sa.MetaData()
    table = sa.Table(
        "outbox",
        md,
        sa.Column("task_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", state if state is not None else sa.String(20), nullable=False),
        sa.Column("owner", sa.String(owner_width)),
        sa.Column("locked_at", sa.DateTime),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"task_no": 123456, "state": "NEW"}])
    engine.dispose()


def outbox_adapter(app: Durable, url: str, sent: list[int], **changes: Any) -> StatusColumnAdapter:
    kwargs: dict[str, Any] = {
        "table": "outbox",
        "key": "task_no",
        "status": VALUES,
        "columns": LegacyColumns(locked_by="owner", locked_at="locked_at"),
        "handler": lambda row: sent.append(row["task_no"]),
    }
    kwargs.update(changes)
    return StatusColumnAdapter(app, url, **kwargs)


def test_a_lock_owner_column_narrower_than_the_ids_is_refused(legacy_url, tmp_path):
    """The issue's reproduction: owner VARCHAR(12) used to get 'outbox:12345' and send twice."""
    make_outbox(legacy_url, 12)
    app = Durable(f"sqlite:///{tmp_path}/state.db", lease_timeout=2.0)
    sent: list[int] = []
    adapter = outbox_adapter(app, legacy_url, sent)
    try:
        with pytest.raises(MappingError) as caught:
            adapter.takeover(poll_interval=0.1)
        message = str(caught.value)
        assert "\n" not in message
        assert "locked_by column 'owner' is VARCHAR(12) (12 characters)" in message
        needed = 7 + (20 if legacy_url.startswith("sqlite") else 11) + 5
        assert f"need {needed} ('outbox:' + a key of up to" in message
        assert app._storage is None  # nothing was started
        engine = engine_for(legacy_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT task_no, state, owner FROM outbox")).all()
        engine.dispose()
        assert [tuple(r) for r in rows] == [(123456, "NEW", None)]
        assert sent == []
    finally:
        adapter.legacy.dispose()
        app.close()


def test_a_wide_enough_owner_column_holds_the_whole_id(legacy_url, tmp_path):
    width = 7 + (20 if legacy_url.startswith("sqlite") else 11) + 5
    make_outbox(legacy_url, width)
    app = Durable(f"sqlite:///{tmp_path}/state.db", lease_timeout=2.0)
    sent: list[int] = []
    seen: list[str] = []

    def handler(row: dict[str, Any]) -> None:
        seen.append(row["owner"])
        sent.append(row["task_no"])

    adapter = outbox_adapter(app, legacy_url, sent, handler=handler)
    try:
        with adapter.takeover(poll_interval=0.1) as takeover:
            assert takeover.wait_idle(timeout=60)
        assert seen == ["outbox:123456"]  # written whole, compared as written
        engine = engine_for(legacy_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT task_no, state, owner FROM outbox")).all()
        engine.dispose()
        assert [tuple(r) for r in rows] == [(123456, "DONE", None)]
        assert sent == [123456]
        assert app.get_workflow("outbox:123456").status == "succeeded"
    finally:
        adapter.legacy.dispose()
        app.close()


def _mapping_error(app: Durable, url: str, **changes: Any) -> str:
    adapter = outbox_adapter(app, url, [], name=f"a{abs(hash(repr(changes))) % 10_000}", **changes)
    try:
        with pytest.raises(MappingError) as caught:
            adapter.shadow()
        return str(caught.value)
    finally:
        adapter.legacy.dispose()


def test_status_values_are_checked_against_width_enum_and_check(legacy_url, tmp_path):
    make_outbox(legacy_url, 64, state=sa.String(8))
    app = Durable(f"sqlite:///{tmp_path}/state.db")
    try:
        long = StatusValues(
            column="state", pending="NEW", running="IN_PROGRESS", done="DONE", failed="DEAD"
        )
        message = _mapping_error(app, legacy_url, status=long)
        assert "column 'state' is VARCHAR(8): too narrow for running 'IN_PROGRESS'" in message
        numbers = StatusValues(column="state", pending=0, running=1, done=2, failed=3)
        message = _mapping_error(app, legacy_url, status=numbers)
        assert "the pending value 0 is not text but column 'state' is VARCHAR(8)" in message
        assert "\n" not in message
        assert app._storage is None
    finally:
        app.close()


def test_enum_and_check_constraints_must_allow_every_status_value(legacy_url, tmp_path):
    engine = engine_for(legacy_url)
    backend = engine.dialect.name
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(sa.text("CREATE TYPE job_state AS ENUM ('NEW', 'WORKING', 'DONE')"))
            conn.execute(
                sa.text("CREATE TABLE queued (id INTEGER PRIMARY KEY, state job_state NOT NULL)")
            )
        elif backend in ("mysql", "mariadb"):
            conn.execute(
                sa.text(
                    "CREATE TABLE queued (id INTEGER PRIMARY KEY,"
                    " state ENUM('NEW', 'WORKING', 'DONE') NOT NULL)"
                )
            )
        if backend != "sqlite":
            conn.execute(sa.text("INSERT INTO queued VALUES (1, 'NEW')"))
        conn.execute(
            sa.text(
                "CREATE TABLE checked (id INTEGER PRIMARY KEY, status VARCHAR(12) NOT NULL,"
                " CONSTRAINT status_ok CHECK (status IN ('NEW', 'WORKING', 'DONE', 'ERROR')))"
            )
        )
        conn.execute(sa.text("INSERT INTO checked VALUES (1, 'NEW')"))
    engine.dispose()
    app = Durable(f"sqlite:///{tmp_path}/state.db")
    try:
        dead = StatusValues(
            column="status", pending="NEW", running="WORKING", done="DONE", failed="DEAD"
        )
        message = _mapping_error(
            app, legacy_url, table="checked", key="id", status=dead, columns=None
        )
        assert "the CHECK constraint 'status_ok' on column 'status' allows only" in message
        assert "not failed 'DEAD'" in message
        ok = StatusValues(
            column="status", pending="NEW", running="WORKING", done="DONE", failed="ERROR"
        )
        adapter = outbox_adapter(
            app, legacy_url, [], table="checked", key="id", status=ok, columns=None, name="ok"
        )
        assert adapter.check() == {"NEW": 1}
        adapter.legacy.dispose()
        if backend != "sqlite":
            state = StatusValues(
                column="state", pending="NEW", running="WORKING", done="DONE", failed="DEAD"
            )
            message = _mapping_error(
                app, legacy_url, table="queued", key="id", status=state, columns=None
            )
            assert (
                "column 'state' is an ENUM of 'NEW', 'WORKING', 'DONE', "
                "which does not allow failed 'DEAD'" in message
            )
        assert app._storage is None
    finally:
        app.close()


def test_an_id_too_long_for_the_lock_column_is_never_cut(legacy_url, tmp_path, caplog):
    """A text key has no width to check up front: such a row is not started, said once."""
    if legacy_url.startswith("mysql"):
        pytest.skip("a MariaDB key always has a bounded width, checked up front")
    engine = engine_for(legacy_url)
    md = sa.MetaData()
    table = sa.Table(
        "tickets",
        md,
        sa.Column("code", sa.Text, primary_key=True),  # no width to check up front
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("owner", sa.String(20)),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [{"code": "short", "state": "NEW"}, {"code": "x" * 40, "state": "NEW"}],
        )
    app = Durable(f"sqlite:///{tmp_path}/state.db", lease_timeout=2.0)
    sent: list[str] = []
    adapter = StatusColumnAdapter(
        app,
        legacy_url,
        table="tickets",
        key="code",
        status=VALUES,
        columns=LegacyColumns(locked_by="owner"),
        handler=lambda row: sent.append(row["code"]),
    )
    try:
        with adapter.takeover(poll_interval=0.05) as takeover:
            assert not takeover.wait_idle(timeout=1)  # the long one stays pending
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.select(table.c.code, table.c.state)).all())
        assert rows == {"short": "DONE", "x" * 40: "NEW"}
        assert sent == ["short"]
        warned = [r for r in caplog.records if "do not fit whole in column 'owner'" in r.message]
        assert len(warned) == 1  # one line, however many polls
        assert [w.workflow_id for w in app.list_workflows()] == ["tickets:short"]
    finally:
        adapter.legacy.dispose()
        app.close()
        engine.dispose()
