"""The durable CLI against a real database: inspecting and controlling workflows."""

from __future__ import annotations

import json
import os
import threading

import pytest
from click.testing import CliRunner

from toolkit import Durable, RetryPolicy, WorkflowFailedError
from toolkit.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_db_upgrade(runner, db_url):
    result = runner.invoke(main, ["db", "upgrade", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert "now at version" in result.output
    again = runner.invoke(main, ["db", "upgrade", "--database-url", db_url])
    assert "already at version" in again.output


def test_list_show_cancel_resume(runner, app: Durable, db_url):
    @app.step(name="flaky", retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    def flaky() -> None:
        raise ConnectionError("payment service down")

    @app.workflow(name="checkout")
    def checkout() -> None:
        flaky()

    with pytest.raises(WorkflowFailedError):
        app.run(checkout, workflow_id="order-7", timeout=10)

    listed = runner.invoke(main, ["workflows", "list", "--database-url", db_url])
    assert listed.exit_code == 0, listed.output
    assert "order-7" in listed.output and "failed" in listed.output

    only_ok = runner.invoke(
        main, ["workflows", "list", "--status", "succeeded", "--database-url", db_url]
    )
    assert "order-7" not in only_ok.output

    shown = runner.invoke(
        main, ["workflows", "show", "order-7", "--database-url", db_url], terminal_width=200
    )
    assert shown.exit_code == 0, shown.output
    assert "ConnectionError: payment service down" in shown.output
    assert "Traceback" in shown.output
    assert "flaky" in shown.output and "failed" in shown.output

    resumed = runner.invoke(main, ["workflows", "resume", "order-7", "--database-url", db_url])
    assert resumed.exit_code == 0, resumed.output
    assert "pending" in resumed.output
    cancelled = runner.invoke(main, ["workflows", "cancel", "order-7", "--database-url", db_url])
    assert "order-7: cancelled" in cancelled.output

    fork = ["workflows", "fork", "order-7", "--database-url", db_url]
    forked = runner.invoke(main, [*fork, "--from-step", "1", "--new-id", "order-7b"])
    assert forked.exit_code == 0, forked.output
    assert forked.output == "order-7b: pending\n"  # for a process that has the code
    assert app.get_workflow("order-7").status == "cancelled"
    missing = ["workflows", "fork", "order-8", "--from-step", "1", "--database-url", db_url]
    refused = runner.invoke(main, missing)
    assert refused.exit_code == 1
    assert "no workflow with id 'order-8'" in refused.output and "Traceback" not in refused.output
    assert runner.invoke(main, [*fork, "--from-step", "0"]).exit_code == 2


def test_cancel_of_a_finished_workflow_says_so(runner, app: Durable, db_url):
    @app.workflow(name="noop")
    def noop() -> int:
        return 1

    app.run(noop, workflow_id="done-1", timeout=10)
    result = runner.invoke(main, ["workflows", "cancel", "done-1", "--database-url", db_url])
    assert result.output == "done-1: succeeded (already ended: nothing to cancel)\n"


def test_fork_past_the_last_step_is_refused(runner, app: Durable, db_url):
    @app.step(name="one")
    def one() -> int:
        return 1

    @app.step(name="two")
    def two() -> int:
        return 2

    @app.workflow(name="pair")
    def pair() -> int:
        return one() + two()

    app.run(pair, workflow_id="pair-1", timeout=10)
    fork = ["workflows", "fork", "pair-1", "--database-url", db_url, "--new-id", "pair-2"]
    refused = runner.invoke(main, [*fork, "--from-step", "9"])
    assert refused.exit_code == 1
    assert refused.output == (
        "Error: cannot fork 'pair-1' from step 9: its last recorded step is 2 "
        "(see `durable workflows show pair-1`)\n"
    )
    assert [r.workflow_id for r in app.list_workflows()] == ["pair-1"]  # nothing created
    accepted = runner.invoke(main, [*fork, "--from-step", "2"])
    assert accepted.exit_code == 0, accepted.output


def test_unknown_workflow_is_a_clear_error(runner, db_url):
    assert runner.invoke(main, ["db", "upgrade", "--database-url", db_url]).exit_code == 0
    result = runner.invoke(main, ["workflows", "show", "missing", "--database-url", db_url])
    assert result.exit_code == 1
    assert result.output == "Error: no workflow with id 'missing'\n"


def test_bad_database_url_is_a_clear_error(runner):
    result = runner.invoke(
        main, ["workflows", "list", "--database-url", "postgresql://u:pw123@127.0.0.1:1/x"]
    )
    assert result.exit_code == 1
    assert "cannot use the PostgreSQL database" in result.output
    assert "pw123" not in result.output
    assert "Traceback" not in result.output


# -- display statuses ---------------------------------------------------------------------------


def _json(runner: CliRunner, *args: str) -> dict:
    result = runner.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1
    return doc


def test_statuses_tell_running_sleeping_retrying_and_waiting_apart(runner, make_app, db_url):
    app = make_app(lease_timeout=30.0)
    release = threading.Event()

    @app.step(name="block")
    def block() -> None:
        release.wait(30)

    @app.step(name="down", retry=RetryPolicy(max_attempts=3, initial_delay=60))
    def down() -> None:
        raise ConnectionError("down")

    @app.workflow(name="busy")
    def busy() -> None:
        block()

    @app.workflow(name="nap")
    def nap() -> None:
        app.sleep(120)

    @app.workflow(name="flaky")
    def flaky() -> None:
        down()

    # a workflow another app started and released (a clean shutdown): nobody holds it
    other = make_app(lease_timeout=30.0)

    @other.workflow(name="orphan")
    def orphan() -> None:
        other.sleep(120)

    other.start(orphan, workflow_id="w-waiting")
    other.close()  # SQLite: one executing process at a time
    app.start(busy, workflow_id="w-running")
    app.start(nap, workflow_id="w-sleeping")
    app.start(flaky, workflow_id="w-retrying")
    try:
        for _ in range(200):
            statuses = {
                w["workflow_id"]: w["status"]
                for w in _json(runner, "workflows", "list", "--database-url", db_url)["workflows"]
            }
            if (
                statuses.get("w-retrying") == "retrying"
                and statuses.get("w-sleeping") == "sleeping"
            ):
                break
            threading.Event().wait(0.05)
        doc = _json(runner, "workflows", "list", "--database-url", db_url)
        by_id = {w["workflow_id"]: w for w in doc["workflows"]}
        assert {k: v["status"] for k, v in by_id.items()} == {
            "w-running": "running",
            "w-sleeping": "sleeping",
            "w-retrying": "retrying",
            "w-waiting": "waiting",
        }
        assert {w["stored_status"] for w in doc["workflows"]} == {"pending"}
        assert by_id["w-sleeping"]["current_step"]["name"] == "toolkit.sleep"
        assert by_id["w-retrying"]["current_step"]["status"] == "retrying"
        for status, expected in [
            ("running", ["w-running"]),
            ("sleeping", ["w-sleeping"]),
            ("retrying", ["w-retrying"]),
            ("waiting", ["w-waiting"]),
        ]:
            listed = _json(
                runner, "workflows", "list", "--status", status, "--database-url", db_url
            )
            assert [w["workflow_id"] for w in listed["workflows"]] == expected, status
        pending = _json(
            runner, "workflows", "list", "--status", "pending", "--database-url", db_url
        )
        assert len(pending["workflows"]) == 4
        shown = runner.invoke(
            main, ["workflows", "show", "w-waiting", "--database-url", db_url], terminal_width=200
        )
        assert "status:   waiting   (pending, no owner: a worker that registers 'orphan'" in (
            shown.output
        )
        show = _json(runner, "workflows", "show", "w-sleeping", "--database-url", db_url)
        assert show["kind"] == "workflow" and show["workflow"]["status"] == "sleeping"
        assert [s["name"] for s in show["steps"]] == ["toolkit.sleep"]
        assert show["workflow"]["inputs"] == {"args": [], "kwargs": {}}

        held = _json(runner, "workers", "list", "--database-url", db_url)["workers"]
        assert len(held) == 1
        (me,) = held
        assert me["pid"] == os.getpid() and me["held"] == 3 and me["alive"] is True
        assert me["owner"].startswith(f"{me['host']}:{os.getpid()}:")
    finally:
        release.set()
        app.cancel("w-sleeping")
        app.cancel("w-retrying")


def test_ids_are_never_cut_at_100_columns(runner, app: Durable, db_url):
    @app.workflow(name="reports.monthly_invoice_reconciliation_for_enterprise_accounts")
    def long_named() -> int:
        return 1

    fresh = app.start(long_named).workflow_id  # a UUIDv7, the default id: on one line
    app.handle(fresh).result(timeout=10)
    long_id = "invoice-reconciliation-2026-11-enterprise-account-000000000042-attempt-3"
    app.run(long_named, workflow_id=long_id, timeout=10)
    result = runner.invoke(
        main, ["workflows", "list", "--database-url", db_url], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert any(f" {fresh}   " in line for line in lines), result.output
    assert "…" not in result.output
    # wider than what is left: folded over lines, every character kept
    first_column = [line[1:].split("   ")[0].strip() for line in lines[3:]]
    assert long_id in "".join(first_column), result.output
    wide = runner.invoke(
        main, ["workflows", "list", "--database-url", db_url], env={"COLUMNS": "200"}
    )
    assert any(long_id in line for line in wide.output.splitlines()), wide.output


# -- read-only ---------------------------------------------------------------------------------

READ_COMMANDS = [
    ["workflows", "list"],
    ["workflows", "show", "x"],
    ["queues", "list"],
    ["workers", "list"],
    ["dlq", "list"],
    ["dlq", "show", "x"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=[" ".join(c) for c in READ_COMMANDS])
def test_read_commands_create_nothing_on_a_missing_sqlite_path(runner, tmp_path, command):
    url = f"sqlite:///{tmp_path}/not/there/state.db"
    result = runner.invoke(main, [*command, "--database-url", url])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: no durable-toolkit tables in {url} (no such file); run `durable db upgrade`\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READ_COMMANDS, ids=[" ".join(c) for c in READ_COMMANDS])
def test_read_commands_create_nothing_in_a_database_without_tables(runner, db_url, command):
    import sqlalchemy as sa

    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE legacy_jobs (id INTEGER PRIMARY KEY)"))

    def tables() -> list[tuple[str | None, str]]:
        inspector = sa.inspect(engine)
        schemas = inspector.get_schema_names() if engine.dialect.name != "sqlite" else [None]
        return sorted((s, t) for s in schemas for t in inspector.get_table_names(schema=s))

    before = tables()
    result = runner.invoke(main, [*command, "--database-url", db_url])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no durable-toolkit tables in ")
    assert result.output.endswith("; run `durable db upgrade`\n")
    assert result.output.count("\n") == 1
    assert tables() == before
    if engine.dialect.name == "postgresql":
        assert "durable" not in sa.inspect(engine).get_schema_names()
    engine.dispose()


def test_verbose_names_the_database_with_its_password_hidden(runner, db_url, tmp_path):
    assert runner.invoke(main, ["db", "upgrade", "--database-url", db_url]).exit_code == 0
    url = db_url
    if db_url.startswith("postgresql://postgres@"):
        url = db_url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    for args in (
        ["-v", "workflows", "list"],
        ["workflows", "list", "-v"],
        ["queues", "list", "-v"],
    ):
        result = runner.invoke(main, [*args, "--database-url", url])
        assert result.exit_code == 0, result.output
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("database: ")]
        assert "s3cret" not in result.output
        assert line.startswith("database: sqlite:///" if "sqlite" in url else "database: postgres")
    quiet = runner.invoke(main, ["workflows", "list", "--database-url", url])
    assert "database:" not in quiet.output
