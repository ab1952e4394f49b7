"""A legacy dead-letter table imported as failed workflows, retried, purged and exported.

The system tables run on SQLite and PostgreSQL (``db_url``); the legacy table lives
in the same database, in another SQLite file, in another PostgreSQL database or
in MariaDB. Its name and one column name hold spaces and capitals, so every
statement has to quote them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.dead_letter import (
    DeadLetterError,
    DeadLetterTable,
    get_dead_letter,
    list_dead_letters,
    purge_dead_letters,
    retry_dead_letter,
)
from toolkit import Durable, RetryPolicy, WorkflowFailedError

LEGACY_WHERE = ["same", "sqlite", "postgres", "mariadb"]

T1 = datetime(2024, 1, 2, 3, 4, 5)
T2 = datetime(2024, 2, 3, 4, 5, 6)


@dataclass
class Legacy:
    url: str | None  # None: the app's own database
    engine: sa.Engine
    table: sa.Table

    def rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = sa.select(self.table).order_by(self.table.c.id)
            return [dict(r._mapping) for r in conn.execute(query)]

    def insert(self, *rows: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(self.table), list(rows))


@pytest.fixture(params=LEGACY_WHERE)
def legacy(request: pytest.FixtureRequest, app: Durable, tmp_path: Any) -> Iterator[Legacy]:
    """A legacy ``Failed Jobs`` table with three rows, in the database of the param."""
    where = request.param
    if where == "same":
        url, engine = None, app.connection()
    else:
        if where == "sqlite":
            url = f"sqlite:///{tmp_path}/legacy.db"
        elif where == "postgres":
            url = request.getfixturevalue("legacy_postgres_url")  # tests/adapters/conftest.py
        else:
            url = request.getfixturevalue("mariadb_url")
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    md = sa.MetaData()
    table = sa.Table(
        f"Failed Jobs {uuid.uuid4().hex[:8]}",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uuid", sa.String(64)),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("Error Text", sa.Text),
        sa.Column("failed_at", sa.DateTime),
    )
    md.create_all(engine)
    found = Legacy(url, engine, table)
    found.insert(  # ids 1, 2, 3 from the sequence, so that exported rows get 4
        {
            "queue": "mail",
            "payload": json.dumps({"to": "a@example.com"}),
            "Error Text": "SMTPError: timeout\n  at send_mail (mailer.py:12)",
            "failed_at": T1,
        },
        {
            "queue": "mail",
            "payload": json.dumps({"to": "b@example.com", "broken": True}),
            "Error Text": "SMTPError: mailbox full",
            "failed_at": T2,
        },
        {"queue": "mail", "payload": "{not json", "Error Text": "x", "failed_at": T2},
    )
    yield found
    md.drop_all(engine)
    if url is not None:
        engine.dispose()


def _adapter(app: Durable, legacy: Legacy, workflow: Any, **kw: Any) -> DeadLetterTable:
    return DeadLetterTable(
        app,
        table=legacy.table.name,
        key="id",
        payload="payload",
        error="Error Text",
        failed_at="failed_at",
        workflow=workflow,
        url=legacy.url,
        **kw,
    )


def _send_mail(app: Durable, seen: list[Any]) -> Any:
    @app.step(name="deliver", retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    def deliver(to: str) -> str:
        return f"sent to {to}"

    @app.workflow(name="send_mail")
    def send_mail(payload: dict[str, Any]) -> str:
        seen.append(payload)
        if payload.get("broken"):
            raise ValueError("still broken")
        return deliver(payload["to"])  # type: ignore[no-any-return]

    return send_mail


def _epoch(naive_utc: datetime) -> datetime:
    return naive_utc.replace(tzinfo=UTC)


def test_import_keeps_error_and_time_and_is_idempotent(app: Durable, legacy: Legacy) -> None:
    send_mail = _send_mail(app, [])
    table = _adapter(app, legacy, send_mail, columns=["queue"])

    first = table.import_rows()
    name = legacy.table.name
    assert first.imported == [f"dlq:{name}:1", f"dlq:{name}:2"]
    assert [key for key, _ in first.skipped] == ["3"]
    assert "not JSON" in first.skipped[0][1]

    record = app.get_workflow(f"dlq:{name}:1")
    assert (record.status, record.name) == ("failed", "send_mail")
    assert record.error is not None
    assert record.error["message"] == "SMTPError: timeout"
    assert record.error["traceback"] == "  at send_mail (mailer.py:12)"
    assert record.created_at == _epoch(T1)
    assert json.loads(record.inputs or "") == {"args": [{"to": "a@example.com"}], "kwargs": {}}

    letter = get_dead_letter(app, f"dlq:{name}:1")
    assert letter.source == f"table {name}"
    assert letter.failed_at == _epoch(T1)
    assert letter.details["key"] == 1
    assert letter.details["columns"] == {"queue": "mail"}

    again = table.import_rows()
    assert again.imported == []
    assert again.already == [f"dlq:{name}:1", f"dlq:{name}:2"]
    assert len(app.list_workflows()) == 2
    assert len(legacy.rows()) == 3  # a copy: the legacy rows stay
    table.close()


def test_retry_runs_the_handler_with_the_payload(app: Durable, legacy: Legacy) -> None:
    seen: list[Any] = []
    send_mail = _send_mail(app, seen)
    table = _adapter(app, legacy, send_mail)
    table.import_rows()
    name = legacy.table.name

    ok = retry_dead_letter(app, f"dlq:{name}:1")
    assert ok.result(timeout=30) == "sent to a@example.com"
    assert ok.status() == "succeeded"
    assert [s.name for s in ok.steps()] == ["deliver"]
    assert seen == [{"to": "a@example.com"}]

    again = retry_dead_letter(app, f"dlq:{name}:2")
    with pytest.raises(WorkflowFailedError, match="still broken"):
        again.result(timeout=30)
    letter = get_dead_letter(app, f"dlq:{name}:2")
    assert letter.source == f"table {name}"  # still known as imported after failing again
    assert letter.error_type == "ValueError"

    listed = list_dead_letters(app)
    assert [d.workflow_id for d in listed] == [f"dlq:{name}:2"]
    with pytest.raises(DeadLetterError, match="not a dead letter"):
        retry_dead_letter(app, f"dlq:{name}:1")
    table.close()


def test_export_writes_failed_workflows_once(app: Durable, legacy: Legacy) -> None:
    send_mail = _send_mail(app, [])
    with pytest.raises(WorkflowFailedError):
        app.run(
            send_mail, {"to": "c@example.com", "broken": True}, workflow_id="mail-c", timeout=30
        )
    table = _adapter(
        app,
        legacy,
        send_mail,
        workflow_id_column="uuid",
        export_values={"queue": "durable"},
    )
    table.import_rows()  # imported rows are not exported back

    shadow = table.export(mode="shadow")
    assert shadow.written == ["mail-c"]
    assert len(legacy.rows()) == 3

    result = table.export()
    assert result.written == ["mail-c"]
    rows = legacy.rows()
    assert len(rows) == 4
    row = rows[-1]
    assert row["uuid"] == "mail-c"
    assert row["queue"] == "durable"
    assert json.loads(row["payload"]) == {"to": "c@example.com", "broken": True}
    assert row["Error Text"].startswith("ValueError: still broken\nTraceback")
    failed = app.get_workflow("mail-c").updated_at
    assert abs((_epoch(row["failed_at"]) - failed).total_seconds()) < 1

    again = table.export()
    assert (again.written, again.already) == ([], ["mail-c"])
    assert len(legacy.rows()) == 4

    reimport = table.import_rows()
    assert reimport.imported == []
    assert (str(row["id"]), "exported from workflow mail-c") in reimport.skipped
    assert {w.workflow_id for w in app.list_workflows()} == {
        "mail-c",
        f"dlq:{legacy.table.name}:1",
        f"dlq:{legacy.table.name}:2",
    }
    table.close()


def test_delete_moves_the_rows(app: Durable, legacy: Legacy) -> None:
    table = _adapter(app, legacy, "send_mail")
    result = table.import_rows(delete=True)
    assert len(result.imported) == 2 and result.removed == 2
    assert [r["id"] for r in legacy.rows()] == [3]  # the unreadable row stays
    assert table.import_rows(delete=True).imported == []
    table.close()


def test_shadow_changes_nothing(app: Durable, legacy: Legacy) -> None:
    table = _adapter(app, legacy, "send_mail")
    result = table.import_rows(mode="shadow", delete=True)
    assert result.shadow and len(result.imported) == 2 and result.removed == 0
    assert app.list_workflows() == []
    assert len(legacy.rows()) == 3
    table.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"table": "no such table"}, "the dead-letter table no such table does not exist"),
        ({"error": "err", "failed_at": "when"}, "no column for error 'err', failed_at 'when'"),
        ({"columns": ["nope"]}, "no column for column nope 'nope'"),
    ],
)
def test_a_misdeclared_table_is_one_error_before_anything(
    app: Durable, legacy: Legacy, change: dict[str, Any], message: str
) -> None:
    kw: dict[str, Any] = {
        "table": legacy.table.name,
        "key": "id",
        "payload": "payload",
        "error": "Error Text",
        "failed_at": "failed_at",
        **change,
    }
    table = DeadLetterTable(app, workflow="send_mail", url=legacy.url, **kw)
    with pytest.raises(DeadLetterError, match=message):
        table.import_rows(delete=True)
    with pytest.raises(DeadLetterError, match=message):
        table.export()
    assert app.list_workflows() == []
    assert len(legacy.rows()) == 3
    table.close()


def test_export_checks_its_columns_first(app: Durable, legacy: Legacy) -> None:
    with pytest.raises(WorkflowFailedError):
        app.run(_send_mail(app, []), {"to": "x", "broken": True}, timeout=30)
    no_text_id = _adapter(app, legacy, "send_mail", export_values={"queue": "q"})
    with pytest.raises(DeadLetterError, match="needs a text column for the workflow id"):
        no_text_id.export()
    no_queue = _adapter(app, legacy, "send_mail", workflow_id_column="uuid")
    with pytest.raises(DeadLetterError, match=r"needs values for the column\(s\) queue"):
        no_queue.export()
    assert len(legacy.rows()) == 3


def test_purge_deletes_failed_workflows_only(app: Durable, legacy: Legacy) -> None:
    send_mail = _send_mail(app, [])
    _adapter(app, legacy, send_mail).import_rows()
    name = legacy.table.name
    retry_dead_letter(app, f"dlq:{name}:1").result(timeout=30)
    gone = purge_dead_letters(app, [f"dlq:{name}:1", f"dlq:{name}:2", "missing"])
    assert gone == [f"dlq:{name}:2"]
    assert [w.workflow_id for w in app.list_workflows()] == [f"dlq:{name}:1"]
    assert app.storage.get_events("durable.dead_letter", [f"dlq:{name}:2"]) == {}
    assert len(legacy.rows()) == 3


def test_a_retry_without_the_code_waits_for_a_process_that_has_it(
    make_app: Any, legacy: Legacy
) -> None:
    console = make_app()  # like `durable dlq retry`: no workflow code
    _adapter(console, legacy, "send_mail").import_rows()
    name = legacy.table.name
    assert retry_dead_letter(console, f"dlq:{name}:1").status() == "pending"

    seen: list[Any] = []
    worker = make_app(lease_timeout=2.0)
    _send_mail(worker, seen)
    (handle,) = worker.recover()
    assert handle.result(timeout=30) == "sent to a@example.com"
    assert seen == [{"to": "a@example.com"}]
