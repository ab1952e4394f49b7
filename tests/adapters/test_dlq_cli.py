"""``durable dlq`` through the real CLI, on real databases (and the real RabbitMQ)."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
from click.testing import CliRunner, Result

from toolkit import Durable
from toolkit.cli import main

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

HANDLERS = """
from toolkit import Durable

app = Durable()

@app.workflow(name="send_mail")
def send_mail(payload):
    if payload.get("broken"):
        raise ValueError("still broken")
    return "sent to " + payload["to"]
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def legacy_db(tmp_path: Path) -> str:
    """A legacy SQLite database with a Laravel-like failed_jobs table of three rows."""
    path = tmp_path / "legacy.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE failed_jobs (id INTEGER PRIMARY KEY, uuid TEXT, queue TEXT NOT NULL, "
        "payload TEXT NOT NULL, exception TEXT, failed_at TIMESTAMP)"
    )
    conn.executemany(
        "INSERT INTO failed_jobs (queue, payload, exception, failed_at) VALUES (?, ?, ?, ?)",
        [
            ("mail", '{"to": "a@example.com"}', "SMTPError: timeout", "2024-01-02 03:04:05"),
            ("mail", '{"to": "b@example.com", "broken": true}', "boom", "2024-01-03 00:00:00"),
            ("mail", "{not json", "x", "2024-01-04 00:00:00"),
        ],
    )
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module with the app's workflows in the current folder; its ``--app`` path."""
    name = f"mail_jobs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(HANDLERS), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return f"{name}:app"


def _table_args(legacy_db: str) -> list[str]:
    return [
        "--legacy-url",
        legacy_db,
        "--table",
        "failed_jobs",
        "--key",
        "id",
        "--payload",
        "payload",
        "--error",
        "exception",
        "--failed-at",
        "failed_at",
        "--workflow",
        "send_mail",
        "--workflow-id-column",
        "uuid",
    ]


def _dlq(runner: CliRunner, db_url: str, *args: str, **kw: Any) -> Result:
    env = {"COLUMNS": "200"}  # rich tables: one line per row
    return runner.invoke(main, ["dlq", *args, "--database-url", db_url], env=env, **kw)


def test_import_list_show_retry_purge(
    runner: CliRunner, db_url: str, legacy_db: str, handlers: str
) -> None:
    args = _table_args(legacy_db)
    shadow = _dlq(runner, db_url, "import-table", *args, "--shadow")
    assert shadow.exit_code == 0, shadow.output
    assert "would import 2 dead letter(s) from table failed_jobs" in shadow.output
    empty = _dlq(runner, db_url, "list")
    assert "no dead letters" in empty.output

    imported = _dlq(runner, db_url, "import-table", *args, "--column", "queue")
    assert imported.exit_code == 0, imported.output
    assert "imported 2 dead letter(s) from table failed_jobs" in imported.output
    assert "(0 already imported, 1 skipped)" in imported.output
    assert "skipped 3: the payload is not JSON" in imported.output
    again = _dlq(runner, db_url, "import-table", *args)
    assert "imported 0 dead letter(s)" in again.output and "2 already imported" in again.output

    listed = _dlq(runner, db_url, "list")
    assert listed.exit_code == 0, listed.output
    assert "dlq:failed_jobs:1" in listed.output and "dlq:failed_jobs:2" in listed.output
    assert "table failed_jobs" in listed.output and "SMTPError: timeout" in listed.output

    shown = _dlq(runner, db_url, "show", "dlq:failed_jobs:1")
    assert shown.exit_code == 0, shown.output
    for text in (
        "status:   failed",
        "source:   table failed_jobs",
        "failed:   ",
        "key:      1   failed at: 2024-01-02 03:04:05",
        "queue: mail",
        'payload:  {"to": "a@example.com"}',
        "error:    failed_jobs: SMTPError: timeout",
    ):
        assert text in shown.output

    pending = _dlq(runner, db_url, "retry", "dlq:failed_jobs:1")
    assert pending.exit_code == 0, pending.output
    assert "dlq:failed_jobs:1: pending (a worker serving send_mail will run it)" in pending.output
    ran = _dlq(runner, db_url, "retry", "--all", "--app", handlers)
    assert ran.exit_code == 1  # one of them fails again
    assert "dlq:failed_jobs:2: failed again: ValueError: still broken" in ran.output
    assert "Error: 1 of 1 dead letter(s) failed again or could not be retried" in ran.output
    # the pending one is not a dead letter any more: retry --all took only the failed one
    app = Durable(db_url)
    try:
        app.recover()  # nothing registered here: recover takes nothing
        assert app.get_workflow("dlq:failed_jobs:1").status == "pending"
    finally:
        app.close()

    by_app = _dlq(runner, db_url, "retry", "dlq:failed_jobs:2", "--app", handlers)
    assert "failed again" in by_app.output

    refused = _dlq(runner, db_url, "purge", "--all", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    purged = _dlq(runner, db_url, "purge", "--all", "--yes")
    assert purged.exit_code == 0, purged.output
    assert "purged 1 dead letter(s)" in purged.output
    not_failed = _dlq(runner, db_url, "purge", "dlq:failed_jobs:1", "--yes")
    assert not_failed.exit_code == 1
    assert "dlq:failed_jobs:1: not purged (its status is pending)" in not_failed.output
    assert "no dead letters" in _dlq(runner, db_url, "list").output


def test_retry_with_the_app_succeeds(
    runner: CliRunner, db_url: str, legacy_db: str, handlers: str
) -> None:
    _dlq(runner, db_url, "import-table", *_table_args(legacy_db))
    ran = _dlq(runner, db_url, "retry", "dlq:failed_jobs:1", "--app", handlers)
    assert ran.exit_code == 0, ran.output
    assert "dlq:failed_jobs:1: succeeded" in ran.output
    shown = _dlq(runner, db_url, "show", "dlq:failed_jobs:1")
    assert "status:   succeeded" in shown.output and "sent to a@example.com" in shown.output


def test_retry_of_a_queued_dead_letter_goes_back_to_its_queue(
    runner: CliRunner, db_url: str, handlers: str
) -> None:
    """Even with --app: a worker serving the queue runs it, under the queue's limits."""
    from toolkit.worker import Worker

    app = Durable(db_url)  # the same workflow as the handlers module's app

    @app.workflow(name="send_mail")
    def send_mail(payload: dict[str, Any]) -> str:
        raise ValueError("still broken")

    mail = app.queue("mail", rate_limit=(10, 1.0))
    handle = mail.enqueue(send_mail, {"to": "c@example.com"})
    worker = Worker(app).start()
    try:
        with pytest.raises(Exception, match="still broken"):
            handle.result(timeout=20)
        worker.stop(grace=5)
        ran = _dlq(runner, db_url, "retry", handle.workflow_id, "--app", handlers, "--wait", "30")
        assert ran.exit_code == 0, ran.output
        assert ran.output == (
            f"{handle.workflow_id}: enqueued (a worker serving queue mail will run it)\n"
        )
        assert handle.status() == "enqueued"
        worker = Worker(app).start()
        with pytest.raises(Exception, match="still broken"):  # ran again, through the queue
            handle.result(timeout=20)
    finally:
        worker.stop(grace=5)
        app.close()


def test_export_table(runner: CliRunner, db_url: str, legacy_db: str, handlers: str) -> None:
    app = Durable(db_url)
    try:
        app.upgrade()
    finally:
        app.close()
    _dlq(runner, db_url, "import-table", *_table_args(legacy_db))
    failed = _dlq(runner, db_url, "retry", "dlq:failed_jobs:2", "--app", handlers)
    assert "failed again" in failed.output
    args = _table_args(legacy_db)
    refused = _dlq(runner, db_url, "export-table", *args)
    assert refused.exit_code == 1
    assert "needs values for the column(s) queue" in refused.output
    assert "Traceback" not in refused.output

    # dlq:failed_jobs:2 came from the table: it is not exported back
    nothing = _dlq(runner, db_url, "export-table", *args, "--set", "queue=durable")
    assert "wrote 0 failed workflow(s) into table failed_jobs (0 already there)" in nothing.output

    app = Durable(db_url)
    try:
        app.storage.insert_failed_workflows(
            [
                {
                    "workflow_id": "native-1",
                    "name": "send_mail",
                    "inputs": json.dumps({"args": [{"to": "n@example.com"}], "kwargs": {}}),
                    "error": json.dumps({"type": "ValueError", "message": "gave up"}),
                    "failed_at": 1_700_000_000_000,
                }
            ]
        )
    finally:
        app.close()
    wrote = _dlq(runner, db_url, "export-table", *args, "--set", "queue=durable")
    assert wrote.exit_code == 0, wrote.output
    assert "wrote 1 failed workflow(s)" in wrote.output
    again = _dlq(runner, db_url, "export-table", *args, "--set", "queue=durable")
    assert "wrote 0 failed workflow(s) into table failed_jobs (1 already there)" in again.output
    conn = sqlite3.connect(legacy_db.removeprefix("sqlite:///"))
    rows = conn.execute("SELECT uuid, queue, payload, exception FROM failed_jobs").fetchall()
    conn.close()
    assert rows[-1] == ("native-1", "durable", '{"to": "n@example.com"}', "ValueError: gave up")
    bad = _dlq(runner, db_url, "export-table", *args, "--set", "queue")
    assert bad.exit_code == 2 and "expected COLUMN=VALUE" in bad.output


def test_errors_are_one_line_without_passwords(
    runner: CliRunner, db_url: str, legacy_db: str
) -> None:
    args = _table_args(legacy_db)
    missing = _dlq(runner, db_url, "import-table", *args, "--table", "nope")
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        f"Error: the dead-letter table nope does not exist in {legacy_db}"
    ]
    column = _dlq(runner, db_url, "import-table", *args, "--error", "err")
    assert column.exit_code == 1
    assert "has no column for error 'err'" in column.output
    down = _dlq(
        runner,
        db_url,
        "import-table",
        *args,
        "--legacy-url",
        "postgresql://app:pw123@127.0.0.1:1/shop",
    )
    assert down.exit_code == 1
    assert "cannot use the legacy database" in down.output
    assert "pw123" not in down.output and "Traceback" not in down.output
    unknown = _dlq(runner, db_url, "show", "missing")  # read-only: no tables, nothing created
    assert unknown.exit_code == 1 and "no durable-toolkit tables in " in unknown.output
    assert runner.invoke(main, ["db", "upgrade", "--database-url", db_url]).exit_code == 0
    unknown = _dlq(runner, db_url, "show", "missing")
    assert unknown.exit_code == 1 and "no workflow with id 'missing'" in unknown.output
    usage = _dlq(runner, db_url, "retry")
    assert usage.exit_code == 2 and "give at least one workflow id, or --all" in usage.output
    broker = _dlq(
        runner,
        db_url,
        "import-rabbitmq",
        "--amqp-url",
        "amqp://app:s3cret@127.0.0.1:1/%2F",
        "--queue",
        "q",
    )
    assert broker.exit_code == 1
    assert "cannot connect to RabbitMQ at amqp://app:***@127.0.0.1:1/%2F" in broker.output
    assert "s3cret" not in broker.output


@pytest.fixture
def dead_lettered_queue() -> Iterator[tuple[Any, str, str, str]]:
    """(channel, exchange, working queue, dead-letter queue) with one rejected message."""
    try:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    except pika.exceptions.AMQPError as exc:
        pytest.skip(f"no RabbitMQ at 127.0.0.1:5672: {type(exc).__name__} {exc}")
    tag = uuid.uuid4().hex[:10]
    exchange, dlx = f"test.cli.{tag}", f"test.cli.dlx.{tag}"
    work, dlq = f"test.cli.work.{tag}", f"test.cli.dlq.{tag}"
    ch = connection.channel()
    ch.exchange_declare(exchange, "direct")
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(work, arguments={"x-dead-letter-exchange": dlx})
    ch.queue_bind(work, exchange, "mail")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    ch.confirm_delivery()
    ch.basic_publish(exchange, "mail", b'{"to": "r@example.com"}')
    method = None
    while method is None:
        method, _props, _body = ch.basic_get(work)
    ch.basic_reject(method.delivery_tag, requeue=False)
    while ch.queue_declare(dlq, passive=True).method.message_count != 1:
        pass
    try:
        yield ch, exchange, work, dlq
    finally:
        for queue in (work, dlq):
            ch.queue_delete(queue)
        for name in (exchange, dlx):
            ch.exchange_delete(name)
        connection.close()


def test_rabbitmq_import_and_republish(
    runner: CliRunner, db_url: str, dead_lettered_queue: tuple[Any, str, str, str]
) -> None:
    ch, exchange, work, dlq = dead_lettered_queue
    imported = _dlq(runner, db_url, "import-rabbitmq", "--amqp-url", AMQP_URL, "--queue", dlq)
    assert imported.exit_code == 0, imported.output
    assert f"imported 1 dead letter(s) from RabbitMQ queue {dlq}" in imported.output
    assert "1 acknowledged" in imported.output
    assert ch.queue_declare(dlq, passive=True).method.message_count == 0

    listed = _dlq(runner, db_url, "list")
    (line,) = [ln for ln in listed.output.splitlines() if "rabbitmq:" in ln]
    wid = line.split()[0]
    shown = _dlq(runner, db_url, "show", wid)
    assert f"x-death: rejected x1 from queue '{work}'" in shown.output
    assert f"origin:   exchange '{exchange}', routing key 'mail'" in shown.output

    republished = _dlq(runner, db_url, "retry", wid, "--amqp-url", AMQP_URL)
    assert republished.exit_code == 0, republished.output
    assert f"{wid}: succeeded" in republished.output
    method = None
    while method is None:
        method, _props, body = ch.basic_get(work, auto_ack=True)
    assert (method.exchange, method.routing_key, body) == (
        exchange,
        "mail",
        b'{"to": "r@example.com"}',
    )
