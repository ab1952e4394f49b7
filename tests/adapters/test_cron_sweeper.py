"""The cron-sweeper adapter: a legacy sweep as a shadow report, a sweep, a scheduled workflow."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.cron_sweeper import CronSweeper
from adapters.status_column import MappingError, StatusColumnAdapter
from toolkit import Durable
from toolkit.worker import Worker

from .test_status_column import (
    COLUMNS,
    FAST,
    STATUS,
    ago,
    dashboard,
    jobs_maker,
    row,
    rows_by_id,
    snapshot,
)


@pytest.fixture
def make_jobs() -> Iterator[Callable[..., sa.Table]]:
    with jobs_maker() as make:
        yield make


def test_shadow_then_sweep_like_the_legacy_cron(legacy_url, make_jobs, tmp_path):
    make_jobs(
        legacy_url,
        [
            row(1, "working", locked_by="worker-1", locked_at=ago(hours=2)),
            row(2, "working", locked_by="worker-2", locked_at=ago(minutes=5)),
            row(3, "dead", attempts=1, last_error="Timeout"),
            row(4, "dead", attempts=5, last_error="HTTP 500"),
            row(5),
            row(6, "finished", attempts=1),
        ],
    )
    app = Durable(f"sqlite:///{tmp_path}/state.db")
    sweeper = CronSweeper(
        app,
        legacy_url,
        table="jobs",
        key="id",
        status=STATUS,
        columns=COLUMNS,
        cron="*/5 * * * *",
        stuck_after=timedelta(minutes=30),
        retry_failed=True,
        max_attempts=5,
    )
    before = snapshot(legacy_url)

    shadow = sweeper.shadow()

    assert snapshot(legacy_url) == before
    assert app._storage is None  # a sweep without an adapter never opens the workflow database
    assert [r.key for r in shadow.requeued] == [1] and shadow.retried == [3]
    assert shadow.held == [] and not shadow.applied
    assert shadow.requeued[0].age is not None and shadow.requeued[0].age > 7100
    text = str(shadow)
    assert "nothing was changed" in text
    assert "would requeue 1 row(s) stuck in running for more than 30m 0s:" in text
    assert "1: 2h 0m (locked by worker-1)" in text or "1: 1h 59m (locked by worker-1)" in text
    assert "would retry 1 failed row(s): 3" in text

    swept = sweeper.sweep()

    assert [r.key for r in swept.requeued] == [1] and swept.retried == [3] and swept.applied
    rows = rows_by_id(legacy_url)
    assert rows[1]["status"] == "queued" and rows[1]["locked_by"] is None
    assert rows[1]["updated_at"] is not None
    assert rows[3]["status"] == "queued" and rows[3]["attempts"] == 1
    assert dashboard(legacy_url) == {"queued": 3, "working": 1, "dead": 1, "finished": 1}
    again = sweeper.sweep()
    assert again.requeued == [] and again.retried == []
    sweeper.legacy.dispose()


def test_bad_sweeper_input_is_refused(tmp_path, make_jobs):
    legacy = f"sqlite:///{tmp_path}/legacy.db"
    engine = sa.create_engine(legacy)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE jobs (id INTEGER PRIMARY KEY, status TEXT)"))
    engine.dispose()
    app = Durable(f"sqlite:///{tmp_path}/state.db")
    common: dict[str, Any] = {"table": "jobs", "key": "id", "status": STATUS}
    with pytest.raises(ValueError, match="invalid cron expression"):
        CronSweeper(app, legacy, cron="every minute", stuck_after=60, **common)
    with pytest.raises(ValueError, match=r"stuck_after= .* and/or retry_failed"):
        CronSweeper(app, legacy, cron="* * * * *", **common)
    sweeper = CronSweeper(app, legacy, cron="* * * * *", stuck_after=60, **common)
    with pytest.raises(MappingError, match="needs a locked_at or updated_at column"):
        sweeper.shadow()


def test_sweeper_of_a_taken_over_table_leaves_leased_rows_alone(db_url, make_jobs, tmp_path):
    """Durable workflows hold their rows: the scheduled sweep requeues only legacy orphans."""
    legacy = f"sqlite:///{tmp_path}/legacy.db"
    make_jobs(
        legacy,
        [row(1), row(2), row(9, "working", locked_by="legacy-worker-1", locked_at=ago(hours=2))],
    )
    app = Durable(db_url, lease_timeout=2.0)
    calls: Counter[int] = Counter()
    entered, release = threading.Event(), threading.Event()

    def handle(job: dict[str, Any]) -> None:
        calls[job["id"]] += 1
        if job["id"] == 1:
            entered.set()
            release.wait(30)

    adapter = StatusColumnAdapter(
        app,
        legacy,
        table="jobs",
        key="id",
        status=STATUS,
        columns=COLUMNS,
        handler=handle,
        retry=FAST,
        queue=app.queue("jobs", worker_concurrency=1),
    )
    # stuck_after=0: by the clock, every running row looks stuck.
    sweeper = CronSweeper.for_adapter(adapter, cron="* * * * * *", stuck_after=0)
    scheduler: Worker | None = None
    try:
        with adapter.takeover(poll_interval=0.1) as takeover:
            assert entered.wait(30)
            shadow = sweeper.shadow()
            assert [r.key for r in shadow.requeued] == [9]
            assert [(h.row.key, h.workflow_id) for h in shadow.held] == [(1, "jobs:1")]
            assert shadow.held[0].owner is not None
            assert "the time-based guess is no longer needed for 1 row(s)" in str(shadow)
            assert "1: running" in str(shadow) and "workflow jobs:1 on " in str(shadow)

            name = sweeper.takeover()
            scheduler = Worker(app, [], schedules=True).start()
            deadline = time.monotonic() + 30
            while not [r for r in app.list_workflows(name=name) if r.status == "succeeded"]:
                assert time.monotonic() < deadline, "no sweep tick ran"
                time.sleep(0.05)
            first = next(r for r in app.list_workflows(name=name) if r.status == "succeeded")
            output = app.handle(first.workflow_id).result(timeout=5)
            assert [r["key"] for r in output["requeued"]] == [9]
            assert [h["workflow_id"] for h in output["held"]] == ["jobs:1"]

            release.set()
            assert takeover.wait_idle(timeout=60)
        assert dashboard(legacy) == {"finished": 3}
        assert calls == {1: 1, 2: 1, 9: 1}  # row 1 was never requeued under its workflow
        ids = [r.workflow_id for r in app.list_workflows(name="legacy.jobs")]
        assert sorted(ids) == ["jobs:1", "jobs:2", "jobs:9"]
        ticks = [r.workflow_id for r in app.list_workflows(name=name)]
        assert len(ticks) == len(set(ticks)) and all(t.startswith(f"{name}@") for t in ticks)
    finally:
        release.set()
        if scheduler is not None:
            scheduler.stop(grace=5)
        app.close()
        adapter.legacy.dispose()
