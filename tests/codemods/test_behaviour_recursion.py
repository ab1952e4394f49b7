"""Retries by recursion keep their behaviour once rewritten (codemods/_recursion.py).

Each legacy function is a minimal reproduction of a recursive retry read in public code
(a countdown argument callers may pass, a private counter going up with a delay from it,
a call whose value is dropped, a give-up after the ``try``, async). Each is run before and
after the rewrite against the fake of ``test_codemod_behaviour``: same result, calls,
exception and sleeps.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from codemods.runner import transform_source
from tests.codemods.test_codemod_behaviour import SCENARIOS, Flaky, _run
from tests.codemods.test_codemod_behaviour import sleeps as sleeps  # the fixture

CASES: dict[str, tuple[str, Callable[[dict[str, Any], Flaky], Any]]] = {}


def case(name: str, source: str, call: Callable[[dict[str, Any], Flaky], Any]) -> None:
    CASES[name] = (textwrap.dedent(source), call)


COUNTDOWN = """
    import time

    def fetch(dep, url, retries=3):
        try:
            return dep.call(url)
        except (ConnectionError, TimeoutError):
            if retries <= 0:
                raise
            time.sleep(2)
            return fetch(dep, url, retries - 1)
    """
case("countdown", COUNTDOWN, lambda ns, dep: ns["fetch"](dep, "/a"))
case("countdown_passed_by_the_caller", COUNTDOWN, lambda ns, dep: ns["fetch"](dep, "/a", 1))
case(
    "countdown_passed_by_keyword",
    COUNTDOWN,
    lambda ns, dep: ns["fetch"](dep, "/a", retries=0),
)
case(
    "private_counter_going_up",
    """
    import time

    def _download(dep, url, attempt=0):
        try:
            return dep.call(url)
        except ConnectionError:
            if attempt >= 4:
                raise
            time.sleep(0.5 * 2 ** attempt)
            return _download(dep, url, attempt + 1)

    def download(dep, url):
        return _download(dep, url)
    """,
    lambda ns, dep: ns["download"](dep, "/b"),
)
case(
    "value_dropped_returns_none",
    """
    import time

    def _await_server(dep, attempts=0):
        try:
            dep.call()
        except ConnectionError as e:
            if attempts > 3:
                raise e
            else:
                print("waiting for the server")
                time.sleep(4)
                _await_server(dep, attempts + 1)
    """,
    lambda ns, dep: ns["_await_server"](dep),
)
case(
    "method_gives_up_after_the_try",
    """
    import time

    class Client:
        def __init__(self, dep):
            self.dep = dep

        def send(self, request, retries=2):
            try:
                return self.dep.call(request)
            except OSError:
                if retries > 0:
                    time.sleep(3)
                    return self.send(request, retries - 1)
            raise RuntimeError("gave up")
    """,
    lambda ns, dep: ns["Client"](dep).send("r"),
)
case(
    "async_countdown_read_as_a_count",
    """
    import asyncio

    async def fetch(dep, url, retries=3):
        try:
            return await dep.acall(url)
        except ConnectionError:
            if not retries:
                raise
            await asyncio.sleep(1)
            return await fetch(dep, url, retries - 1)
    """,
    lambda ns, dep: asyncio.run(ns["fetch"](dep, "/c")),
)

# the loop forms the recursion is read as, written by hand: the loop codemod once read the
# first as a flag (2 attempts of 4) and put the second's retry branch at the call site
case(
    "loop_countdown_tested_as_truth",
    """
    import time

    def fetch(dep, url, retries=3):
        while True:
            try:
                return dep.call(url)
            except ConnectionError:
                if not retries:
                    raise
                time.sleep(1)
                retries -= 1
    """,
    lambda ns, dep: ns["fetch"](dep, "/d"),
)
case(
    "loop_retry_branch_then_give_up",
    """
    import time

    def fetch(dep, url):
        n = 0
        while True:
            try:
                return dep.call(url)
            except ConnectionError:
                if n < 3:
                    time.sleep(1)
                    n += 1
                    continue
                raise RuntimeError("gave up")
    """,
    lambda ns, dep: ns["fetch"](dep, "/e"),
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewritten_recursion_behaves_the_same(name: str, sleeps: list[float]) -> None:
    source, call = CASES[name]
    rewritten, sites = transform_source(source)
    assert [s.action for s in sites] == ["rewritten"], sites
    for scenario in SCENARIOS:

        def make(scenario: int | str | None = scenario) -> Flaky:
            if scenario == "not retried":
                return Flaky(1, error=LookupError)
            assert not isinstance(scenario, str)
            return Flaky(scenario)

        before = _run(source, call, make(), sleeps)
        after = _run(rewritten, call, make(), sleeps)
        where = f"{name}, scenario {scenario!r}\n{rewritten}"
        assert after == before, where


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_run_changes_nothing(name: str) -> None:
    source, _ = CASES[name]
    once, _ = transform_source(source)
    twice, sites = transform_source(once)
    assert twice == once
    assert all(s.action != "rewritten" for s in sites)


def test_a_failure_supplying_its_delay_is_retried_as_long(sleeps: list[float]) -> None:
    """No counter: the recursion retried while the failure said when (Retry-After)."""
    source = textwrap.dedent(
        """
        import time

        class RateLimited(Exception):
            retry_after = 7

        class Client:
            def __init__(self, dep):
                self.dep = dep

            def api_call(self, method, **kwargs):
                try:
                    return self.dep.call(method)
                except RateLimited as e:
                    time.sleep(e.retry_after)
                    return self.api_call(method, **kwargs)
        """
    )
    rewritten, sites = transform_source(source)
    assert [s.action for s in sites] == ["rewritten"], sites
    for failures in (0, 1, 3):
        outcomes = []
        for code in (source, rewritten):
            namespace: dict[str, Any] = {"__name__": "legacy_rate"}
            exec(compile(code, "legacy_rate", "exec"), namespace)
            dep = Flaky(failures, error=namespace["RateLimited"])
            sleeps.clear()
            result = namespace["Client"](dep).api_call("chat.post")
            outcomes.append((result, dep.calls, list(sleeps)))
        assert outcomes[0] == outcomes[1], rewritten


def test_a_delay_kept_in_a_name_and_a_rejected_error(sleeps: list[float]) -> None:
    """``delay = int(e.headers["Retry-After"]); sleep(delay); return self.f()``, and an
    error the handler does not retry: same result, calls, sleeps and exception."""
    source = textwrap.dedent(
        """
        import time

        class ApiError(Exception):
            def __init__(self, message, error="ratelimited"):
                super().__init__(message)
                self.error = error
                self.headers = {"Retry-After": "3"}

        class Rtm:
            def __init__(self, dep):
                self.dep = dep

            def issue_url(self):
                try:
                    return self.dep.call("rtm.connect")
                except ApiError as e:
                    if e.error == "ratelimited":
                        delay = int(e.headers.get("Retry-After", "30"))
                        time.sleep(delay)
                        return self.issue_url()
                    else:
                        raise e
        """
    )
    rewritten, sites = transform_source(source)
    assert [s.action for s in sites] == ["rewritten"], sites
    for failures, error in ((0, None), (1, None), (4, None), (1, "invalid_auth")):
        outcomes = []
        for code in (source, rewritten):
            namespace: dict[str, Any] = {"__name__": "legacy_rtm"}
            exec(compile(code, "legacy_rtm", "exec"), namespace)
            api_error = namespace["ApiError"]
            if error is None:
                dep = Flaky(failures, error=api_error)
            else:

                class Rejected(api_error):  # type: ignore[misc, valid-type]
                    def __init__(self, message: str, code: str = error) -> None:
                        super().__init__(message, code)

                dep = Flaky(failures, error=Rejected)
            sleeps.clear()
            try:
                result, raised = namespace["Rtm"](dep).issue_url(), None
            except Exception as exc:
                result, raised = None, (type(exc).__name__, exc.args)
            outcomes.append((result, raised, dep.calls, list(sleeps)))
        assert outcomes[0] == outcomes[1], rewritten
