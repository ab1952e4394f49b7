"""Queues, an in-process worker, messages and events on both backends (first tests of issue 3)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest

from toolkit import Durable, DurableError, WorkflowConflictError
from toolkit.queues import Schedule
from toolkit.worker import Worker


@pytest.fixture
def worker_app(make_app) -> Durable:
    return make_app(lease_timeout=2.0)


def test_enqueue_runs_on_a_worker_with_priority_and_dedup(worker_app: Durable):
    app = worker_app
    order: list[str] = []
    jobs = app.queue("jobs", worker_concurrency=1)

    @app.workflow(name="job")
    def job(name: str) -> str:
        order.append(name)
        return name

    low = jobs.enqueue(job, "low", priority=0)
    high = jobs.enqueue(job, "high", priority=5)
    first = jobs.enqueue(job, "dup", deduplication_id="d-1")
    second = jobs.enqueue(job, "dup-again", deduplication_id="d-1")
    assert first.workflow_id == second.workflow_id
    assert low.status() == "enqueued"

    worker = Worker(app).start()
    try:
        assert high.result(timeout=20) == "high"
        assert low.result(timeout=20) == "low"
        assert second.result(timeout=20) == "dup"
    finally:
        worker.stop(grace=5)
    assert order[0] == "high"
    assert "dup-again" not in order


def test_global_concurrency_and_delay(worker_app: Durable):
    app = worker_app
    limited = app.queue("limited", concurrency=2, worker_concurrency=5)
    lock = threading.Lock()
    running = {"now": 0, "max": 0}

    @app.workflow(name="busy")
    def busy() -> None:
        with lock:
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        time.sleep(0.1)
        with lock:
            running["now"] -= 1

    handles = limited.enqueue_many(busy, [() for _ in range(8)])
    enqueued_at = time.time()
    delayed = limited.enqueue(busy, delay=1.0)
    worker = Worker(app).start()
    try:
        for handle in [*handles, delayed]:
            handle.result(timeout=30)
    finally:
        worker.stop(grace=5)
    assert running["max"] == 2
    started = app.get_workflow(delayed.workflow_id)
    assert started.status == "succeeded"
    assert started.updated_at.timestamp() >= enqueued_at + 1.0


def test_send_recv_and_events(worker_app: Durable):
    app = worker_app

    @app.workflow(name="approval")
    def approval() -> str:
        app.set_event("state", "waiting")
        decision = app.recv("decision", timeout=20)
        app.set_event("state", decision)
        return str(decision)

    handle = app.start(approval, workflow_id="approve-1")
    assert app.get_event("approve-1", "state", timeout=10) == "waiting"
    app.send("approve-1", "decision", "approved")
    assert handle.result(timeout=20) == "approved"
    assert app.get_event("approve-1", "state", timeout=1) == "approved"
    assert app.get_event("approve-1", "missing", timeout=0.1) is None


def test_schedule_plan_fires_each_tick_once():
    every_minute = Schedule("s", "* * * * *")
    ms = 60_000
    base = int(datetime(2026, 1, 1).timestamp() * 1000) // ms * ms
    fire, seen = every_minute.plan(None, base + 10)
    assert fire == [] and seen == base
    fire, seen = every_minute.plan(base, base + 3 * ms + 5)
    assert fire == [base + 3 * ms] and seen == base + 3 * ms  # no catch-up: the latest only
    catch_up = Schedule("c", "* * * * *", catch_up=True)
    fire, _ = catch_up.plan(base, base + 3 * ms + 5)
    assert fire == [base + ms, base + 2 * ms, base + 3 * ms]
    with pytest.raises(ValueError, match="invalid cron"):
        Schedule("bad", "every minute")


def test_a_batch_starts_in_the_order_it_was_given(worker_app: Durable):
    app = worker_app
    serial = app.queue("serial", worker_concurrency=1)
    order: list[int] = []

    @app.workflow(name="ordered")
    def ordered(n: int) -> None:
        order.append(n)

    handles = serial.enqueue_many(ordered, [(n,) for n in range(12)])
    worker = Worker(app).start()
    try:
        for handle in handles:
            handle.result(timeout=30)
    finally:
        worker.stop(grace=5)
    assert order == list(range(12))


def test_stopping_a_worker_leaves_workflows_it_did_not_start_alone(worker_app: Durable):
    app = worker_app
    app.queue("idle")

    @app.workflow(name="direct")
    def direct() -> str:
        time.sleep(0.5)
        return "done"

    worker = Worker(app).start()
    handle = app.start(direct)
    worker.stop(grace=0.05)
    assert handle.result(timeout=20) == "done"
    record = app.get_workflow(handle.workflow_id)
    assert record.started_at is not None and record.started_at >= record.created_at


def test_enqueue_with_an_id_used_by_another_workflow_is_refused(worker_app: Durable):
    app = worker_app
    jobs = app.queue("jobs")

    @app.workflow(name="first")
    def first() -> None: ...

    @app.workflow(name="second")
    def second() -> None: ...

    assert jobs.enqueue(first, workflow_id="w-1").workflow_id == "w-1"
    assert jobs.enqueue(first, workflow_id="w-1").workflow_id == "w-1"  # the same: a no-op
    with pytest.raises(WorkflowConflictError, match="already used by workflow 'first'"):
        jobs.enqueue(second, workflow_id="w-1")


def test_a_workflow_cancelled_while_enqueued_resumes_into_its_queue(worker_app: Durable):
    app = worker_app
    jobs = app.queue("jobs")

    @app.workflow(name="later")
    def later() -> str:
        return "ran"

    handle = jobs.enqueue(later)
    app.cancel(handle.workflow_id)
    assert handle.status() == "cancelled"
    app.resume(handle.workflow_id)
    assert handle.status() == "enqueued"  # not run here, outside the queue's limits
    worker = Worker(app).start()
    try:
        assert handle.result(timeout=20) == "ran"
    finally:
        worker.stop(grace=5)


def test_a_resumed_queued_workflow_goes_back_to_its_queue_and_replays(worker_app: Durable):
    """Resume puts a started queued workflow under its queue's limits again, not beside them."""
    app = worker_app
    jobs = app.queue("jobs", concurrency=1)
    calls = {"charge": 0, "ship": 0}
    ship_works = threading.Event()
    release_blocker = threading.Event()

    @app.step(name="charge")
    def charge() -> str:
        calls["charge"] += 1
        return "charged"

    @app.step(name="ship")
    def ship() -> str:
        calls["ship"] += 1
        if not ship_works.is_set():
            raise RuntimeError("carrier down")
        return "shipped"

    @app.workflow(name="order")
    def order() -> list[str]:
        return [charge(), ship()]

    @app.workflow(name="blocker")
    def blocker() -> str:
        release_blocker.wait(30)
        return "done"

    handle = jobs.enqueue(order)
    worker = Worker(app).start()
    try:
        with pytest.raises(Exception, match="carrier down"):
            handle.result(timeout=20)
        held = jobs.enqueue(blocker)
        deadline = time.monotonic() + 20
        while held.status() != "pending":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ship_works.set()
        app.resume(handle.workflow_id)
        time.sleep(0.5)  # the blocker holds the queue's only slot
        assert handle.status() == "enqueued"
        release_blocker.set()
        assert handle.result(timeout=20) == ["charged", "shipped"]
    finally:
        release_blocker.set()
        worker.stop(grace=5)
    assert calls == {"charge": 1, "ship": 2}  # the recorded step replayed, the failed one re-ran
    assert [s.name for s in app.list_steps(handle.workflow_id)] == ["charge", "ship"]


def test_a_fork_of_a_queued_workflow_runs_through_its_queue(worker_app: Durable):
    app = worker_app
    jobs = app.queue("jobs")
    calls: list[str] = []

    @app.step(name="a")
    def a() -> str:
        calls.append("a")
        return "a"

    @app.step(name="b")
    def b() -> str:
        calls.append("b")
        return "b"

    @app.workflow(name="ab")
    def ab() -> str:
        return a() + b()

    original = jobs.enqueue(ab)
    worker = Worker(app).start()
    try:
        assert original.result(timeout=20) == "ab"
        worker.stop(grace=5)
        fork = app.fork(original.workflow_id, from_step=2)
        assert fork.status() == "enqueued"  # not run here, outside the queue's limits
        assert app.get_workflow(fork.workflow_id).queue_name == "jobs"
        worker = Worker(app).start()
        assert fork.result(timeout=20) == "ab"
    finally:
        worker.stop(grace=5)
    assert calls == ["a", "b", "b"]


def test_a_claim_replays_only_workflows_with_recorded_steps(worker_app: Durable):
    """The claim's replay flag (SQLite computes it apart: its RETURNING is unqualified)."""
    app = worker_app
    jobs = app.queue("jobs")

    @app.step(name="work")
    def work() -> int:
        return 1

    @app.workflow(name="job")
    def job() -> int:
        return work()

    def claim() -> list:
        return app.storage.claim_from_queue(
            owner="test-owner",
            queue_name="jobs",
            names=["job"],
            want=5,
            lease_ms=60_000,
            concurrency=None,
            rate_limit=None,
        )

    app.run(job, workflow_id="done-before")  # the steps table is not empty
    fresh = jobs.enqueue(job)
    [claimed] = claim()
    assert (claimed.workflow_id, claimed.replay) == (fresh.workflow_id, False)
    app.cancel(fresh.workflow_id)
    time.sleep(0.05)
    resumed_at = time.time() * 1000
    app.resume(fresh.workflow_id)
    [claimed] = claim()
    assert (claimed.workflow_id, claimed.replay) == (fresh.workflow_id, False)
    assert claimed.due_ms >= resumed_at  # its lag counts from the resume, not the enqueue
    app.cancel(fresh.workflow_id)

    ran = jobs.enqueue(job)
    worker = Worker(app).start()
    try:
        assert ran.result(timeout=20) == 1
    finally:
        worker.stop(grace=5)
    forked = app.fork(ran.workflow_id, from_step=2)  # step 1 copied: it must be replayed
    [claimed] = claim()
    assert (claimed.workflow_id, claimed.replay) == (forked.workflow_id, True)


def slow_then_after(app: Durable, name: str) -> tuple[Any, threading.Event, threading.Event, list]:
    """A workflow ``name``: step "slow" (sets ``entered``, waits for ``release``), then
    step "after"; every step body appends its name to ``calls``."""
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @app.step(name="slow")
    def slow() -> str:
        calls.append("slow")
        entered.set()
        release.wait(30)
        return "slow"

    @app.step(name="after")
    def after() -> str:
        calls.append("after")
        return "after"

    @app.workflow(name=name)
    def workflow() -> list[str]:
        return [slow(), after()]

    return workflow, entered, release, calls


def test_a_cancelled_run_releases_nothing_on_its_way_out(worker_app: Durable, make_app):
    """Its exit must not drop a newer claim of the same process (they share one owner)."""
    app = worker_app
    two_steps, entered, release, _calls = slow_then_after(app, "two_steps")
    app.start(two_steps, workflow_id="lost-1")
    try:
        assert entered.wait(10)
        old_run = app.executor.local_run("lost-1")
        assert old_run is not None
        app.cancel("lost-1")
        make_app(lease_timeout=2.0).resume("lost-1")  # resumed by another process
        executor = app.executor  # a takeover of ours lands while the old run is in its step
        assert app.storage.claim_workflow("lost-1", executor.owner, executor.lease_ms)
    finally:
        release.set()
    assert old_run.done.wait(10)  # the cancelled run has stopped
    assert app.get_workflow("lost-1").owner == executor.owner  # the newer claim stands


def test_a_workflow_never_runs_twice_at_once_in_one_process(worker_app: Durable, make_app):
    """Cancelled while its step runs, resumed elsewhere: the worker waits for the old run."""
    app = worker_app
    two_steps, entered, release, calls = slow_then_after(app, "two_steps")
    worker = Worker(app).start()
    try:
        handle = app.start(two_steps, workflow_id="stop-1")
        assert entered.wait(10)
        entered.clear()
        app.cancel("stop-1")
        with pytest.raises(DurableError, match="still stopping in this process"):
            app.resume("stop-1")
        other = make_app(lease_timeout=2.0)  # another process, as far as ownership goes
        other.resume("stop-1")  # pending, no owner: this worker's next orphan pass sees it
        time.sleep(2.5)  # a takeover pass or two while the old run is still in its step
        assert calls == ["slow"]
        assert app.get_workflow("stop-1").status == "pending"
        release.set()
        assert handle.result(timeout=20) == ["slow", "after"]
    finally:
        release.set()
        worker.stop(grace=5)
    # The cancelled run's step ran to its end, then the resumed run ran it again
    # (at least once); never two runs at once, never a third.
    assert calls == ["slow", "slow", "after"]


@pytest.mark.slow
def test_a_live_run_whose_lease_lapsed_keeps_running_alone(make_app):
    """Our own orphan pass re-claims a lapsed lease of a run still going here: it only
    renews the lease; no second run, no release, the worker still counts it."""
    import sqlalchemy as sa

    app = make_app(lease_timeout=30.0)  # orphan pass every 5 s, heartbeat every 10 s
    jobs = app.queue("jobs", worker_concurrency=2)
    lapse, entered, release, calls = slow_then_after(app, "lapse")
    worker = Worker(app).start()
    try:
        handle = jobs.enqueue(lapse)
        assert entered.wait(10)
        w = app.storage.workflows
        with app.storage.transaction() as conn:  # as if heartbeats had failed for a while
            conn.execute(
                sa.update(w).where(w.c.workflow_id == handle.workflow_id).values(lease_expires_at=0)
            )
        time.sleep(6)  # the worker's next orphan pass takes the expired lease: its own
        record = app.get_workflow(handle.workflow_id)
        assert record.owner == app.executor.owner and record.lease_expires_at is not None
        assert worker.stats.recovered == 0
        release.set()
        assert handle.result(timeout=20) == ["slow", "after"]
    finally:
        release.set()
        worker.stop(grace=5)
    assert calls == ["slow", "after"]
    assert worker.stats.succeeded == 1


def test_resume_refuses_while_another_workflow_holds_the_deduplication_id(worker_app: Durable):
    app = worker_app
    jobs = app.queue("jobs")

    @app.workflow(name="sync")
    def sync() -> str:
        return "synced"

    first = jobs.enqueue(sync, deduplication_id="nightly")
    app.cancel(first.workflow_id)
    second = jobs.enqueue(sync, deduplication_id="nightly")  # the id is free again
    assert second.workflow_id != first.workflow_id
    with pytest.raises(WorkflowConflictError, match=f"held by workflow '{second.workflow_id}'"):
        app.resume(first.workflow_id)
    assert first.status() == "cancelled"  # nothing changed
    app.cancel(second.workflow_id)
    app.resume(first.workflow_id)
    assert first.status() == "enqueued"


def test_a_queued_workflow_whose_inputs_cannot_be_read_fails_once(worker_app: Durable):
    """Undecodable recorded inputs fail the workflow; the worker neither stalls nor retries it."""
    import sqlalchemy as sa

    from toolkit import WorkflowFailedError

    app = worker_app
    jobs = app.queue("jobs")

    @app.workflow(name="echo")
    def echo(n: int) -> int:
        return n

    broken = jobs.enqueue(echo, 1)
    w = app.storage.workflows
    with app.storage.transaction() as conn:  # as if written by another serializer
        conn.execute(sa.update(w).where(w.c.workflow_id == broken.workflow_id).values(inputs="{"))
    fine = jobs.enqueue(echo, 2)
    worker = Worker(app).start()
    try:
        assert fine.result(timeout=20) == 2
        with pytest.raises(WorkflowFailedError, match="cannot be read back"):
            broken.result(timeout=20)
    finally:
        worker.stop(grace=5)
    assert app.get_workflow(broken.workflow_id).recoveries == 0
