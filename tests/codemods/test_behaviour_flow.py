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
        where = f"{name}, scenario {scenario!r}\n{rewritten}"
        assert after.result == before.result, where
        assert after.error == before.error, where
        assert after.calls == before.calls, where
        assert after.sleeps == before.sleeps[: len(after.sleeps)], where
        assert len(before.sleeps) - len(after.sleeps) in (0, 1), where


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_run_changes_nothing(name: str) -> None:
    source, _ = CASES[name]
    once, _ = transform_source(source)
    twice, sites = transform_source(once)
    assert twice == once
    assert all(s.action != "rewritten" for s in sites)
