"""RetryPolicy's vocabulary: exception predicates, result retries, delay laws, delays
supplied by the failure, hooks between attempts and fallbacks when attempts run out.

Each field is checked outside a workflow (sync and async steps, no database), inside
a workflow on SQLite and PostgreSQL (durable attempts, checkpointed fallbacks, replay
that never calls a hook again), and across real process crashes (marked slow).
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from toolkit import (
    Durable,
    RetriesExhausted,
    RetryPolicy,
    RetryState,
    SerializationError,
    StepFailedError,
    WorkflowCancelledError,
    WorkflowFailedError,
    current_step,
)

FAST: dict[str, Any] = dict(initial_delay=0.01, backoff=1.0)


# -- the policy alone --------------------------------------------------------------------


def test_the_old_fields_decide_as_before():
    policy = RetryPolicy(max_attempts=6, initial_delay=0.5, backoff=2.0, max_delay=4.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.next_delay(OSError("x"), attempt=5, elapsed=3.0) == 4.0
    assert policy.next_delay(OSError("x"), attempt=6, elapsed=3.0) is None
    strict = RetryPolicy(retry_on=OSError, give_up_on=FileNotFoundError, max_elapsed=1.0)
    assert strict.retryable(ConnectionError()) and not strict.retryable(FileNotFoundError())
    assert not strict.retryable(ValueError())
    assert strict.next_delay(OSError(), attempt=1, elapsed=0.5) is None
    assert strict.budget_delay(1, 0.0) == 1.0
    assert RetryPolicy().max_attempts == 3 and RetryPolicy().max_delay == 60.0
    assert not RetryPolicy().rejects(None)  # no retry_on_result: every value is a result
    for n in range(1, 4):
        assert (
            0.5 * policy.delay(n)
            <= RetryPolicy(**{**_fields(policy), "jitter": True}).delay(n)
            <= policy.delay(n)
        )


def _fields(policy: RetryPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in policy.__dataclass_fields__}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(initial_delay=120, backoff=1),
            r"initial_delay \(120 s\) is longer than max_delay \(60 s\).*max_delay=120",
        ),
        (dict(initial_delay=5, max_delay=2.5), r"initial_delay \(5 s\).*max_delay \(2\.5 s\)"),
        (dict(increment=-1), "increment must not be negative"),
        (dict(random_delay=-0.5), "random_delay must not be negative"),
        (dict(retry_if=True), "retry_if must be a callable"),
        (dict(retry_on_result="pending"), "retry_on_result must be a callable"),
        (dict(delay_from=3.0), "delay_from must be a callable"),
        (dict(before_retry=[print]), "before_retry must be a callable"),
        (dict(on_give_up="fallback"), "on_give_up must be a callable"),
        (dict(delays=(1, 120)), r"delays holds 120 s, longer than max_delay \(60 s\).*=120"),
        (dict(delays=(1, -2)), "delays must be finite and not negative, got -2"),
        (dict(delays=(1, "5")), "delays must hold seconds"),
        (dict(delays=5), "delays must be a sequence of seconds, got 5"),
    ],
)
def test_bad_values_are_refused_in_one_line(kwargs: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message) as caught:
        RetryPolicy(**kwargs)
    assert "\n" not in str(caught.value)


def test_a_long_constant_delay_is_kept_once_max_delay_allows_it():
    assert RetryPolicy(initial_delay=120, backoff=1, max_delay=120).delay(4) == 120.0
    assert RetryPolicy(initial_delay=60, backoff=1).delay(2) == 60.0  # the default cap itself


def test_a_schedule_of_delays_replaces_the_law_and_its_last_delay_repeats():
    policy = RetryPolicy(max_attempts=None, delays=[1, 5, 30], initial_delay=7, backoff=3)
    assert policy.delays == (1.0, 5.0, 30.0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 5.0, 30.0, 30.0, 30.0, 30.0]
    assert RetryPolicy(delays=(0, 2), min_delay=1).delay(1) == 1.0  # the floor applies
    assert 30 <= RetryPolicy(delays=(30,), random_delay=1).delay(4) <= 31
    assert RetryPolicy(delays=(120, 300), max_delay=300).delay(2) == 300.0


def test_linear_law():
    policy = RetryPolicy(initial_delay=1, backoff=1, increment=2, max_delay=8)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 3.0, 5.0, 7.0, 8.0, 8.0]
    both = RetryPolicy(initial_delay=1, backoff=2, increment=1, max_delay=100)
    assert [both.delay(n) for n in range(1, 5)] == [1.0, 3.0, 6.0, 11.0]


def test_min_delay_and_full_jitter():
    floored = RetryPolicy(initial_delay=1, backoff=2, min_delay=4, max_delay=10)
    assert [floored.delay(n) for n in range(1, 6)] == [4.0, 4.0, 4.0, 8.0, 10.0]
    full = RetryPolicy(initial_delay=1, backoff=2, max_delay=8, full_jitter=True)
    draws = [full.delay(4) for _ in range(300)]
    assert all(0.0 <= d <= 8.0 for d in draws) and min(draws) < 4.0 < max(draws)
    floor = RetryPolicy(initial_delay=1, backoff=2, min_delay=2, max_delay=8, full_jitter=True)
    assert all(2.0 <= floor.delay(4) <= 8.0 for _ in range(100))
    with pytest.raises(ValueError, match="choose one"):
        RetryPolicy(jitter=True, full_jitter=True)
    with pytest.raises(ValueError, match=r"min_delay \(90 s\) is longer than max_delay \(60 s\)"):
        RetryPolicy(min_delay=90)


def test_random_range_and_random_part_added_after_the_cap():
    ranged = RetryPolicy(initial_delay=2, backoff=1, random_delay=3)  # uniform in [2, 5]
    draws = [ranged.delay(n) for n in range(1, 200)]
    assert all(2.0 <= d <= 5.0 for d in draws) and max(draws) - min(draws) > 1.0
    capped = RetryPolicy(initial_delay=1, backoff=10, max_delay=4, random_delay=0.5)
    assert all(4.0 <= capped.delay(5) <= 4.5 for _ in range(50))


def test_delay_from_replaces_the_law_then_the_cap_and_the_budget_apply():
    policy = RetryPolicy(
        initial_delay=1,
        max_delay=30,
        max_elapsed=100,
        delay_from=lambda e: getattr(e, "retry_after", None),
    )
    later = OSError("429")
    later.retry_after = 7  # type: ignore[attr-defined]
    assert policy.next_delay(later, attempt=1, elapsed=0) == 7.0
    assert policy.next_delay(OSError("no hint"), attempt=2, elapsed=0) == 2.0  # the law
    much_later = OSError("flood")
    much_later.retry_after = 500  # type: ignore[attr-defined]
    assert policy.next_delay(much_later, attempt=1, elapsed=0) == 30.0  # max_delay
    assert policy.next_delay(much_later, attempt=1, elapsed=80) is None  # 80 + 30 > 100
    with pytest.raises(TypeError, match="delay_from returned 'soon'"):
        RetryPolicy(delay_from=lambda e: "soon").next_delay(OSError(), 1, 0)


def test_delay_from_accepts_a_timedelta_and_a_predicate_answer():
    policy = RetryPolicy(delay_from=lambda e: datetime.timedelta(seconds=2.5))
    assert policy.next_delay(OSError(), attempt=1, elapsed=0) == 2.5

    def on(exc: BaseException) -> bool | float:  # stamina's 'on': retry?, or how long to wait
        if isinstance(exc, TimeoutError):
            return 4.0
        return isinstance(exc, ConnectionError)

    both = RetryPolicy(initial_delay=0.5, retry_if=on, delay_from=on)
    assert both.next_delay(TimeoutError(), attempt=1, elapsed=0) == 4.0
    assert both.next_delay(ConnectionError(), attempt=1, elapsed=0) == 0.5  # True: the law
    assert both.next_delay(KeyError(), attempt=1, elapsed=0) is None


def test_async_hooks_are_refused_clearly():
    async def hook(state: RetryState) -> None:
        return None

    async def predicate(value: object) -> bool:
        return True

    with pytest.raises(TypeError, match="retry_on_result returned an awaitable"):
        RetryPolicy(retry_on_result=predicate).rejects(1)
    with pytest.raises(TypeError, match="before_retry returned an awaitable"):
        _run("sync", _raises, RetryPolicy(before_retry=hook, **FAST))
    with pytest.raises(TypeError, match="on_give_up returned an awaitable"):
        _run("async", _raises, RetryPolicy(max_attempts=1, on_give_up=hook))


def test_a_plain_before_retry_that_returns_a_future_is_not_refused():
    """A sync method that schedules work and returns its future (aiokafka's
    ``force_metadata_update`` returns ``asyncio.shield(...)``) has run: its value is
    ignored, as before_retry's value always is. Only an ``async def`` hook is refused."""
    from toolkit import step

    calls: list[int] = []

    async def main() -> str:
        loop = asyncio.get_running_loop()

        def refresh() -> asyncio.Future[None]:
            calls.append(1)
            return asyncio.shield(loop.create_future())

        @step(retry=RetryPolicy(max_attempts=3, before_retry=lambda s: refresh(), **FAST))
        async def fetch() -> str:
            if current_step().attempt < 3:
                raise ConnectionError("stale metadata")
            return "ok"

        return await fetch()

    assert asyncio.run(main()) == "ok"
    assert calls == [1, 1]


def _raises() -> None:
    raise ConnectionError


def test_decide_is_the_one_verdict():
    policy = RetryPolicy(max_attempts=2, retry_on=OSError, retry_on_result=lambda r: not r, **FAST)
    verdict = policy.decide("s", 1, 0.5, result=0)
    assert verdict.retry and verdict.state == RetryState("s", 1, None, 0, 0.01, 0.5)
    last = policy.decide("s", 2, 0.5, result=0)
    assert not last.retry and last.exhausted and last.state.delay is None
    never = policy.decide("s", 1, 0.0, exception=ValueError("not retried"))
    assert not never.retry and not never.exhausted


# -- outside a workflow, sync and async ----------------------------------------------------


def _run(mode: str, body: Callable[[], Any], policy: RetryPolicy) -> Any:
    """Declare ``body`` as a step (sync or async) with ``policy`` and call it once."""
    from toolkit import step

    if mode == "sync":
        return step(retry=policy, name="body")(body)()

    async def async_body() -> Any:
        await asyncio.sleep(0)
        return body()

    return asyncio.run(step(retry=policy, name="body")(async_body)())


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@MODES
def test_retry_if_retries_only_what_it_accepts(mode: str):
    attempts: list[int] = []
    transient = {errno.EAGAIN, errno.ECONNRESET}

    def body() -> str:
        n = current_step().attempt
        attempts.append(n)
        if n == 1:
            raise OSError(errno.EAGAIN, "try again")
        if n == 2:
            raise OSError(errno.ENOENT, "missing")
        return "never"

    policy = RetryPolicy(
        max_attempts=5,
        retry_on=OSError,
        retry_if=lambda e: getattr(e, "errno", None) in transient,
        on_give_up=lambda s: pytest.fail("not called for a failure never retried"),
        **FAST,
    )
    with pytest.raises(OSError, match="missing"):
        _run(mode, body, policy)
    assert attempts == [1, 2]


@MODES
def test_retry_on_result_polls_until_the_value_is_accepted(mode: str):
    seen: list[tuple[int, Any]] = []

    def body() -> dict[str, Any]:
        n = current_step().attempt
        seen.append((n, current_step().attempt))
        return {"status": 503} if n < 3 else {"status": 200}

    policy = RetryPolicy(max_attempts=5, retry_on_result=lambda r: r["status"] >= 500, **FAST)
    assert _run(mode, body, policy) == {"status": 200}
    assert seen == [(1, 1), (2, 2), (3, 3)]


@MODES
def test_retries_exhausted_names_the_step_and_keeps_the_last_value(mode: str):
    policy = RetryPolicy(max_attempts=3, retry_on_result=lambda r: not r, **FAST)
    with pytest.raises(RetriesExhausted) as caught:
        _run(mode, lambda: [], policy)
    assert (caught.value.attempts, caught.value.last_result, caught.value.step_name) == (
        3,
        [],
        "body",
    )
    assert str(caught.value) == (
        "step 'body' gave up after 3 attempts: retry_on_result still matched its result []"
    )


@MODES
def test_before_retry_runs_before_each_wait_with_the_state(mode: str):
    states: list[RetryState] = []
    starts: list[float] = []

    def body() -> str:
        starts.append(time.monotonic())
        n = current_step().attempt
        if n == 1:
            raise ConnectionError("reset")
        if n == 2:
            return "stale"
        return "fresh"

    def repair(state: RetryState) -> None:
        assert current_step().attempt == state.attempt  # the hook runs in the step's context
        states.append(state)

    policy = RetryPolicy(
        max_attempts=3,
        initial_delay=0.05,
        backoff=2.0,
        retry_on_result=lambda r: r == "stale",
        before_retry=repair,
    )
    assert _run(mode, body, policy) == "fresh"
    assert [(s.step, s.attempt, type(s.exception), s.result, s.delay) for s in states] == [
        ("body", 1, ConnectionError, None, 0.05),
        ("body", 2, type(None), "stale", 0.1),
    ]
    assert states[1].elapsed >= 0.05
    assert starts[2] - starts[1] >= 0.1  # the wait follows the hook


@MODES
def test_increment_and_random_delay_are_the_waits(mode: str):
    delays: list[float] = []

    def body() -> None:
        raise TimeoutError

    policy = RetryPolicy(
        max_attempts=4,
        initial_delay=0.01,
        backoff=1.0,
        increment=0.02,
        before_retry=lambda s: delays.append(s.delay or 0.0),
        on_give_up=lambda s: "done",
    )
    started = time.monotonic()
    assert _run(mode, body, policy) == "done"
    assert delays == pytest.approx([0.01, 0.03, 0.05])
    assert time.monotonic() - started >= 0.09

    drawn: list[float] = []
    ranged = RetryPolicy(
        max_attempts=6,
        initial_delay=0.01,
        backoff=1.0,
        random_delay=0.02,
        before_retry=lambda s: drawn.append(s.delay or 0.0),
        on_give_up=lambda s: None,
    )
    _run(mode, body, ranged)
    assert len(drawn) == 5 and all(0.01 <= d <= 0.03 for d in drawn)


class Throttled(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


@MODES
def test_delay_from_takes_the_wait_the_failure_names(mode: str):
    delays: list[float] = []
    hints = iter([0.05, None, 0.0])

    def body() -> str:
        if current_step().attempt <= 3:
            raise Throttled(next(hints))
        return "ok"

    policy = RetryPolicy(
        max_attempts=4,
        initial_delay=0.02,
        backoff=1.0,
        max_delay=0.5,
        delay_from=lambda e: e.retry_after if isinstance(e, Throttled) else None,
        before_retry=lambda s: delays.append(s.delay or 0.0),
    )
    assert _run(mode, body, policy) == "ok"
    assert delays == [0.05, 0.02, 0.0]


@MODES
def test_on_give_up_supplies_the_fallback_or_raises(mode: str):
    states: list[RetryState] = []

    def fallback(state: RetryState) -> str:
        states.append(state)
        return f"cached after {state.attempt}"

    def body() -> str:
        raise ConnectionError("down")

    policy = RetryPolicy(max_attempts=2, on_give_up=fallback, **FAST)
    assert _run(mode, body, policy) == "cached after 2"
    [state] = states
    assert (state.attempt, str(state.exception), state.delay) == (2, "down", None)

    def reraise(state: RetryState) -> None:
        raise RuntimeError(f"gave up: {state.exception}")

    with pytest.raises(RuntimeError, match="gave up: down"):
        _run(mode, body, RetryPolicy(max_attempts=2, on_give_up=reraise, **FAST))


@MODES
def test_on_give_up_when_the_time_budget_runs_out(mode: str):
    def body() -> None:
        raise ConnectionError

    policy = RetryPolicy(
        max_attempts=None,
        initial_delay=0.05,
        backoff=1.0,
        max_elapsed=0.12,
        on_give_up=lambda s: s.attempt,
    )
    attempts = _run(mode, body, policy)
    assert 2 <= attempts <= 4


@MODES
def test_a_hook_that_raises_ends_the_step(mode: str):
    calls: list[int] = []

    def body() -> None:
        calls.append(current_step().attempt)
        raise ConnectionError

    def broken(state: RetryState) -> None:
        raise KeyError("token refresh failed")

    with pytest.raises(KeyError, match="token refresh failed"):
        _run(mode, body, RetryPolicy(max_attempts=5, before_retry=broken, **FAST))
    assert calls == [1]
    with pytest.raises(ZeroDivisionError):
        _run(mode, lambda: 0, RetryPolicy(retry_on_result=lambda r: 1 / r, **FAST))


def test_without_the_new_fields_a_step_outside_a_workflow_behaves_as_before():
    from toolkit import step

    calls: list[int] = []

    @step(retry=RetryPolicy(max_attempts=3, retry_on=OSError, **FAST))
    def flaky() -> None:
        calls.append(current_step().attempt)
        raise OSError("always")

    with pytest.raises(OSError, match="always"):
        flaky()
    assert calls == [1, 2, 3]

    @step
    def once() -> None:
        calls.append(current_step().attempt)
        raise OSError("once")

    with pytest.raises(OSError):
        once()
    assert calls == [1, 2, 3, 1]

    @step(retry=RetryPolicy(**FAST))
    def returns_none() -> None:
        return None

    assert returns_none() is None  # no retry_on_result: any value is the result


# -- inside a workflow, SQLite and PostgreSQL ----------------------------------------------


def test_result_retries_are_durable_attempts(app: Durable):
    seen: list[int] = []

    @app.step(
        name="poll",
        retry=RetryPolicy(max_attempts=5, retry_on_result=lambda r: r != "done", **FAST),
    )
    def poll() -> str:
        seen.append(current_step().attempt)
        return "done" if current_step().attempt == 3 else "pending"

    @app.workflow(name="polls")
    def polls() -> str:
        return poll()

    assert app.run(polls, workflow_id="r-1", timeout=10) == "done"
    assert seen == [1, 2, 3]
    [record] = app.list_steps("r-1")
    assert (record.status, record.attempts, record.output) == ("succeeded", 3, '"done"')


def test_hooks_inside_a_workflow_and_no_hook_on_replay(app: Durable):
    before: list[int] = []
    given_up: list[int] = []
    body: list[int] = []

    def fallback(state: RetryState) -> dict[str, Any]:
        given_up.append(state.attempt)
        return {"fallback": True, "last": state.result}

    policy = RetryPolicy(
        max_attempts=3,
        retry_on_result=lambda r: r is None,
        before_retry=lambda s: before.append(s.attempt),
        on_give_up=fallback,
        **FAST,
    )

    @app.step(name="lookup", retry=policy)
    def lookup() -> None:
        body.append(current_step().attempt)
        return None

    @app.step(name="after")
    def after(value: dict[str, Any]) -> str:
        return f"after {value}"

    @app.workflow(name="falls_back")
    def falls_back() -> str:
        return after(lookup())

    expected = "after {'fallback': True, 'last': None}"
    assert app.run(falls_back, workflow_id="g-1", timeout=10) == expected
    assert (body, before, given_up) == ([1, 2, 3], [1, 2], [3])
    steps = app.list_steps("g-1")
    assert (steps[0].status, steps[0].attempts) == ("succeeded", 3)
    assert json.loads(steps[0].output or "") == {"fallback": True, "last": None}

    # Replay of step 1 (a fork from step 2): the fallback is read back, no hook runs.
    assert app.fork("g-1", from_step=2, new_id="g-2").result(timeout=10) == expected
    assert (body, before, given_up) == ([1, 2, 3], [1, 2], [3])


def test_hooks_read_the_calls_arguments_from_the_step_context(app: Durable):
    """``current_step().args``/``kwargs`` are the arguments as passed, in and out of a
    workflow, on every attempt and in every hook (what backoff's details carried)."""
    seen: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def note(where: str) -> None:
        info = current_step()
        seen.append((where, info.args, dict(info.kwargs)))

    policy = RetryPolicy(
        max_attempts=2,
        retry_on=ConnectionError,
        before_retry=lambda s: note("before"),
        on_give_up=lambda s: note("give up") or "fallback",
        **FAST,
    )

    @app.step(name="fetch", retry=policy)
    def fetch(url: str, *, timeout: int = 5) -> str:
        note("body")
        raise ConnectionError(url)

    @app.workflow(name="fetches")
    def fetches() -> str:
        return fetch("http://a", timeout=3)

    calls = [
        ("body", ("http://a",), {"timeout": 3}),
        ("before", ("http://a",), {"timeout": 3}),
        ("body", ("http://a",), {"timeout": 3}),
        ("give up", ("http://a",), {"timeout": 3}),
    ]
    assert fetch("http://a", timeout=3) == "fallback"
    assert seen == calls
    seen.clear()
    assert app.run(fetches, workflow_id="args-1", timeout=10) == "fallback"
    assert seen == calls


def test_retries_exhausted_in_a_workflow_is_recorded_and_replayed_as_itself(app: Durable):
    @app.step(
        name="never_ready",
        retry=RetryPolicy(max_attempts=2, retry_on_result=lambda r: r == "pending", **FAST),
    )
    def never_ready() -> str:
        return "pending"

    @app.step(name="next_step")
    def next_step() -> int:
        return 1

    @app.workflow(name="catches")
    def catches() -> str:
        try:
            never_ready()
        except RetriesExhausted as exc:
            return f"caught {exc.attempts} {next_step()}"
        return "not caught"

    assert app.run(catches, workflow_id="x-1", timeout=10) == "caught 2 1"
    record = app.list_steps("x-1")[0]
    assert (record.status, record.attempts) == ("failed", 2)
    assert record.error is not None and record.error["type"] == "toolkit.errors.RetriesExhausted"
    assert "gave up after 2 attempts" in record.error["message"]
    # Replayed (fork from step 2), the failure is raised again as RetriesExhausted.
    assert app.fork("x-1", from_step=2, new_id="x-2").result(timeout=10) == "caught 2 1"

    @app.workflow(name="lets_it_fail")
    def lets_it_fail() -> str:
        return never_ready()

    with pytest.raises(WorkflowFailedError) as failed:
        app.run(lets_it_fail, workflow_id="x-3", timeout=10)
    assert failed.value.error_type == "toolkit.errors.RetriesExhausted"


def test_exception_predicate_and_delay_from_inside_a_workflow(app: Durable):
    calls: list[int] = []

    class Limited(Exception):
        def __init__(self, code: int, wait: float | None = None) -> None:
            super().__init__(f"code {code}")
            self.code, self.wait = code, wait

    @app.step(
        name="call_api",
        retry=RetryPolicy(
            max_attempts=5,
            retry_if=lambda e: getattr(e, "code", None) == 429,
            delay_from=lambda e: getattr(e, "wait", None),
            **FAST,
        ),
    )
    def call_api() -> str:
        n = current_step().attempt
        calls.append(n)
        if n < 3:
            raise Limited(429, 0.05)
        raise Limited(400)

    @app.workflow(name="api")
    def api() -> str:
        return call_api()

    started = time.monotonic()
    with pytest.raises(WorkflowFailedError, match="code 400"):
        app.run(api, workflow_id="p-1", timeout=10)
    assert calls == [1, 2, 3] and time.monotonic() - started >= 0.1
    [record] = app.list_steps("p-1")
    assert (record.status, record.attempts) == ("failed", 3)


def test_the_next_attempt_time_from_the_failure_is_recorded(app: Durable):
    class Flood(Exception):
        pass

    @app.step(
        name="flood", retry=RetryPolicy(max_attempts=3, max_delay=600, delay_from=lambda e: 300)
    )
    def flood() -> None:
        raise Flood("wait 300 s")

    @app.workflow(name="floods")
    def floods() -> None:
        flood()

    before = time.time()
    handle = app.start(floods, workflow_id="f-1")
    deadline = time.monotonic() + 10
    while not app.list_steps("f-1"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    [record] = app.list_steps("f-1")
    assert (record.status, record.attempts) == ("retrying", 1)
    assert record.next_attempt_at is not None
    assert before + 299 <= record.next_attempt_at.timestamp() <= time.time() + 301
    app.cancel("f-1")
    with pytest.raises(WorkflowCancelledError):
        handle.result(timeout=10)


def test_a_schedule_of_delays_is_the_recorded_next_attempt_time(app: Durable):
    policy = RetryPolicy(max_attempts=4, delays=(0.01, 200), max_delay=200)

    @app.step(name="scheduled", retry=policy)
    def scheduled() -> None:
        raise ConnectionError("down")

    @app.workflow(name="schedules")
    def schedules() -> None:
        scheduled()

    handle = app.start(schedules, workflow_id="d-1")
    deadline = time.monotonic() + 10
    while not any(r.attempts == 2 for r in app.list_steps("d-1")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    [record] = app.list_steps("d-1")
    assert record.status == "retrying" and record.next_attempt_at is not None
    assert 195 <= record.next_attempt_at.timestamp() - time.time() <= 201  # the second delay
    app.cancel("d-1")
    with pytest.raises(WorkflowCancelledError):
        handle.result(timeout=10)


def test_a_fallback_that_does_not_serialize_fails_the_step_clearly(app: Durable):
    @app.step(
        name="unserializable", retry=RetryPolicy(max_attempts=1, on_give_up=lambda s: object())
    )
    def unserializable() -> None:
        raise ConnectionError

    @app.workflow(name="bad_fallback")
    def bad_fallback() -> None:
        unserializable()

    with pytest.raises(WorkflowFailedError) as failed:
        app.run(bad_fallback, workflow_id="s-1", timeout=10)
    assert failed.value.error_type == "toolkit.errors.SerializationError"
    assert "'s on_give_up returned a value that cannot be serialized" in failed.value.error_message
    assert "unserializable" in failed.value.error_message
    [record] = app.list_steps("s-1")
    assert record.status == "failed"
    assert issubclass(SerializationError, Exception)


def test_async_workflow_with_result_retries_and_fallback(app: Durable):
    @app.step(
        name="async_poll",
        retry=RetryPolicy(
            max_attempts=3, retry_on_result=lambda r: r < 3, on_give_up=lambda s: -1, **FAST
        ),
    )
    async def async_poll() -> int:
        await asyncio.sleep(0)
        return current_step().attempt

    @app.step(
        name="async_never",
        retry=RetryPolicy(
            max_attempts=2, retry_on_result=lambda r: True, on_give_up=lambda s: -1, **FAST
        ),
    )
    async def async_never() -> int:
        return 0

    @app.workflow(name="async_wf")
    async def async_wf() -> list[int]:
        return [await async_poll(), await async_never()]

    assert app.run(async_wf, workflow_id="a-1", timeout=10) == [3, -1]
    assert [(s.status, s.attempts) for s in app.list_steps("a-1")] == [
        ("succeeded", 3),
        ("succeeded", 2),
    ]


def test_a_rejected_transaction_rolls_its_writes_back(app: Durable):
    with app.connection().begin() as conn:
        conn.execute(sa.text("CREATE TABLE claims (attempt INTEGER NOT NULL)"))

    def claims() -> list[int]:
        with app.connection().connect() as conn:
            return [row[0] for row in conn.execute(sa.text("SELECT attempt FROM claims"))]

    @app.transaction(
        name="claim", retry=RetryPolicy(max_attempts=4, retry_on_result=lambda r: r < 3, **FAST)
    )
    def claim(conn: sa.Connection) -> int:
        n = current_step().attempt
        conn.execute(sa.text("INSERT INTO claims (attempt) VALUES (:n)"), {"n": n})
        return n

    @app.workflow(name="claims_once")
    def claims_once() -> int:
        return claim()

    assert app.run(claims_once, workflow_id="t-1", timeout=10) == 3
    assert claims() == [3]  # attempts 1 and 2 were rolled back
    [record] = app.list_steps("t-1")
    assert (record.status, record.attempts) == ("succeeded", 3)

    # Outside a workflow: the same, without a checkpoint.
    assert claim() == 3
    assert claims() == [3, 3]

    @app.transaction(
        name="claim_or_not",
        retry=RetryPolicy(
            max_attempts=2, retry_on_result=lambda r: True, on_give_up=lambda s: "none", **FAST
        ),
    )
    def claim_or_not(conn: sa.Connection) -> int:
        conn.execute(sa.text("INSERT INTO claims (attempt) VALUES (99)"))
        return 0

    @app.workflow(name="gives_up_tx")
    def gives_up_tx() -> str:
        return claim_or_not()

    assert app.run(gives_up_tx, workflow_id="t-2", timeout=10) == "none"
    assert claim_or_not() == "none"
    assert claims() == [3, 3]


def test_a_broken_predicate_in_a_transaction_fails_it_and_writes_nothing(app: Durable):
    with app.connection().begin() as conn:
        conn.execute(sa.text("CREATE TABLE marks (n INTEGER NOT NULL)"))

    @app.transaction(
        name="marks",
        retry=RetryPolicy(max_attempts=3, retry_on_result=lambda r: r["missing"], **FAST),
    )
    def mark(conn: sa.Connection) -> dict[str, int]:
        conn.execute(sa.text("INSERT INTO marks (n) VALUES (1)"))
        return {}

    @app.workflow(name="marking")
    def marking() -> dict[str, int]:
        return mark()

    with pytest.raises(WorkflowFailedError) as failed:
        app.run(marking, workflow_id="b-1", timeout=10)
    assert failed.value.error_type == "KeyError"
    with pytest.raises(KeyError):
        mark()
    with app.connection().connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM marks")).scalar() == 0
    [record] = app.list_steps("b-1")
    assert (record.status, record.attempts) == ("failed", 1)


def test_old_policies_inside_a_workflow_behave_as_before(app: Durable):
    calls: list[int] = []

    @app.step(
        name="old",
        retry=RetryPolicy(max_attempts=3, retry_on=OSError, give_up_on=FileNotFoundError, **FAST),
    )
    def old() -> None:
        calls.append(current_step().attempt)
        raise (OSError if len(calls) < 2 else FileNotFoundError)("x")

    @app.workflow(name="old_wf")
    def old_wf() -> None:
        old()

    with pytest.raises(WorkflowFailedError) as failed:
        app.run(old_wf, workflow_id="o-1", timeout=10)
    assert failed.value.error_type == "FileNotFoundError" and calls == [1, 2]
    [record] = app.list_steps("o-1")
    assert (record.status, record.attempts) == ("failed", 2)
    assert StepFailedError.__name__ == "StepFailedError"


# -- across real crashes (processes killed with os._exit and SIGKILL) -----------------------

CRASH_APP = Path(__file__).with_name("crash_app.py")


def _spawn(url: str, mode: str, wid: str, scenario: str, work: Path, **env: str):
    return subprocess.Popen(
        [sys.executable, str(CRASH_APP), url, mode, wid, scenario, str(work)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _recover(url: str, wid: str, scenario: str, work: Path) -> dict[str, Any]:
    proc = _spawn(url, "recover", wid, scenario, work)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _calls(work: Path) -> list[str]:
    path = work / "calls"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_sigkill_during_result_retries_keeps_the_attempt_count(db_url: str, tmp_path: Path):
    proc = _spawn(db_url, "run", "wf-poll", "result_retries", tmp_path, HANG_AT="poll-attempt3")
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready-poll-attempt3").exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _calls(tmp_path) == ["poll1", "before1", "poll2", "before2", "poll3"]

    result = _recover(db_url, "wf-poll", "result_retries", tmp_path)

    assert result["status"] == "succeeded", result
    assert result["result"] == "ready after 4"
    # Attempts 1 and 2 are recorded: the crashed attempt 3 runs again, then attempt 4;
    # before_retry never runs again for the recorded attempts.
    assert _calls(tmp_path) == [
        *["poll1", "before1", "poll2", "before2", "poll3"],
        *["poll3", "before3", "poll4"],
    ]


@pytest.mark.slow
def test_a_checkpointed_fallback_is_not_given_up_again_after_a_crash(db_url: str, tmp_path: Path):
    proc = _spawn(db_url, "run", "wf-give-up", "gives_up", tmp_path, CRASH_AT="after-give-up")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 17, err
    before = ["exhaust1", "exhaust2", "give_up2", "never1", "never2", "step3:wf-give-up:3"]
    assert _calls(tmp_path) == before

    result = _recover(db_url, "wf-give-up", "gives_up", tmp_path)

    assert result["status"] == "succeeded", result
    assert result["result"] == ["fallback", "RetriesExhausted:2", 30]
    # Step 1's fallback and step 2's failure are replayed (no attempt, no hook runs
    # again); only step 3, whose checkpoint was still held back, runs a second time.
    assert _calls(tmp_path) == [*before, "step3:wf-give-up:3"]
