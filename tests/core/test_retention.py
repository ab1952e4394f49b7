"""Retention: finished workflows past their retention are deleted with everything of theirs.

On both backends, against the real database: what is deleted (steps, events,
messages, dead letters) and what never is (unfinished workflows, children of a
running parent), per-status retention, a pruned id started again, a worker's
background pruning, the PostgreSQL try-lock, and the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from toolkit import Durable, Worker, WorkflowFailedError, WorkflowNotFoundError
from toolkit.retention import normalize_retention, parse_duration
from toolkit.storage.retention import PRUNE_LOCK_KEY

DAY = 86400


def age(app: Durable, workflow_ids: list[str], seconds: float) -> None:
    """Move workflows' creation and end back in time (as if they had finished long ago)."""
    w = app.storage.workflows
    shift = int(seconds * 1000)
    with app.storage.transaction() as conn:
        conn.execute(
            sa.update(w)
            .where(w.c.workflow_id.in_(workflow_ids))
            .values(created_at=w.c.created_at - shift, updated_at=w.c.updated_at - shift)
        )


def rows(app: Durable) -> dict[str, int]:
    s = app.storage
    with s.engine.connect() as conn:
        return {
            t.name.removeprefix("durable_"): conn.execute(
                sa.select(sa.func.count()).select_from(t)
            ).scalar_one()
            for t in (s.workflows, s.steps, s.events, s.messages)
        }


def shop(app: Durable) -> dict[str, Any]:
    """Workflows that leave steps, events and messages behind."""
    ran: list[str] = []

    @app.step(name="charge")
    def charge(order: str) -> str:
        ran.append(order)
        return f"charged {order}"

    @app.workflow(name="order")
    def order(name: str) -> str:
        app.set_event("state", "charging")
        out = charge(name)
        if name.startswith("bad"):
            raise RuntimeError("declined")
        return out

    @app.workflow(name="waiter")
    def waiter() -> Any:
        return app.recv("go", timeout=30)

    return {"order": order, "waiter": waiter, "ran": ran}


def test_prune_deletes_finished_workflows_with_steps_events_and_messages(
    make_app: Callable[..., Durable],
) -> None:
    app = make_app()
    wf = shop(app)
    for i in range(3):
        app.run(wf["order"], f"o{i}", workflow_id=f"ok-{i}", timeout=10)
    with pytest.raises(WorkflowFailedError):
        app.run(wf["order"], "bad", workflow_id="dead-letter", timeout=10)
    app.send("ok-0", "late", "a message nobody took")  # a message to a finished workflow
    waiting = app.start(wf["waiter"], workflow_id="still-running")
    queued = app.queue("later").enqueue(wf["order"], "q", workflow_id="still-enqueued")
    cancelled = app.queue("later").enqueue(wf["order"], "c", workflow_id="cancelled-1")
    app.cancel(cancelled.workflow_id)
    recent = app.run(wf["order"], "new", workflow_id="recent", timeout=10)
    assert recent == "charged new"
    old = ["ok-0", "ok-1", "ok-2", "dead-letter", "cancelled-1", "still-running", "still-enqueued"]
    age(app, old, 8 * DAY)
    before = rows(app)

    dry = app.prune("7d", dry_run=True)
    assert dry.as_dict() == {"workflows": 5, "steps": 8, "events": 4, "messages": 1}
    assert rows(app) == before  # a dry run deletes nothing

    done = app.prune(timedelta(days=7), batch_size=2)  # several batches
    assert done == dry
    after = rows(app)
    assert {k: before[k] - after[k] for k in before} == {
        "workflows": 5,
        "steps": 8,
        "events": 4,
        "messages": 1,
    }
    remaining = {r.workflow_id for r in app.list_workflows()}
    assert remaining == {"still-running", "still-enqueued", "recent"}
    with pytest.raises(WorkflowNotFoundError):
        app.get_workflow("dead-letter")
    assert app.get_event("recent", "state", timeout=0) == "charging"
    assert app.prune("7d").workflows == 0  # nothing left to do
    app.send("still-running", "go", "now")
    assert waiting.result(timeout=10) == "now"
    assert queued.status() == "enqueued"


def test_retention_per_status_and_app_default(make_app: Callable[..., Durable]) -> None:
    app = make_app(retention={"succeeded": "1d", "failed": None})
    wf = shop(app)
    app.run(wf["order"], "a", workflow_id="ok", timeout=10)
    with pytest.raises(WorkflowFailedError):
        app.run(wf["order"], "bad", workflow_id="failed", timeout=10)
    age(app, ["ok", "failed"], 2 * DAY)
    assert app.retention == {"succeeded": DAY}
    assert app.prune().workflows == 1  # the app's retention: failed ones are kept
    assert [r.workflow_id for r in app.list_workflows()] == ["failed"]
    assert app.prune("1d", status="failed").workflows == 1  # on demand, any age
    assert app.list_workflows() == []


def test_a_pruned_workflow_id_starts_a_new_workflow(make_app: Callable[..., Durable]) -> None:
    app = make_app()
    wf = shop(app)
    assert app.run(wf["order"], "first", workflow_id="reused", timeout=10) == "charged first"
    assert app.run(wf["order"], "second", workflow_id="reused", timeout=10) == "charged first"
    age(app, ["reused"], 2 * DAY)
    assert app.prune("1d").workflows == 1
    assert app.run(wf["order"], "second", workflow_id="reused", timeout=10) == "charged second"
    assert wf["ran"] == ["first", "second"]
    assert [s.step_number for s in app.list_steps("reused")] == [1, 2]


def test_children_of_a_running_parent_are_kept(make_app: Callable[..., Durable]) -> None:
    app = make_app()
    kids = app.queue("kids")

    @app.workflow(name="child")
    def child(n: int) -> int:
        return n

    @app.workflow(name="parent")
    def parent() -> Any:
        kids.enqueue_many(child, [(1,)])
        return app.recv("go", timeout=30)

    handle = app.start(parent, workflow_id="p")
    worker = Worker(app).start()
    try:
        deadline = time.monotonic() + 10
        while app.storage.get_workflow("p:1") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.handle("p:1").result(timeout=10) == 1
        age(app, ["p:1"], 2 * DAY)
        assert app.prune("1d", dry_run=True).workflows == 0
        assert app.prune("1d").workflows == 0  # a replay of p would enqueue p:1 again
        app.send("p", "go", "done")
        assert handle.result(timeout=10) == "done"
        age(app, ["p"], 2 * DAY)
        assert app.prune("1d").workflows == 2  # once the parent ended, both go
    finally:
        worker.stop()


def test_a_worker_prunes_in_the_background(make_app: Callable[..., Durable]) -> None:
    app = make_app(retention=0.3)
    wf = shop(app)
    q = app.queue("jobs")
    worker = Worker(app, prune_interval=0.2)
    worker.start()
    try:
        handles = q.enqueue_many(wf["order"], [(f"o{i}",) for i in range(20)])
        for h in handles:
            h.result(timeout=10)
        waiting = app.start(wf["waiter"], workflow_id="waits")
        deadline = time.monotonic() + 15
        while rows(app)["workflows"] > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r.workflow_id for r in app.list_workflows()] == ["waits"]
        assert rows(app)["steps"] == 0 and rows(app)["events"] == 0
        assert worker.pruner is not None and worker.pruner.total.workflows == 20
        app.send("waits", "go", 1)
        assert waiting.result(timeout=10) == 1
    finally:
        worker.stop()


@pytest.mark.postgres
def test_postgres_prunes_one_process_at_a_time(
    make_app: Callable[..., Durable], backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("the pruning try-lock is PostgreSQL's")
    from toolkit.retention import prune

    app = make_app()
    wf = shop(app)
    app.run(wf["order"], "a", workflow_id="ok", timeout=10)
    age(app, ["ok"], 2 * DAY)
    with app.storage.engine.connect() as other:  # another process is pruning
        other.execute(sa.select(sa.func.pg_advisory_lock(PRUNE_LOCK_KEY)))
        started = time.monotonic()
        counts = prune(app.storage, {"succeeded": DAY}, exclusive=True)
        assert counts.workflows == 0 and time.monotonic() - started < 2  # gave way, no wait
        other.execute(sa.select(sa.func.pg_advisory_unlock(PRUNE_LOCK_KEY)))
        other.commit()
    assert prune(app.storage, {"succeeded": DAY}, exclusive=True).workflows == 1


def test_durations_and_bad_retention() -> None:
    assert parse_duration("7d") == 7 * DAY
    assert parse_duration("1d12h") == 1.5 * DAY
    assert parse_duration("90") == 90
    assert parse_duration(timedelta(minutes=2)) == 120
    assert parse_duration("500ms") == 0.5
    assert normalize_retention(None) == {}
    assert normalize_retention("1h") == {"succeeded": 3600, "failed": 3600, "cancelled": 3600}
    with pytest.raises(ValueError, match="invalid retention '7x'"):
        Durable("sqlite:///unused.db", retention="7x")
    with pytest.raises(ValueError, match="finished statuses only"):
        Durable("sqlite:///unused.db", retention={"pending": "1d"})
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(-1)


def test_cli_prune(make_app: Callable[..., Durable], db_url: str) -> None:
    from toolkit.cli import main

    app = make_app()
    wf = shop(app)
    for i in range(2):
        app.run(wf["order"], f"o{i}", workflow_id=f"ok-{i}", timeout=10)
    with pytest.raises(WorkflowFailedError):
        app.run(wf["order"], "bad", workflow_id="dead", timeout=10)
    age(app, ["ok-0", "ok-1", "dead"], 8 * DAY)
    runner = CliRunner()
    base = ["workflows", "prune", "--database-url", db_url, "--older-than", "7d"]
    dry = runner.invoke(main, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines()[-1] == (
        "would delete 3 workflow(s), 6 step(s), 3 event(s), 0 message(s) "
        "(succeeded, failed, cancelled; finished more than 7d ago)"
    )
    one = runner.invoke(main, [*base, "--status", "failed"])
    assert one.exit_code == 0, one.output
    assert one.output.splitlines()[-1] == (
        "deleted 1 workflow(s), 2 step(s), 1 event(s), 0 message(s) "
        "(failed; finished more than 7d ago)"
    )
    bad = runner.invoke(main, ["workflows", "prune", "--database-url", db_url, "--older-than", "x"])
    assert bad.exit_code == 2 and "invalid duration 'x'" in bad.output
    assert len(app.list_workflows()) == 2


@pytest.mark.postgres
def test_a_pruner_vacuums_when_autovacuum_is_off(
    make_app: Callable[..., Durable], backend: str
) -> None:
    """Without autovacuum, dead rows would never be reused: the pruner vacuums what it pruned."""
    if backend != "postgres":
        pytest.skip("VACUUM is PostgreSQL's")
    from toolkit.retention import Pruner
    from toolkit.storage import retention

    app = make_app()
    wf = shop(app)
    app.run(wf["order"], "a", workflow_id="ok", timeout=10)
    age(app, ["ok"], 2 * DAY)
    query = sa.text(
        "SELECT vacuum_count FROM pg_stat_user_tables "
        "WHERE schemaname = 'durable' AND relname = 'workflows'"
    )

    def vacuums() -> int:
        with app.storage.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    before = vacuums()
    pruner = Pruner(lambda: app.storage, {"succeeded": DAY})
    pruner._unvacuumed = retention.VACUUM_AFTER  # as if many had been pruned already
    assert pruner.run_pass().workflows == 1
    off = retention.autovacuum_off(app.storage)
    assert pruner.vacuums == (1 if off else 0)
    deadline = time.monotonic() + 5  # the statistics collector reports a moment later
    while off and vacuums() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert vacuums() == before + (1 if off else 0)
