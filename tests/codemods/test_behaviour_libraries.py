"""Library decorators rewritten into steps behave as before.

Each legacy function below reproduces an option of a retry library read in public
code (tenacity's ``wait_exponential(min=...)`` and ``wait_random_exponential``, a
decorator on a nested function whose policy reads the enclosing function's values,
``retry_if_result`` joined with exception types). Each runs with the real library
before the rewrite and as a step after it, against a fake that fails ``k`` times then
succeeds, always fails, or fails with an error that is not retried: the result, the
exception at the end, the calls and the delays slept must be the same.
``random.uniform`` draws a quarter of the way up its range, so a full-jitter draw
(from the floor) differs from a half-jitter one (from half the delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import sys
import textwrap
import time
import types
from collections.abc import Callable
from typing import Any

import pytest

from codemods.runner import transform_source
from tests.codemods.test_codemod_behaviour import _run


class Flaky:
    """Fails ``failures`` times with ``error`` (``None``: forever), then returns ``value``;
    ``falsy`` calls first return ``False`` (not ready) before any failure."""

    def __init__(
        self, failures: int | None, error: type[BaseException] = ConnectionError, falsy: int = 0
    ) -> None:
        self.failures = failures
        self.error = error
        self.falsy = falsy
        self.calls = 0

    def call(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls <= self.falsy:
            return False
        if self.failures is None or self.calls - self.falsy <= self.failures:
            raise self.error(f"failure {self.calls}")
        return f"ok after {self.calls} calls{args!r}"


CASES: dict[str, tuple[str, Callable[[dict[str, Any], Flaky], Any]]] = {}


def case(name: str, source: str, call: Callable[[dict[str, Any], Flaky], Any]) -> None:
    CASES[name] = (textwrap.dedent(source), call)


case(
    "tenacity_exponential_min",
    """
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    @retry(
        stop=stop_after_attempt(5),
        wait=wait_exponential(multiplier=0.5, min=1.5, max=3),
        retry=retry_if_exception_type(ConnectionError),
        reraise=True,
    )
    def fetch(dep, key):
        return dep.call(key)
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
)

case(
    "tenacity_wait_chain_of_fixed_waits",
    """
    from tenacity import retry, stop_after_attempt, wait_chain, wait_fixed

    @retry(
        stop=stop_after_attempt(5),
        wait=wait_chain(wait_fixed(1), wait_fixed(5), wait_fixed(30)),
        reraise=True,
    )
    def fetch(dep, key):
        return dep.call(key)
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
)

case(
    "tenacity_random_exponential_full_jitter",
    """
    import tenacity

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(6),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=3, min=0.2),
        retry=tenacity.retry_if_exception_type(ConnectionError),
        reraise=True,
    )
    def fetch(dep, key):
        return dep.call(key)
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
)

case(
    "tenacity_nested_runtime_policy_result_or_exception",
    """
    import tenacity

    class Agent:
        def __init__(self, dep, retries, interval):
            self.dep, self.retries, self.interval = dep, retries, interval

        def wait_until_ready(self, node):
            wait = self.interval
            attempts = self.retries + 1

            @tenacity.retry(
                stop=tenacity.stop_after_attempt(attempts),
                retry=(tenacity.retry_if_result(lambda result: not result)
                       | tenacity.retry_if_exception_type(ConnectionError)),
                wait=tenacity.wait_fixed(wait),
                reraise=True)
            def _ready(node):
                return self.dep.call(node)

            try:
                return _ready(node)
            except Exception as exc:
                return f"gave up: {type(exc).__name__}"
    """,
    # the difference the site's notes name: a result still rejected at the end raises
    # toolkit.RetriesExhausted instead of tenacity.RetryError
    lambda ns, dep: (
        ns["Agent"](dep, 4, 0.5).wait_until_ready("n1").replace("RetryError", "RetriesExhausted")
    ),
)

case(
    "tenacity_local_stop_and_wait",
    """
    import tenacity

    class Locker:
        def __init__(self, dep, interval):
            self.dep, self.interval = dep, interval

        def lock(self, node):
            stop = tenacity.stop_after_attempt(4)
            wait = tenacity.wait_fixed(self.interval)

            @tenacity.retry(
                retry=tenacity.retry_if_exception_type(ConnectionError),
                stop=stop,
                wait=wait,
                reraise=True,
            )
            def reserve():
                return self.dep.call(node)

            return reserve()
    """,
    lambda ns, dep: ns["Locker"](dep, 2.5).lock("n1"),
)

for patient, retry in ((True, False), (False, True), (False, False)):
    case(
        f"tenacity_stop_chosen_by_branches_patient_{patient}_retry_{retry}",
        """
        import tenacity

        class Task:
            def __init__(self, dep, patient, retry):
                self.dep, self.patient, self.retry = dep, patient, retry

            def lock(self, node):
                if self.patient:
                    stop_after = tenacity.stop_never
                elif self.retry:
                    stop_after = tenacity.stop_after_attempt(3)
                else:
                    stop_after = tenacity.stop_after_attempt(1)

                @tenacity.retry(
                    retry=tenacity.retry_if_exception_type(ConnectionError),
                    stop=stop_after,
                    wait=tenacity.wait_fixed(0.5),
                    reraise=True,
                )
                def reserve():
                    return self.dep.call(node)

                return reserve()
        """,
        lambda ns, dep, patient=patient, retry=retry: ns["Task"](dep, patient, retry).lock("n"),
    )

case(
    "tenacity_factory_returning_the_decorator",
    """
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    def _create_retry_decorator():
        return retry(
            reraise=True,
            stop=stop_after_attempt(4),
            wait=wait_exponential(multiplier=1, min=1.5, max=3),
            retry=retry_if_exception_type(ConnectionError),
        )

    def completion_with_retry(dep, key):
        retry_decorator = _create_retry_decorator()

        @retry_decorator
        def _completion_with_retry(key):
            return dep.call(key)

        return _completion_with_retry(key)
    """,
    lambda ns, dep: ns["completion_with_retry"](dep, "k"),
)


case(
    "tenacity_before_hook_from_the_second_attempt",
    """
    import tenacity

    class Resource:
        def __init__(self, dep, limit):
            self.dep, self.limit, self.reloads, self.key = dep, limit, [], 0

        def replace(self, template):
            attempts = max(self.limit, 0) + 1

            def refresh(retry_state):
                if retry_state.attempt_number > 1:
                    self.reloads.append(retry_state.attempt_number)
                    self.key = retry_state.attempt_number * 10

            @tenacity.retry(
                stop=tenacity.stop_after_attempt(attempts),
                retry=tenacity.retry_if_exception_type(ConnectionError),
                before=refresh,
                wait=tenacity.wait_random(max=2),
                reraise=True)
            def create():
                return self.dep.call(template, self.key)

            try:
                return create(), self.reloads
            except ConnectionError as exc:
                return f"gave up: {exc}", self.reloads
    """,
    lambda ns, dep: ns["Resource"](dep, 4).replace("t"),
)

case(
    "tenacity_retry_error_handler_of_a_result_poll",
    """
    import tenacity

    def settle(dep, node):
        try:
            return _until_ready(dep, node)
        except tenacity.RetryError:
            return "not ready, going on"

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(4),
        wait=tenacity.wait_fixed(2),
        retry=tenacity.retry_if_result(lambda ready: not ready))
    def _until_ready(dep, node):
        return dep.call(node)
    """,
    lambda ns, dep: ns["settle"](dep, "n1"),
)

case(
    "backoff_nested_runtime_values_full_jitter",
    """
    import backoff

    def fatal(exc):
        return "failure 4" in str(exc)

    class Sender:
        def __init__(self, dep, retries, factor):
            self.dep, self.retries, self.factor = dep, retries, factor

        def send(self, batch):
            @backoff.on_exception(
                backoff.expo, ConnectionError, max_tries=self.retries + 1, factor=self.factor,
                giveup=fatal)
            def send_request():
                return self.dep.call(batch)

            return send_request()
    """,
    lambda ns, dep: ns["Sender"](dep, 8, 0.5).send("b"),  # gives up on failure 4
)

case(
    "backoff_nested_runtime_values_full_jitter_exhausted",
    """
    import backoff

    def fatal(exc):
        return "failure 4" in str(exc)

    class Sender:
        def __init__(self, dep, retries, factor):
            self.dep, self.retries, self.factor = dep, retries, factor

        def send(self, batch):
            @backoff.on_exception(
                backoff.expo, ConnectionError, max_tries=self.retries + 1, factor=self.factor,
                giveup=fatal)
            def send_request():
                return self.dep.call(batch)

            return send_request()
    """,
    lambda ns, dep: ns["Sender"](dep, 2, 1.5).send("b"),  # 3 attempts
)

case(
    "backoff_random_jitter_and_max_value",
    """
    import backoff

    @backoff.on_exception(backoff.expo, (ConnectionError, TimeoutError), max_tries=7,
                          jitter=backoff.random_jitter, max_value=5)
    def push(dep, item):
        return dep.call(item)
    """,
    lambda ns, dep: ns["push"](dep, "i"),
)

case(
    "tenacity_nested_runtime_attempts_uncapped_exponential",
    """
    import tenacity

    class Poller:
        def __init__(self, dep, tries):
            self.dep, self.tries = dep, tries

        def poll(self):
            @tenacity.retry(stop=tenacity.stop_after_attempt(self.tries),
                            wait=tenacity.wait_exponential(multiplier=0.5), reraise=True)
            def once():
                return self.dep.call()

            return once()
    """,
    lambda ns, dep: ns["Poller"](dep, 10).poll(),
)

case(
    "backoff_on_giveup_that_logs",
    """
    import backoff

    GAVE_UP = []

    def note_giveup(details):
        GAVE_UP.append((details["tries"], str(details["exception"])))

    @backoff.on_exception(backoff.constant, ConnectionError, max_tries=4, interval=1.5,
                          jitter=None, on_giveup=note_giveup)
    def fetch(dep, key):
        return dep.call(key)

    def fetch_or_report(dep):
        try:
            return fetch(dep, "k")
        except ConnectionError as exc:
            return f"raised {exc!r} after {GAVE_UP}"
    """,
    lambda ns, dep: ns["fetch_or_report"](dep),
)

case(
    "backoff_on_giveup_that_raises",
    """
    import backoff

    def fail(details):
        raise RuntimeError(f"gave up after {details['tries']} tries: {details['exception']}")

    @backoff.on_exception(backoff.expo, ConnectionError, max_tries=3, factor=0.5, on_giveup=fail)
    def fetch(dep, key):
        return dep.call(key)
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
)

case(
    "backoff_on_giveup_reads_the_call_arguments",
    """
    import backoff

    def fail(details):
        key = details["args"][1]
        raise RuntimeError(f"gave up on {key} ({details['kwargs']}) after {details['tries']}")

    @backoff.on_exception(backoff.constant, ConnectionError, max_tries=3, interval=2,
                          jitter=None, on_giveup=fail)
    def fetch(dep, key, *, region="eu"):
        return dep.call(key, region)

    def fetch_it(dep):
        return fetch(dep, "k", region="us")
    """,
    lambda ns, dep: ns["fetch_it"](dep),
)

case(
    "backoff_on_backoff_logs_each_retry",
    """
    import backoff

    SEEN = []

    def backing_off(details):
        SEEN.append((details["tries"], details["wait"], str(details["exception"]),
                     details["args"][2:], dict(details["kwargs"])))

    class Client:
        @backoff.on_exception(backoff.expo, ConnectionError, max_tries=5, factor=0.5,
                              jitter=None, on_backoff=backing_off)
        def get(self, dep, key, *, timeout=3):
            return dep.call(key)

    def get_and_report(dep):
        try:
            value = Client().get(dep, "k", timeout=9)
        except ConnectionError as exc:
            value = f"raised {exc!r}"
        return value, SEEN
    """,
    lambda ns, dep: ns["get_and_report"](dep),
)

case(
    "backoff_on_backoff_lambda",
    """
    import backoff

    SEEN = []

    @backoff.on_exception(backoff.constant, ConnectionError, max_tries=3, interval=1,
                          jitter=None, on_backoff=lambda d: SEEN.append((d["tries"], d["wait"])))
    def fetch(dep, key):
        return dep.call(key)

    def fetch_and_report(dep):
        try:
            return fetch(dep, "k"), SEEN
        except ConnectionError as exc:
            return f"raised {exc!r}", SEEN
    """,
    lambda ns, dep: ns["fetch_and_report"](dep),
)

case(
    "tenacity_before_sleep_hook_reads_the_state",
    """
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    SEEN = []

    def note(state):
        SEEN.append((state.attempt_number, str(state.outcome.exception()),
                     state.next_action.sleep, state.args[2:], dict(state.kwargs)))

    class Client:
        @retry(stop=stop_after_attempt(4), wait=wait_exponential(multiplier=0.5, max=3),
               retry=retry_if_exception_type(ConnectionError), before_sleep=note, reraise=True)
        def get(self, dep, key, *, timeout=3):
            return dep.call(key)

    def get_and_report(dep):
        try:
            value = Client().get(dep, "k", timeout=9)
        except ConnectionError as exc:
            value = f"raised {exc!r}"
        return value, SEEN
    """,
    lambda ns, dep: ns["get_and_report"](dep),
)

case(
    "tenacity_retry_error_callback_reads_the_state",
    """
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

    def fallback(state):
        return ("fallback", state.attempt_number, str(state.outcome.exception()),
                state.args[1:], dict(state.kwargs))

    @retry(stop=stop_after_attempt(3), wait=wait_fixed(0.5),
           retry=retry_if_exception_type(ConnectionError), retry_error_callback=fallback)
    def fetch(dep, key, *, timeout=3):
        return dep.call(key)
    """,
    lambda ns, dep: ns["fetch"](dep, "k", timeout=4),
)

case(
    "tenacity_retry_error_callback_returns_the_last_value",
    """
    from tenacity import retry, retry_if_result, stop_after_attempt, wait_fixed

    @retry(stop=stop_after_attempt(4), wait=wait_fixed(1), retry=retry_if_result(lambda r: not r),
           retry_error_callback=lambda rs: ("last", rs.outcome.result(), rs.attempt_number))
    def ready(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["ready"](dep),
)

case(
    "tenacity_retrying_block_before_sleep_reads_the_state",
    """
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

    SEEN = []

    def note(rs):
        SEEN.append((rs.attempt_number, rs.args, rs.kwargs, rs.next_action.sleep))

    def fetch(dep):
        for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_fixed(0.5),
                                retry=retry_if_exception_type(ConnectionError),
                                before_sleep=note, reraise=True):
            with attempt:
                return dep.call("k"), SEEN
    """,
    lambda ns, dep: ns["fetch"](dep),
)

case(
    "backoff_call_forms",
    """
    import backoff

    retry_conn = backoff.on_exception(backoff.expo, ConnectionError, max_tries=3, factor=0.5,
                                      jitter=None)

    def make_retry():
        return backoff.on_exception(backoff.constant, ConnectionError, max_tries=2, interval=3,
                                    jitter=None)

    def _once(dep, key):
        return dep.call(key)

    fetch = backoff.on_exception(backoff.constant, ConnectionError, max_tries=4, interval=1,
                                 jitter=None)(_once)

    @retry_conn
    def get(dep, key):
        return dep.call(key)

    @make_retry()
    def put(dep, key):
        return dep.call(key)

    def run_all(dep):
        out = []
        for call in (fetch, get, put):
            try:
                out.append(call(dep, "k"))
            except ConnectionError as exc:
                out.append(f"raised {exc!r}")
        return out
    """,
    lambda ns, dep: ns["run_all"](dep),
)

case(
    "retry_package_retry_call",
    """
    from retry.api import retry_call

    def once(dep, key, *, region="eu"):
        return dep.call(key, region)

    def fetch(dep):
        return retry_call(once, fargs=[dep, "k"], fkwargs={"region": "us"},
                          exceptions=ConnectionError, tries=4, delay=0.5, backoff=2, logger=None)
    """,
    lambda ns, dep: ns["fetch"](dep),
)

case(
    "stamina_retry_context_block",
    """
    import stamina

    def fetch(dep, key):
        \"\"\"The whole body is the block.\"\"\"
        for attempt in stamina.retry_context(on=ConnectionError, attempts=4, wait_initial=0.5,
                                             wait_max=3, wait_jitter=0):
            with attempt:
                return dep.call(key)
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
)

case(
    "oslo_retry_decorator",
    """
    from oslo_service import loopingcall

    @loopingcall.RetryDecorator(
        max_retry_count=4, inc_sleep_time=0.5, max_sleep_time=1.2, exceptions=(ConnectionError,))
    def create(dep, spec):
        return dep.call(spec)
    """,
    lambda ns, dep: ns["create"](dep, "vm"),
)


class _RetryDecorator:
    """A reproduction of oslo.service's ``loopingcall.RetryDecorator`` semantics (its
    counters live on the decorator object and are never reset; the looping call's
    green thread is left out): after a failure in ``exceptions`` the retry count goes
    up by one and it sleeps ``min(count * inc_sleep_time, max_sleep_time)``, until the
    count reaches ``max_retry_count`` (-1: never)."""

    def __init__(
        self,
        max_retry_count: int = -1,
        inc_sleep_time: float = 10,
        max_sleep_time: float | None = 60,
        exceptions: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._max, self._inc, self._cap, self._exceptions = (
            max_retry_count,
            inc_sleep_time,
            max_sleep_time,
            exceptions,
        )
        self._retry_count = 0
        self._sleep_time = 0.0

    def __call__(self, f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def func(*args: Any, **kwargs: Any) -> Any:
            while True:
                try:
                    return f(*args, **kwargs)
                except self._exceptions:
                    if self._max != -1 and self._retry_count >= self._max:
                        raise
                    self._retry_count += 1
                    self._sleep_time += self._inc
                    delay = self._sleep_time
                    time.sleep(delay if self._cap is None else min(delay, self._cap))

        return func


def test_tenacity_before_hook_raising_is_the_noted_difference(sleeps: list[float]) -> None:
    """The note of the ``before=`` rewrite: the hook runs before the wait, so when it
    raises (ending the retries, before and after) the step has not waited."""
    source = textwrap.dedent(
        """
        import tenacity

        def replace(dep):
            def check(state):
                if state.attempt_number >= 2:
                    raise LookupError(f"taken before attempt {state.attempt_number}")

            @tenacity.retry(stop=tenacity.stop_after_attempt(5), before=check,
                            wait=tenacity.wait_fixed(3), reraise=True)
            def create():
                return dep.call()

            return create()
        """
    )
    rewritten, sites = transform_source(source)
    assert "now without that wait" in sites[0].notes[0]
    before = _run(source, lambda ns, dep: ns["replace"](dep), Flaky(2), sleeps)
    after = _run(rewritten, lambda ns, dep: ns["replace"](dep), Flaky(2), sleeps)
    assert before.error == after.error == ("LookupError", ("taken before attempt 2",))
    assert before.calls == after.calls == 1
    assert (before.sleeps, after.sleeps) == ([3.0], [])


@pytest.fixture(autouse=True)
def oslo_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """``from oslo_service import loopingcall`` finds the reproduction above."""
    package = types.ModuleType("oslo_service")
    loopingcall = types.ModuleType("oslo_service.loopingcall")
    loopingcall.RetryDecorator = _RetryDecorator  # type: ignore[attr-defined]
    package.loopingcall = loopingcall  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "oslo_service", package)
    monkeypatch.setitem(sys.modules, "oslo_service.loopingcall", loopingcall)


def test_oslo_retry_counter_shared_by_calls_is_the_noted_difference(sleeps: list[float]) -> None:
    """The note of the oslo.service rewrite: the legacy decorator's retries are spent for
    good by the first call; each call of the step gets the whole budget."""
    source, _ = CASES["oslo_retry_decorator"]
    rewritten, sites = transform_source(source)
    assert "never reset" in sites[0].notes[0]

    def twice(ns: dict[str, Any], dep: Flaky) -> Any:
        with contextlib.suppress(ConnectionError):
            ns["create"](dep, "vm")
        dep.failures = dep.calls + 1  # the second call fails once, then succeeds
        return ns["create"](dep, "vm")

    before = _run(source, twice, Flaky(None), sleeps)
    after = _run(rewritten, twice, Flaky(None), sleeps)
    assert before.error == ("ConnectionError", ("failure 6",)) and before.calls == 6
    assert after.result == "ok after 7 calls('vm',)" and after.sleeps[-1] == 0.5


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every sleep instead of sleeping; random draws a quarter up their range."""
    recorded: list[float] = []

    def fake_sleep(seconds: float) -> None:
        recorded.append(round(seconds, 9))

    async def fake_async_sleep(seconds: float, *args: Any) -> None:
        recorded.append(round(seconds, 9))

    monkeypatch.setattr(time, "sleep", fake_sleep)
    monkeypatch.setattr(asyncio, "sleep", fake_async_sleep)
    monkeypatch.setattr(random, "uniform", lambda low, high: low + (high - low) / 4)
    monkeypatch.setattr(random, "random", lambda: 0.25)  # tenacity's wait_random
    return recorded


SCENARIOS: list[Any] = [0, 1, 2, 3, 5, 7, None, "not retried", ("falsy", 2), ("falsy", 9)]


def _make(scenario: Any) -> Flaky:
    if scenario == "not retried":
        return Flaky(1, error=LookupError)
    if isinstance(scenario, tuple):
        return Flaky(0, falsy=scenario[1])
    return Flaky(scenario)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewritten_library_code_behaves_the_same(name: str, sleeps: list[float]) -> None:
    source, call = CASES[name]
    rewritten, sites = transform_source(source)
    assert rewritten != source, f"{name} was not rewritten: {sites}"
    assert "from toolkit import" in rewritten
    for scenario in SCENARIOS:
        if scenario is None and "patient_True" in name:
            continue  # retries forever, before and after
        before = _run(source, call, _make(scenario), sleeps)
        after = _run(rewritten, call, _make(scenario), sleeps)
        where = f"{name}, scenario {scenario!r}\n{rewritten}"
        assert after == before, where


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_run_changes_nothing(name: str) -> None:
    source, _ = CASES[name]
    once, _ = transform_source(source)
    twice, sites = transform_source(once)
    assert twice == once
    assert all(s.action != "rewritten" for s in sites)
