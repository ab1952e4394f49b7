"""Retrying a status-column dead letter runs its handler again (SQLite, PostgreSQL, MariaDB).

It used to replay the recorded failed attempt and fail again at once with the
original error, the handler never called and the row left failed.
"""

from __future__ import annotations

import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from adapters.dead_letter import DeadLetterError, list_dead_letters, retry_dead_letter
from adapters.status_column import StatusColumnAdapter
from toolkit import Durable, RetryPolicy, WorkflowFailedError
from toolkit.cli import main

from .test_status_column import COLUMNS, STATUS, jobs_maker, row, rows_by_id


@pytest.fixture
def make_jobs() -> Iterator[Callable[..., Any]]:
    with jobs_maker() as make:
        yield make


FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, backoff=1.0)


def test_a_retried_dead_letter_gets_fresh_attempts(legacy_url, make_jobs, tmp_path):
    make_jobs(legacy_url, [row(1), row(2)])
    app = Durable(f"sqlite:///{tmp_path}/state.db", lease_timeout=2.0)
    calls: Counter[int] = Counter()
    broken = {1: 5, 2: 99}  # row 1 fails its first 5 calls, row 2 always

    def handler(job: dict[str, Any]) -> str:
        calls[job["id"]] += 1
        if calls[job["id"]] <= broken[job["id"]]:
            raise ConnectionError(f"down, call {calls[job['id']]}")
        return f"sent {job['id']}"

    adapter = StatusColumnAdapter(
        app,
        legacy_url,
        table="jobs",
        key="id",
        status=STATUS,
        columns=COLUMNS,
        handler=handler,
        retry=FAST,
    )
    try:
        with adapter.takeover(poll_interval=0.1) as takeover:
            assert takeover.wait_idle(timeout=60)
            rows = rows_by_id(legacy_url)
            assert [rows[i]["status"] for i in (1, 2)] == ["dead", "dead"]
            assert [rows[i]["attempts"] for i in (1, 2)] == [3, 3]
            assert sorted(d.workflow_id for d in list_dead_letters(app)) == ["jobs:1", "jobs:2"]

            # Row 1: the retry runs the handler again, 2 more failures then success.
            handle = retry_dead_letter(app, "jobs:1")
            assert handle.result(timeout=60) == "sent 1"
            assert calls[1] == 6
            one = rows_by_id(legacy_url)[1]
            assert one["status"] == "finished" and one["attempts"] == 6
            assert one["locked_by"] is None and one["next_retry_at"] is None
            assert one["last_error"] == "ConnectionError: down, call 5"  # DONE keeps it

            # Row 2: a fresh budget of 3 attempts, spent again: dead, attempts counted on.
            with pytest.raises(WorkflowFailedError, match="failed after 6 attempt"):
                retry_dead_letter(app, "jobs:2").result(timeout=60)
            assert calls[2] == 6
            two = rows_by_id(legacy_url)[2]
            assert two["status"] == "dead" and two["attempts"] == 6
            assert two["last_error"] == "ConnectionError: down, call 6"
            assert takeover.wait_idle(timeout=30)
        assert [w.workflow_id for w in list_dead_letters(app)] == ["jobs:2"]
        assert sorted(r.workflow_id for r in app.list_workflows(name="legacy.jobs")) == [
            "jobs:1",
            "jobs:2",
        ]  # no new run: the same workflow went on

        # An admin re-queues the dead row by hand: its dead letter is not retried as well
        # (the adapter runs the re-queued row as a new run), and nothing changes.
        engine = sa.create_engine(legacy_url.replace("postgresql://", "postgresql+psycopg://"))
        jobs = sa.Table("jobs", sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(sa.update(jobs).where(jobs.c.id == 2).values(status="queued"))
        engine.dispose()
        with pytest.raises(DeadLetterError, match=r"row 2 of jobs is pending, no longer failed"):
            retry_dead_letter(app, "jobs:2")
        assert app.get_workflow("jobs:2").status == "failed"
        assert rows_by_id(legacy_url)[2]["status"] == "queued"
    finally:
        app.close()
        adapter.legacy.dispose()


APP_MODULE = """
import os

from adapters.status_column import LegacyColumns, StatusColumnAdapter, StatusValues
from toolkit import Durable, RetryPolicy

app = Durable({state!r}, lease_timeout=2.0)


def handler(job):
    if os.environ.get("MAIL_DOWN"):
        raise RuntimeError("mail server down")
    return "sent"


jobs = StatusColumnAdapter(
    app, {legacy!r}, table="jobs", key="id",
    status=StatusValues(pending="queued", running="working", done="finished", failed="dead"),
    columns=LegacyColumns(attempts="attempts", last_error="last_error", locked_by="locked_by"),
    handler=handler, retry=RetryPolicy(max_attempts=1),
)
"""


def test_durable_dlq_retry_of_a_row(tmp_path: Path, make_jobs, monkeypatch):
    legacy = f"sqlite:///{tmp_path}/legacy.db"
    state = f"sqlite:///{tmp_path}/state.db"
    make_jobs(legacy, [row(1)])
    (tmp_path / "shopapp.py").write_text(
        textwrap.dedent(APP_MODULE.format(state=state, legacy=legacy))
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MAIL_DOWN", "1")
    import shopapp  # type: ignore[import-not-found]

    try:
        with shopapp.jobs.takeover(poll_interval=0.1) as takeover:
            assert takeover.wait_idle(timeout=60)
        assert rows_by_id(legacy)[1]["status"] == "dead"
        runner = CliRunner()
        # Without the adapter's code the row cannot be put back: one line, nothing changes.
        bare = runner.invoke(main, ["dlq", "retry", "jobs:1", "--database-url", state])
        assert bare.exit_code != 0
        assert "runs a row of a legacy table" in bare.output
        assert "--app MODULE:ATTR" in bare.output and "Traceback" not in bare.output
        assert rows_by_id(legacy)[1]["status"] == "dead"
        bare_app = Durable(state)
        with pytest.raises(DeadLetterError, match="runs a row of a legacy table"):
            retry_dead_letter(bare_app, "jobs:1")
        bare_app.close()

        monkeypatch.delenv("MAIL_DOWN")
        monkeypatch.delitem(sys.modules, "shopapp")  # the CLI imports the module afresh
        result = runner.invoke(
            main, ["dlq", "retry", "jobs:1", "--app", "shopapp:app", "--database-url", state]
        )
        assert result.exit_code == 0, result.output
        with shopapp.jobs.takeover(poll_interval=0.1) as takeover:
            assert takeover.wait_idle(timeout=60)
        one = rows_by_id(legacy)[1]
        assert one["status"] == "finished" and one["attempts"] == 2
        assert shopapp.app.get_workflow("jobs:1").status == "succeeded"
    finally:
        shopapp.app.close()
        shopapp.jobs.legacy.dispose()
