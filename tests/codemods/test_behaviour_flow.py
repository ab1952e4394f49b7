"""The control-flow shapes of retry loops keep their behaviour once rewritten.

Each legacy function is a minimal reproduction of a control-flow shape read in
public retry code (an attempt that returns or raises from an ``if``/``else``, a
``break`` ending every branch of the attempt's last ``if``, a plain loop over
data inside the attempt). Each is run before and after the rewrite against the
fake of ``test_codemod_behaviour``: same result, calls, exception and sleeps
(the legacy loop may sleep once more after its last attempt, which the site's
notes name).
"""

from __future__ import annotations

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


case(
    "attempt_raises_or_returns_in_an_if",
    """
    import time

    STRICT = True

    def fetch(dep, key):
        for i in range(4):
            try:
                ret = dep.call(key)
                if STRICT and not ret.startswith("ok"):
                    raise ValueError(ret)
                else:
                    return ret
            except (ValueError, ConnectionError):
                time.sleep(0.5)
        raise RuntimeError("gave up")
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
)
case(
    "break_ends_every_branch_of_the_attempt",
    """
    import time

    def read(dep, key):
        value = None
        for i in range(3):
            try:
                value = dep.call(key)
                if value.endswith("('k',)"):
                    value = value.upper()
                    break
                else:
                    value = value.lower()
                    break
            except ConnectionError:
                time.sleep(1)
        else:
            raise TimeoutError("no value")
        return value
    """,
    lambda ns, dep: ns["read"](dep, "k"),
)
case(
    "plain_loop_over_data_inside_the_attempt",
    """
    import time

    def add(dep, items):
        for attempt in range(3):
            try:
                done = []
                for key in items:
                    try:
                        done.append(dep.call(key) if key == "a" else key)
                    except KeyError:
                        raise ValueError(key)
                return done
            except ConnectionError:
                time.sleep(2)
        raise RuntimeError("gave up")
    """,
    lambda ns, dep: ns["add"](dep, ["a", "b"]),
)

case(
    "fallback_value_when_attempts_run_out",
    """
    import time

    def find(dep, wanted):
        retry_count = 3
        found = None
        for _ in range(retry_count):
            try:
                rows = [dep.call(wanted)]
                found = [r for r in rows if r.startswith("ok")][0]
            except (IndexError, ConnectionError):
                time.sleep(1)
            else:
                break
        return found
    """,
    lambda ns, dep: ns["find"](dep, "w"),
)
case(
    "last_error_returned_when_attempts_run_out",
    """
    import time

    class Worker:
        retries = 2
        wait = 0.25

        def process(self, dep, work):
            result = None
            for i in range(self.retries + 1):
                try:
                    result = dep.call(work)
                    break
                except ConnectionError as e:
                    print("attempt", i + 1, "failed:", e)
                    time.sleep(self.wait)
                    result = e
            return result if isinstance(result, str) else ("error", str(result))
    """,
    lambda ns, dep: ns["Worker"]().process(dep, "w"),
)

case(
    "final_unguarded_attempt_after_the_loop",
    """
    class Base:
        def request(self, dep, path):
            return dep.call(path)

    class Conn(Base):
        def request(self, dep, path):
            retries = 4
            tries = 0
            while tries < (retries - 1):
                try:
                    return super().request(dep, path)
                except ConnectionError as e:
                    if "failure" in str(e):
                        tries = tries + 1
                    else:
                        raise e

            return super().request(dep, path)
    """,
    lambda ns, dep: ns["Conn"]().request(dep, "/p"),
)
case(
    "final_attempt_after_a_sleeping_loop",
    """
    import time

    def fetch(dep):
        for attempt in range(3):
            try:
                return dep.call()
            except ConnectionError:
                time.sleep(1.5)
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)

case(
    "local_count_read_when_attempts_run_out",
    """
    import time

    def download(dep, url):
        saved = []
        max_retries = 3
        for attempt in range(max_retries):
            try:
                saved.append(dep.call(url))
                break
            except ConnectionError as e:
                if attempt == max_retries - 1:
                    raise RuntimeError(f"failed after {max_retries} attempts: {e}")
                time.sleep(2**attempt)
        return saved
    """,
    lambda ns, dep: ns["download"](dep, "/u"),
)

case(
    "success_flag_read_after_the_loop",
    """
    import time

    def send(dep, payload):
        success = False
        attempts = 0
        while not success and attempts < 4:
            attempts += 1
            try:
                response = dep.call(payload)
                success = True
            except ConnectionError as exc:
                print("could not call the hook", exc)
                time.sleep(2)
        if not success:
            raise RuntimeError("hook failed")
        return response
    """,
    lambda ns, dep: ns["send"](dep, "p"),
)
case(
    "success_flag_errors_swallowed_sleep_at_the_top",
    """
    import time

    def send(dep, payload):
        success = False
        attempts = 0
        while not success and attempts <= 3:
            if attempts:
                time.sleep(1)
            attempts += 1
            try:
                dep.call(payload)
                success = True
            except ConnectionError as exc:
                print("could not call the hook", exc)
        return "done"
    """,
    lambda ns, dep: ns["send"](dep, "p"),
)

case(
    "final_attempt_after_a_different_wait",
    """
    import time

    def fetch(dep):
        for attempt in range(3):
            try:
                return dep.call()
            except ConnectionError:
                if attempt < 2:
                    time.sleep(1)
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "value_flag_with_a_count",
    """
    import time

    def connect_db(dep, url):
        conn = None
        attempts = 0
        while conn is None and attempts < 4:
            attempts += 1
            try:
                conn = dep.call(url)
            except ConnectionError:
                time.sleep(1.5)
        if conn is None:
            raise RuntimeError("no database")
        return conn
    """,
    lambda ns, dep: ns["connect_db"](dep, "db"),
)
case(
    "value_flag_falsy_counted_in_the_handler",
    """
    import time

    def connect_db(dep, url):
        conn = None
        failures = 0
        while not conn:
            try:
                conn = dep.call(url)
            except ConnectionError:
                failures += 1
                if failures >= 3:
                    raise
                time.sleep(2)
        return conn
    """,
    lambda ns, dep: ns["connect_db"](dep, "db"),
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewritten_flow_behaves_the_same(name: str, sleeps: list[float]) -> None:
    source, call = CASES[name]
    rewritten, sites = transform_source(source)
    assert rewritten != source, f"{name} was not rewritten: {sites}"
    for scenario in SCENARIOS:

        def make(scenario: int | str | None = scenario) -> Flaky:
            if scenario == "not retried":
                return Flaky(1, error=LookupError)
            assert not isinstance(scenario, str)
            return Flaky(scenario)

        before = _run(source, call, make(), sleeps)
        after = _run(rewritten, call, make(), sleeps)
        # a step without delay calls sleep(0) between attempts: no wait
        before.sleeps = [d for d in before.sleeps if d]
        after.sleeps = [d for d in after.sleeps if d]
        where = f"{name}, scenario {scenario!r}\n{rewritten}"
        assert after.result == before.result, where
        assert after.error == before.error, where
        assert after.calls == before.calls, where
        assert after.sleeps == before.sleeps[: len(after.sleeps)], where
        assert len(before.sleeps) - len(after.sleeps) in (0, 1), where
        if name.startswith("final_"):  # the final attempt: no sleep is dropped
            assert after.sleeps == before.sleeps, where


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_run_changes_nothing(name: str) -> None:
    source, _ = CASES[name]
    once, _ = transform_source(source)
    twice, sites = transform_source(once)
    assert twice == once
    assert all(s.action != "rewritten" for s in sites)
