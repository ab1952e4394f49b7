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
import random
import textwrap
import time
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
