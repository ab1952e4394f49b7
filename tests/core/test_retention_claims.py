"""A queue claim with many finished workflows in the tables (issue 15, retention).

The claim's global concurrency count reads the running workflows of its queue
through the partial index of migration 6 (``workflows_queue_running``), never
the queue's history; the claim still counts exactly what it did: the queue's
``pending`` workflows (not the finished ones, not other queues', not direct
runs), and starts within the rate-limit period.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from toolkit import Durable

FINISHED = 3000


def _fill(app: Durable, queue: str, n: int, now: int) -> None:
    """``n`` finished workflows of ``queue``, started long ago, and as many outside it."""
    w = app.storage.workflows
    statuses = ("succeeded", "failed", "cancelled")
    rows = [
        {
            "workflow_id": f"old-{i}",
            "name": "c.old",
            "status": statuses[i % 3],
            "queue_name": queue if i % 2 == 0 else None,
            "priority": 0,
            "recoveries": 0,
            "created_at": now - 3_600_000 - i,
            "updated_at": now - 3_600_000,
            "started_at": now - 3_600_000 - i,
        }
        for i in range(2 * n)
    ]
    with app.storage.transaction() as conn:
        conn.execute(sa.insert(w), rows)
    if app.storage.backend == "PostgreSQL":
        with app.storage.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE durable.workflows")
    else:
        with app.storage.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def _claim(app: Durable, queue: str, **limits: Any) -> list[str]:
    got = app.storage.claim_from_queue(
        owner="test-owner",
        queue_name=queue,
        names=["c.job"],
        want=10,
        lease_ms=30_000,
        concurrency=limits.get("concurrency"),
        rate_limit=limits.get("rate_limit"),
    )
    return [c.workflow_id for c in got]


def _job(app: Durable) -> Callable[..., Any]:
    @app.workflow(name="c.job")
    def job(i: int) -> int:
        return i

    return job


def test_the_concurrency_count_uses_the_running_index(make_app: Callable[..., Durable]) -> None:
    """The count statement the claim runs is planned on ``workflows_queue_running``
    (PostgreSQL: after ``ANALYZE``, with thousands of finished rows in the queue)."""
    app = make_app()
    app.upgrade()
    _fill(app, "q", FINISHED, int(time.time() * 1000))
    q = app.queue("q", concurrency=5)
    job = _job(app)
    q.enqueue(job, 1)

    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "count(" in statement.lower() and "'pending'" in statement:
            seen.append((statement, params))

    sa.event.listen(app.storage.engine, "before_cursor_execute", capture)
    try:
        assert len(_claim(app, "q", concurrency=5)) == 1
    finally:
        sa.event.remove(app.storage.engine, "before_cursor_execute", capture)
    assert len(seen) == 1, seen
    statement, params = seen[0]
    explain = "EXPLAIN QUERY PLAN " if app.storage.backend == "SQLite" else "EXPLAIN "
    with app.storage.engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(explain + statement, params))
    assert "workflows_queue_running" in plan, plan


def test_claim_counts_only_the_queue_s_running_workflows(
    make_app: Callable[..., Durable],
) -> None:
    """Finished workflows of the queue, running ones of another queue and direct runs
    never count against a queue's concurrency; its own running ones do."""
    app = make_app()
    app.upgrade()
    now = int(time.time() * 1000)
    _fill(app, "q", 50, now)
    job = _job(app)
    q, other = app.queue("q", concurrency=2), app.queue("other")
    w = app.storage.workflows
    # Running elsewhere: a workflow of another queue and a direct run (no queue).
    other.enqueue(job, 0)
    assert len(_claim(app, "other")) == 1
    with app.storage.transaction() as conn:
        conn.execute(
            sa.insert(w).values(
                workflow_id="direct-1",
                name="c.job",
                status="pending",
                queue_name=None,
                priority=0,
                recoveries=0,
                created_at=now,
                updated_at=now,
                started_at=now,
            )
        )
    handles = [q.enqueue(job, i) for i in range(4)]
    first = _claim(app, "q", concurrency=2)
    assert first == [h.workflow_id for h in handles[:2]]
    assert _claim(app, "q", concurrency=2) == []  # two of its own are running
    assert app.storage.finish_workflow(first[0], "test-owner", "succeeded", "0", None)
    assert _claim(app, "q", concurrency=2) == [handles[2].workflow_id]
    assert _claim(app, "q", concurrency=3) == [handles[3].workflow_id]


def test_rate_limit_counts_starts_in_the_period_only(make_app: Callable[..., Durable]) -> None:
    """Starts of the queue's finished workflows long ago do not use up the rate limit;
    recent starts do, finished or not."""
    app = make_app()
    app.upgrade()
    _fill(app, "q", 50, int(time.time() * 1000))
    job = _job(app)
    q = app.queue("q")
    handles = [q.enqueue(job, i) for i in range(4)]
    limit = (2, 60.0)
    first = _claim(app, "q", rate_limit=limit)
    assert first == [h.workflow_id for h in handles[:2]]
    for wid in first:  # finished, but started within the period: still counted
        assert app.storage.finish_workflow(wid, "test-owner", "succeeded", "0", None)
    assert _claim(app, "q", rate_limit=limit) == []
    assert _claim(app, "q", rate_limit=(3, 60.0)) == [handles[2].workflow_id]
