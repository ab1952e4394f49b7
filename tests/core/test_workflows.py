"""Workflow semantics on both backends: results, idempotent start, retries, cancel, resume."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import date

import pytest
import sqlalchemy as sa

import toolkit
from toolkit import (
    DeterminismError,
    Durable,
    DurableError,
    JSONSerializer,
    RetryPolicy,
    SerializationError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    current_step,
)

FAST = dict(initial_delay=0.01, backoff=1.0)


def test_workflow_runs_and_records_its_steps(app: Durable):
    keys = []

    @app.step()
    def double(x: int) -> int:
        keys.append(current_step().idempotency_key)
        return 2 * x

    @app.workflow()
    def twice(x: int) -> int:
        return double(double(x))

    handle = app.start(twice, 5, workflow_id="wf-1")
    assert handle.workflow_id == "wf-1"
    assert handle.result(timeout=10) == 20
    assert handle.status() == "succeeded"
    assert keys == ["wf-1:1", "wf-1:2"]

    [record] = app.list_workflows()
    assert (record.workflow_id, record.status, record.error) == ("wf-1", "succeeded", None)
    assert record.name.endswith("twice")
    assert record.created_at <= record.updated_at
    steps = app.list_steps("wf-1")
    assert [(s.step_number, s.status, s.attempts, s.output) for s in steps] == [
        (1, "succeeded", 1, "10"),
        (2, "succeeded", 1, "20"),
    ]


def test_same_workflow_id_twice_is_the_same_run(app: Durable):
    runs = []

    @app.workflow()
    def once(x: int) -> int:
        runs.append(x)
        return x

    first = app.start(once, 1, workflow_id="same")
    assert first.result(timeout=10) == 1
    second = app.start(once, 2, workflow_id="same")
    assert second.result(timeout=10) == 1
    assert runs == [1]
    assert app.run(once, 3, workflow_id="same") == 1


def test_workflow_id_used_by_another_workflow_is_refused(app: Durable):
    @app.workflow()
    def one() -> int:
        return 1

    @app.workflow()
    def other() -> int:
        return 2

    app.run(one, workflow_id="taken")
    with pytest.raises(WorkflowConflictError, match="taken"):
        app.start(other, workflow_id="taken")


def test_list_workflows_filters(app: Durable):
    @app.workflow(name="ok")
    def ok() -> None:
        return None

    @app.workflow(name="bad")
    def bad() -> None:
        raise ValueError("nope")

    for i in range(3):
        app.run(ok, workflow_id=f"ok-{i}")
    with pytest.raises(WorkflowFailedError):
        app.run(bad, workflow_id="bad-1")
    assert {r.workflow_id for r in app.list_workflows(status="succeeded")} == {
        "ok-0",
        "ok-1",
        "ok-2",
    }
    assert [r.workflow_id for r in app.list_workflows(name="bad")] == ["bad-1"]
    assert len(app.list_workflows(limit=2)) == 2
    with pytest.raises(ValueError, match="unknown status"):
        app.list_workflows(status="done")


def test_retry_policy_retries_then_succeeds(app: Durable):
    attempts = []

    @app.step(retry=RetryPolicy(max_attempts=5, retry_on=(OSError,), **FAST))
    def flaky() -> str:
        attempts.append(current_step().attempt)
        if len(attempts) < 3:
            raise OSError("temporary")
        return current_step().idempotency_key

    @app.workflow()
    def wf() -> str:
        return flaky()

    assert app.run(wf, workflow_id="r1", timeout=10) == "r1:1"
    assert attempts == [1, 2, 3]
    [step] = app.list_steps("r1")
    assert (step.status, step.attempts, step.error) == ("succeeded", 3, None)


def test_exhausted_retries_fail_the_workflow_with_the_error(app: Durable):
    @app.step(retry=RetryPolicy(max_attempts=3, **FAST))
    def broken() -> None:
        raise ConnectionError("service down")

    @app.workflow()
    def wf() -> None:
        broken()

    with pytest.raises(WorkflowFailedError) as info:
        app.run(wf, workflow_id="r2", timeout=10)
    assert info.value.error_type == "ConnectionError"
    assert info.value.error_message == "service down"
    record = app.get_workflow("r2")
    assert record.status == "failed"
    assert record.error is not None
    assert record.error["type"] == "ConnectionError"
    assert "service down" in record.error["traceback"]
    [step] = app.list_steps("r2")
    assert (step.status, step.attempts) == ("failed", 3)


def test_give_up_on_and_retry_on_stop_retries_at_once(app: Durable):
    calls = []

    policy = RetryPolicy(
        max_attempts=5, retry_on=(OSError,), give_up_on=(FileNotFoundError,), **FAST
    )

    @app.step(retry=policy)
    def step(exc: str) -> None:
        calls.append(exc)
        raise {"missing": FileNotFoundError, "value": ValueError}[exc](exc)

    @app.workflow()
    def wf(exc: str) -> None:
        step(exc)

    for kind in ("missing", "value"):
        with pytest.raises(WorkflowFailedError):
            app.run(wf, kind, timeout=10)
    assert calls == ["missing", "value"]


def test_step_outside_a_workflow_retries_and_touches_no_database():
    # An unreachable database: a step outside a workflow must never connect.
    offline = Durable("postgresql://nobody:secret@127.0.0.1:1/none")
    calls = []

    @offline.step(retry=RetryPolicy(max_attempts=3, **FAST))
    def flaky(x: int) -> int:
        calls.append(current_step())
        if len(calls) < 3:
            raise OSError("again")
        return x

    assert flaky(7) == 7
    assert [c.attempt for c in calls] == [1, 2, 3]
    assert len({c.idempotency_key for c in calls}) == 1
    assert calls[0].workflow_id is None


def test_module_level_decorators_work_outside_a_workflow():
    @toolkit.step(retry=RetryPolicy(max_attempts=2, **FAST))
    def fails_once(box: list[int]) -> int:
        box.append(1)
        if len(box) == 1:
            raise OSError
        return len(box)

    assert fails_once([]) == 2

    @toolkit.step
    def bare() -> str:
        return "ok"

    assert bare() == "ok"


def test_transaction_commits_with_its_checkpoint(app: Durable):
    with app.connection().begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id TEXT PRIMARY KEY, paid INTEGER)"))
        conn.execute(sa.text("INSERT INTO orders VALUES ('o-1', 0)"))

    @app.transaction()
    def mark_paid(conn: sa.Connection, order_id: str) -> int:
        return conn.execute(
            sa.text("UPDATE orders SET paid = paid + 1 WHERE id = :id"), {"id": order_id}
        ).rowcount

    @app.workflow()
    def checkout(order_id: str) -> int:
        return mark_paid(order_id)

    assert app.run(checkout, "o-1", workflow_id="c1", timeout=10) == 1
    assert app.run(checkout, "o-1", workflow_id="c1", timeout=10) == 1  # same run
    with app.connection().connect() as conn:
        assert conn.execute(sa.text("SELECT paid FROM orders")).scalar() == 1
    # Outside a workflow it is a plain transaction.
    assert mark_paid("o-1") == 1
    with app.connection().connect() as conn:
        assert conn.execute(sa.text("SELECT paid FROM orders")).scalar() == 2


def test_failed_transaction_rolls_back_and_retries(app: Durable):
    with app.connection().begin() as conn:
        conn.execute(sa.text("CREATE TABLE ledger (n INTEGER)"))
    attempts = []

    @app.transaction(retry=RetryPolicy(max_attempts=3, **FAST))
    def write(conn: sa.Connection) -> int:
        conn.execute(sa.text("INSERT INTO ledger VALUES (1)"))
        attempts.append(1)
        if len(attempts) < 2:
            raise OSError("rolled back")
        return len(attempts)

    @app.workflow()
    def wf() -> int:
        return write()

    assert app.run(wf, timeout=10) == 2
    with app.connection().connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ledger")).scalar() == 1


def test_the_step_before_a_transaction_is_durable_before_it_runs(app: Durable):
    """A transaction's body never runs before the checkpoint of the step before it has
    committed: a crash inside the transaction does not re-run that step."""
    seen: list[list[str]] = []
    s, w = app.storage.steps, app.storage.workflows
    query = sa.select(s.c.name).join(w, w.c.wf_key == s.c.wf_key).where(w.c.workflow_id == "t1")
    outsider = sa.create_engine(app.storage.url)  # a plain reader, beside the writer

    @app.step(name="reserve")
    def reserve() -> str:
        return "r-1"

    @app.transaction(name="record")
    def record(conn: sa.Connection, reservation: str) -> str:
        with outsider.connect() as other:
            seen.append(list(other.execute(query).scalars()))
        return f"recorded {reservation}"

    @app.workflow()
    def wf() -> str:
        return record(reserve())

    assert app.run(wf, workflow_id="t1", timeout=10) == "recorded r-1"
    outsider.dispose()
    assert seen == [["reserve"]]


def test_reads_through_the_app_inside_a_transaction_do_not_wait(app: Durable):
    """On SQLite the transaction holds the write lock; the app's reads must not queue on it."""
    seen: list[tuple[str, list[str]]] = []

    @app.step(name="reserve")
    def reserve() -> str:
        return "r-1"

    @app.transaction(name="record")
    def record(conn: sa.Connection, reservation: str) -> str:
        status = app.get_workflow("t3").status
        seen.append((status, [step.name for step in app.list_steps("t3")]))
        return reservation

    @app.workflow()
    def wf() -> str:
        return record(reserve())

    # Waiting on the write lock would take the 30 s busy timeout: far past this one.
    assert app.run(wf, workflow_id="t3", timeout=20) == "r-1"
    assert seen == [("pending", ["reserve"])]


def test_a_failing_transaction_keeps_the_step_before_it(app: Durable):
    runs: list[str] = []

    @app.step()
    def reserve() -> str:
        runs.append("reserve")
        return "r-1"

    @app.transaction(retry=RetryPolicy(max_attempts=2, **FAST))
    def record(conn: sa.Connection, reservation: str) -> str:
        runs.append("record")
        raise OSError("constraint says no")

    @app.workflow()
    def wf() -> str:
        return record(reserve())

    with pytest.raises(WorkflowFailedError, match="constraint says no"):
        app.run(wf, workflow_id="t2", timeout=10)
    steps = app.list_steps("t2")
    assert [(s.status, s.attempts) for s in steps] == [("succeeded", 1), ("failed", 2)]
    assert runs == ["reserve", "record", "record"]
    # Resumed: the recorded step is replayed, only the transaction runs again.
    runs.clear()
    with pytest.raises(WorkflowFailedError):
        app.resume("t2").result(timeout=10)
    assert runs == ["record", "record"]


def test_changed_code_stops_replay_with_a_clear_error(make_app):
    first = make_app()

    @first.step(name="reserve")
    def reserve() -> int:
        return 1

    @first.workflow(name="order")
    def order_v1() -> int:
        reserve()
        raise RuntimeError("crash after step 1")

    with pytest.raises(WorkflowFailedError):
        first.run(order_v1, workflow_id="det-1", timeout=10)
    first.close()

    second = make_app()

    @second.step(name="charge")
    def charge() -> int:
        return 2

    @second.workflow(name="order")
    def order_v2() -> int:
        return charge()

    second.resume("det-1")
    with pytest.raises(WorkflowFailedError) as info:
        second.handle("det-1").result(timeout=10)
    assert info.value.error_type == "toolkit.errors.DeterminismError"
    message = info.value.error_message
    assert "det-1" in message and "step 1" in message
    assert "'reserve'" in message and "'charge'" in message
    [step] = second.list_steps("det-1")
    assert (step.name, step.output) == ("reserve", "1")  # nothing overwritten


def test_determinism_error_names_everything():
    err = DeterminismError("wf-9", 3, "old_step", "new_step")
    assert (err.workflow_id, err.step_number) == ("wf-9", 3)
    assert "wf-9" in str(err) and "step 3" in str(err)


def test_unserializable_step_output_fails_clearly(app: Durable):
    @app.step(name="make_lock")
    def make_lock() -> object:
        return threading.Lock()

    @app.workflow()
    def wf() -> None:
        make_lock()

    with pytest.raises(WorkflowFailedError) as info:
        app.run(wf, workflow_id="ser-1", timeout=10)
    assert info.value.error_type == "toolkit.errors.SerializationError"
    assert "make_lock" in info.value.error_message
    assert "ser-1" in info.value.error_message


def test_unserializable_input_is_refused_before_anything_is_recorded(app: Durable):
    @app.workflow(name="takes_lock")
    def wf(x: object) -> None:
        return None

    with pytest.raises(SerializationError, match="takes_lock"):
        app.start(wf, threading.Lock(), workflow_id="ser-2")
    assert app.list_workflows() == []


def test_pluggable_serializer(make_app):
    @dataclass
    class Money:
        cents: int

    def default(value: object) -> object:
        if isinstance(value, Money):
            return {"__money__": value.cents}
        if isinstance(value, date):
            return {"__date__": value.isoformat()}
        raise TypeError(f"cannot serialize {type(value).__name__}")

    def hook(d: dict) -> object:
        if "__money__" in d:
            return Money(d["__money__"])
        if "__date__" in d:
            return date.fromisoformat(d["__date__"])
        return d

    app = make_app(serializer=JSONSerializer(default=default, object_hook=hook))

    @app.step()
    def price(day: date) -> Money:
        return Money(day.day * 100)

    @app.workflow()
    def wf(day: date) -> Money:
        return price(day)

    assert app.run(wf, date(2026, 11, 26), timeout=10) == Money(2600)


def test_async_workflows_and_steps(app: Durable):
    @app.step(retry=RetryPolicy(max_attempts=2, **FAST))
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.01)
        return i * i

    @app.workflow()
    async def gather() -> list[int]:
        first = await fetch(1)
        await app.sleep_async(0.05)
        rest = await asyncio.gather(fetch(2), fetch(3))
        return [first, *rest]

    assert app.run(gather, workflow_id="async-1", timeout=10) == [1, 4, 9]
    names = [s.name for s in app.list_steps("async-1")]
    assert names[1] == "toolkit.sleep" and len(names) == 4
    # Called outside a workflow, an async step is an ordinary coroutine with retries.
    assert asyncio.run(fetch(4)) == 16


def test_durable_sleep_records_its_wake_time(app: Durable):
    @app.workflow()
    def napper() -> None:
        app.sleep(0.2)

    start = time.time()
    app.run(napper, workflow_id="nap", timeout=10)
    assert time.time() - start >= 0.2
    [step] = app.list_steps("nap")
    assert step.name == "toolkit.sleep"
    assert int(step.output or 0) >= int(start * 1000) + 200


def test_cancelled_workflow_runs_no_further_step(app: Durable):
    ran = []
    gate = threading.Event()

    @app.step()
    def record(name: str) -> None:
        ran.append(name)

    @app.workflow()
    def slow() -> None:
        record("before")
        gate.set()
        app.sleep(30)
        record("after")

    handle = app.start(slow, workflow_id="cancel-1")
    assert gate.wait(10)
    app.cancel("cancel-1")
    with pytest.raises(WorkflowCancelledError):
        handle.result(timeout=10)
    assert handle.status() == "cancelled"
    time.sleep(0.2)
    assert ran == ["before"]
    app.cancel("cancel-1")  # cancelling again changes nothing


def test_resume_a_cancelled_workflow_from_where_it_stopped(app: Durable):
    ran = []
    gate = threading.Event()

    @app.step()
    def record(name: str) -> None:
        ran.append(name)

    @app.workflow()
    def wf() -> str:
        record("one")
        gate.set()
        app.sleep(0.5)
        record("two")
        return "done"

    handle = app.start(wf, workflow_id="resume-1")
    assert gate.wait(10)
    app.cancel("resume-1")
    with pytest.raises(WorkflowCancelledError):
        handle.result(timeout=10)
    app.resume("resume-1")
    assert app.handle("resume-1").result(timeout=10) == "done"
    assert ran == ["one", "two"]


def test_resume_a_failed_workflow_reruns_only_the_failed_step(app: Durable):
    ran = []
    broken = {"yes": True}

    @app.step()
    def first() -> int:
        ran.append("first")
        return 1

    @app.step(retry=RetryPolicy(max_attempts=2, **FAST))
    def second() -> int:
        ran.append("second")
        if broken["yes"]:
            raise OSError("still broken")
        return 2

    @app.workflow()
    def wf() -> int:
        return first() + second()

    with pytest.raises(WorkflowFailedError):
        app.run(wf, workflow_id="resume-2", timeout=10)
    broken["yes"] = False
    assert app.resume("resume-2").result(timeout=10) == 3
    assert ran == ["first", "second", "second", "second"]


def test_fork_restarts_a_succeeded_workflow_from_step_n_as_a_new_one(app: Durable):
    """Steps before N are replayed from the copied checkpoints; N and after run again."""
    ran = []

    @app.step()
    def fetch(n: int) -> int:
        ran.append(f"fetch{n}")
        return n * 10

    @app.transaction()
    def store(conn: sa.Connection, value: int) -> int:
        ran.append(f"store{value}")
        return value + 1

    @app.workflow()
    def pipeline(n: int) -> list[int]:
        return [fetch(n), store(n), fetch(n + 1)]

    assert app.run(pipeline, 1, workflow_id="fork-src", timeout=10) == [10, 2, 20]
    assert ran == ["fetch1", "store1", "fetch2"]
    ran.clear()
    handle = app.fork("fork-src", from_step=2, new_id="fork-copy")
    assert handle.workflow_id == "fork-copy"
    assert handle.result(timeout=10) == [10, 2, 20]
    assert ran == ["store1", "fetch2"]  # step 1 replayed, the @transaction re-ran
    copy, original = app.list_steps("fork-copy"), app.list_steps("fork-src")
    assert [s.step_number for s in copy] == [1, 2, 3]
    assert copy[0].output == original[0].output
    assert app.get_workflow("fork-src").status == "succeeded"  # untouched
    assert app.get_workflow("fork-copy").inputs == app.get_workflow("fork-src").inputs


def test_fork_replays_failures_and_refuses_unfinished_steps(app: Durable):
    calls = {"broken": 0, "flaky": 0}

    @app.step()
    def ok() -> int:
        return 1

    @app.step()
    def broken() -> int:
        calls["broken"] += 1
        raise OSError("down")

    @app.workflow()
    def wf() -> int:
        try:
            broken()
        except OSError:
            return ok() + 10  # the failure is caught: another path
        return ok()

    assert app.run(wf, workflow_id="fork-caught", timeout=10) == 11
    # Step 1 failed and was caught: its failure replays, it does not run again.
    assert app.fork("fork-caught", from_step=2).result(timeout=10) == 11
    assert calls["broken"] == 1

    @app.step(retry=RetryPolicy(max_attempts=3, initial_delay=60.0))
    def flaky() -> int:
        calls["flaky"] += 1
        raise OSError("later")

    @app.workflow()
    def waits() -> int:
        return flaky() + ok()

    handle = app.start(waits, workflow_id="fork-retrying")
    deadline = time.monotonic() + 10
    while not app.list_steps("fork-retrying"):  # attempt 1 failed, the next waits 60 s
        assert time.monotonic() < deadline
        time.sleep(0.02)
    app.cancel("fork-retrying")
    with pytest.raises(WorkflowCancelledError):
        handle.result(timeout=10)
    refusal = r"step 1 \(.*flaky\) .* has not finished \(retrying\).*from step 1"
    with pytest.raises(DurableError, match=refusal):
        app.fork("fork-retrying", from_step=2)
    with pytest.raises(WorkflowNotFoundError):
        app.fork("no-such-workflow", from_step=1)
    with pytest.raises(WorkflowConflictError, match="already used"):
        app.fork("fork-retrying", from_step=1, new_id="fork-caught")
    with pytest.raises(ValueError, match="1 or more"):
        app.fork("fork-retrying", from_step=0)
    assert len(app.list_workflows(name=app.get_workflow("fork-retrying").name)) == 1


def test_fork_sets_the_events_of_replayed_steps_under_its_own_id(app: Durable):
    @app.step()
    def work() -> str:
        return "w"

    @app.workflow()
    def reports() -> str:
        app.set_event("progress", "half")
        return work()

    app.run(reports, workflow_id="ev-src", timeout=10)
    forked = app.fork("ev-src", from_step=2, new_id="ev-copy")
    assert forked.result(timeout=10) == "w"
    assert app.get_event("ev-copy", "progress") == "half"


def test_resume_of_a_running_workflow_changes_nothing(app: Durable):
    release = threading.Event()

    @app.step()
    def hold() -> str:
        release.wait(10)
        return "held"

    @app.workflow()
    def running() -> str:
        return hold()

    handle = app.start(running, workflow_id="still-running")
    try:
        assert app.resume("still-running").workflow_id == "still-running"  # no error
    finally:
        release.set()
    assert handle.result(timeout=10) == "held"


def test_nested_step_runs_inside_its_parent(app: Durable):
    @app.step()
    def inner() -> int:
        return 1

    @app.step()
    def outer() -> int:
        return inner() + inner()

    @app.workflow()
    def wf() -> int:
        return outer()

    assert app.run(wf, workflow_id="nest", timeout=10) == 2
    assert [s.name for s in app.list_steps("nest")] == [outer.__durable_step__.name]


def test_current_step_outside_a_step_is_an_error():
    with pytest.raises(toolkit.DurableError, match="outside a step"):
        current_step()


def test_calling_a_workflow_function_runs_it_durably(app: Durable):
    @app.workflow()
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert app.list_workflows()[0].status == "succeeded"


def test_sql_error_in_a_transaction_goes_through_the_retry_policy(app: Durable):
    attempts = []

    @app.transaction(retry=RetryPolicy(max_attempts=2, **FAST))
    def broken(conn: sa.Connection) -> None:
        attempts.append(1)
        conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))

    @app.workflow()
    def wf() -> None:
        broken()

    with pytest.raises(WorkflowFailedError):
        app.run(wf, workflow_id="sql-err", timeout=10)
    assert len(attempts) == 2
    assert app.get_workflow("sql-err").status == "failed"


def test_a_non_json_serializer_replays_sleeps_and_errors(make_app):
    import base64
    import json

    class Base64JSON:
        def dumps(self, value: object) -> str:
            return base64.b64encode(json.dumps(value).encode()).decode()

        def loads(self, data: str) -> object:
            return json.loads(base64.b64decode(data))

    app = make_app(serializer=Base64JSON())
    broken = {"yes": True}

    @app.step()
    def last() -> str:
        if broken["yes"]:
            raise OSError("not yet")
        return "done"

    @app.workflow()
    def wf() -> str:
        app.sleep(0.01)
        return last()

    with pytest.raises(WorkflowFailedError) as info:
        app.run(wf, workflow_id="b64", timeout=10)
    assert info.value.error_message == "not yet"
    broken["yes"] = False
    assert app.resume("b64").result(timeout=10) == "done"  # replays the sleep


def test_resume_while_another_process_holds_sqlite_leaves_it_to_that_process(make_app, backend):
    if backend != "sqlite":
        pytest.skip("the one-executing-process rule is SQLite's")
    outcome = {"fail": True}

    def declare(app):
        @app.workflow(name="flaky")
        def flaky() -> str:
            if outcome["fail"]:
                raise ValueError("not yet")
            return "ok"

        return flaky

    first = make_app()
    flaky = declare(first)
    handle = first.start(flaky, workflow_id="flaky-1")
    with pytest.raises(WorkflowFailedError):
        handle.result(timeout=10)
    first.close()

    holder = make_app()  # a worker, say: it holds the SQLite file for running workflows
    declare(holder)
    holder.executor.ensure_alive()
    outcome["fail"] = False
    other = make_app()
    declare(other)
    other.resume("flaky-1")  # cannot run it here: no error, it waits for the holder
    assert other.get_workflow("flaky-1").status == "pending"
    assert [h.workflow_id for h in holder.recover()] == ["flaky-1"]
    assert holder.handle("flaky-1").result(timeout=10) == "ok"
