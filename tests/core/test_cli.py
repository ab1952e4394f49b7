"""The durable CLI against a real database."""

from __future__ import annotations

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


def test_unknown_workflow_is_a_clear_error(runner, db_url):
    result = runner.invoke(main, ["workflows", "show", "missing", "--database-url", db_url])
    assert result.exit_code == 1
    assert "no workflow with id 'missing'" in result.output


def test_bad_database_url_is_a_clear_error(runner):
    result = runner.invoke(
        main, ["workflows", "list", "--database-url", "postgresql://u:pw123@127.0.0.1:1/x"]
    )
    assert result.exit_code == 1
    assert "cannot use the PostgreSQL database" in result.output
    assert "pw123" not in result.output
    assert "Traceback" not in result.output
