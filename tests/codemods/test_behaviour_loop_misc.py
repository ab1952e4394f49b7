"""Run-time caps, guarded delays, ``super()`` in an extracted step and a give-up that
depends on a run-time count keep their behaviour once rewritten.

Each legacy function is a minimal reproduction of a shape read in public retry code
(an HTTP session method capping its backoff with an argument; a webhook sender that
sleeps only when a configured delay is set; a command runner that re-raises at once
when no retry was asked for, else raises its own "max retries" error; a database
write retried by leaving oslo's ``save_and_reraise_exception`` without re-raising). Each is run
before and after the rewrite against the fake of ``test_codemod_behaviour``, with
the run-time values at several points (0, below and above each other): same result,
calls, exception and sleeps (the legacy loop may sleep once more after its last
attempt, which the site's notes name).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from codemods.runner import transform_source
from tests.codemods.test_codemod_behaviour import SCENARIOS, Flaky, _run
from tests.codemods.test_codemod_behaviour import sleeps as sleeps  # the fixture

Call = Callable[[dict[str, Any], Flaky], Any]
#: name -> (legacy source, calls with different run-time values)
CASES: dict[str, tuple[str, list[Call]]] = {}


def case(name: str, source: str, calls: list[Call]) -> None:
    CASES[name] = (textwrap.dedent(source), calls)


def _request(retries: int, backoff: float, cap: float) -> Call:
    return lambda ns, dep: ns["request"](dep, "u", retries=retries, backoff=backoff, cap=cap)


case(
    "backoff_capped_by_an_argument",
    """
    import time

    def request(dep, url, retries=0, backoff=0.3, cap=10.0):
        attempt = 0
        while True:
            try:
                res = dep.call(url)
                break
            except ConnectionError as err:
                if attempt >= retries:
                    raise RuntimeError(f"cannot open {url}") from err
                attempt += 1
                time.sleep(min(cap, backoff * (2 ** (attempt - 1))))
        return res
    """,
    [
        _request(0, 0.3, 10.0),
        _request(4, 0.5, 2.0),  # the cap reached
        _request(4, 3.0, 1.0),  # a cap below the first delay
        _request(3, 1.0, 0.0),
        _request(-1, 1.0, 5.0),  # a negative count: one attempt, as before
    ],
)
case(
    "cap_from_an_attribute_never_reached_at_some_counts",
    """
    import time

    class Client:
        def __init__(self, dep, cap):
            self.dep, self.cap = dep, cap

        def fetch(self, url):
            for n in range(5):
                try:
                    return self.dep.call(url)
                except ConnectionError:
                    time.sleep(min(self.cap, 2 ** n))
            raise RuntimeError("gave up")
    """,
    [
        lambda ns, dep: ns["Client"](dep, 60).fetch("u"),
        lambda ns, dep: ns["Client"](dep, 3).fetch("u"),
        lambda ns, dep: ns["Client"](dep, 0.5).fetch("u"),
    ],
)


def _sender(retries: int, delay: Any) -> Call:
    def call(ns: dict[str, Any], dep: Flaky) -> Any:
        sender = ns["Sender"](dep, retries, delay)
        sender.send({"a": 1})
        return sender.sent

    return call


case(
    "delay_slept_only_when_set",
    """
    import logging
    import time

    log = logging.getLogger(__name__)

    class Sender:
        def __init__(self, dep, retries, delay):
            self.dep, self._retries, self._delay = dep, retries, delay
            self.sent = 0

        def send(self, payload):
            success = False
            attempts = 0
            while not success and attempts <= self._retries:
                if attempts:
                    if self._delay:
                        time.sleep(self._delay)
                    log.info("again")
                attempts += 1
                try:
                    self.dep.call(payload)
                    self.sent += 1
                    success = True
                except ConnectionError as exc:
                    log.warning("failed: %s", exc)
    """,
    [_sender(3, 0.5), _sender(3, 0), _sender(2, None), _sender(0, 1.0)],
)


def _fetcher(ns: dict[str, Any], dep: Flaky) -> Any:
    return ns["Fetcher"](dep).fetch("u")


case(
    "super_in_an_extracted_step",
    """
    import time

    class Base:
        def __init__(self, dep):
            self.dep = dep

        def get(self, url):
            return self.dep.call(url)

    class Fetcher(Base):
        def get(self, url):
            return "never this one"

        def fetch(self, url):
            url = url.strip()
            for attempt in range(3):
                try:
                    value = super().get(url)
                    break
                except ConnectionError:
                    time.sleep(1)
            else:
                raise RuntimeError("gave up")
            return value.upper()
    """,
    [_fetcher],
)


def _runner(retry_times: int) -> Call:
    def call(ns: dict[str, Any], dep: Flaky) -> Any:
        runner = ns["Runner"](dep, retry_times)
        return runner.run("x"), runner.seen

    return call


case(
    "reraise_when_no_retry_was_asked_else_own_error",
    """
    import time

    class MaxRetries(Exception):
        pass

    class Runner:
        def __init__(self, dep, retry_times):
            self.dep, self.retry_times, self.retry_sleep = dep, retry_times, 0.25
            self.seen = []
            self.on_retry = lambda runner, args, attempt, exc: self.seen.append(attempt)

        def run(self, *args):
            attempt = 0
            while True:
                try:
                    return self.dep.call(*args)
                except ConnectionError as exc:
                    if attempt < self.retry_times:
                        if self.on_retry:
                            self.on_retry(self, args, attempt, exc)
                        time.sleep(self.retry_sleep)
                        attempt += 1
                    else:
                        if attempt == 0:
                            raise
                        else:
                            raise MaxRetries(*exc.args)
    """,
    [_runner(0), _runner(1), _runner(3), _runner(-2)],
)


case(
    "decided_inside_save_and_reraise",
    """
    import sys

    class save_and_reraise_exception:
        # oslo's context manager, as it behaves: re-raise on leaving unless told not to
        def __init__(self):
            self.reraise = True

        def __enter__(self):
            self.value = sys.exc_info()[1]
            return self

        def __exit__(self, exc_type, exc, tb):
            if exc_type is None and self.reraise:
                raise self.value
            return False

    def add(dep, rows, max_retries=4):
        for attempt in range(max_retries):
            try:
                return dep.call(rows)
            except ConnectionError:
                with save_and_reraise_exception() as ctxt:
                    if attempt < max_retries - 1:
                        ctxt.reraise = False
                    else:
                        msg = "gave up after %(n)s retries" % {"n": max_retries}
                        print(msg)
    """,
    [
        lambda ns, dep: ns["add"](dep, "r"),
        lambda ns, dep: ns["add"](dep, "r", max_retries=1),
        lambda ns, dep: ns["add"](dep, "r", max_retries=6),
    ],
)


def _reader(retries: int, cap: float) -> Call:
    def call(ns: dict[str, Any], dep: Flaky) -> Any:
        ns["settings"].values["max_retry_delay"] = cap
        return ns["read"](dep, "u", retries=retries)

    return call


case(
    "delay_capped_by_a_configuration_read",
    """
    import time

    class Settings:
        def __init__(self):
            self.values = {}

        def get(self, section, key, default):
            return self.values.get(key, default)

    settings = Settings()

    def read(dep, url, retries=5):
        for i in range(retries):
            try:
                return dep.call(url)
            except ConnectionError:
                pass
            if i + 1 != retries:
                time.sleep(min(2 ** i, settings.get("Net", "max_retry_delay", 60)))
        return ""
    """,
    [_reader(1, 60), _reader(5, 3), _reader(6, 0.5)],
)


case(
    "retry_once_after_a_repair_else_a_fallback_when_not_fatal",
    """
    import time

    def fetch(dep, key, fatal=True):
        for first in (True, False):
            token = key.upper()
            try:
                return dep.call(token)
            except ConnectionError as e:
                if first and isinstance(e, ConnectionError) and "failure" in str(e):
                    time.sleep(0.5)
                    continue
                elif not fatal:
                    return "fallback"
                raise
    """,
    [
        lambda ns, dep: ns["fetch"](dep, "k"),
        lambda ns, dep: ns["fetch"](dep, "k", fatal=False),
    ],
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewritten_code_behaves_the_same(name: str, sleeps: list[float]) -> None:
    source, calls = CASES[name]
    rewritten, sites = transform_source(source)
    assert rewritten != source, f"{name} was not rewritten: {sites}"
    for index, call in enumerate(calls):
        for scenario in SCENARIOS:

            def make(scenario: int | str | None = scenario) -> Flaky:
                if scenario == "not retried":
                    return Flaky(1, error=LookupError)
                assert not isinstance(scenario, str)
                return Flaky(scenario)

            before = _run(source, call, make(), sleeps)
            after = _run(rewritten, call, make(), sleeps)
            where = f"{name}, call {index}, scenario {scenario!r}\n{rewritten}"
            assert after.result == before.result, where
            assert after.error == before.error, where
            assert after.calls == before.calls, where
            # a wait of 0 s is no wait: `if delay: sleep(delay)` skips it, the step sleeps 0
            waited = [s for s in after.sleeps if s]
            legacy = [s for s in before.sleeps if s]
            assert waited == legacy[: len(waited)], where
            assert len(legacy) - len(waited) in (0, 1), where


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_run_changes_nothing(name: str) -> None:
    source, _ = CASES[name]
    once, _ = transform_source(source)
    twice, _ = transform_source(once)
    assert twice == once
