"""A policy read from run-time values must hold for small and empty values too.

Each legacy loop below treats a small or empty run-time value its own way
(``or``, ``min``/``max``, an ``if`` on a parameter); the probes the codemod
simulates with (6, 7, 12) fit a law the loop does not follow for 0..3. Each
was once rewritten wrongly, with no note: now each is refused with the value
that breaks the law. Plain run-time counts and delays are still rewritten.
"""

from __future__ import annotations

import textwrap
import time

import pytest

from codemods import decide
from codemods.runner import transform_source

WRONG_ONCE = {
    "or default": """
        def fetch(svc, tries=None):
            for i in range(tries or 5):
                try:
                    return svc.get()
                except ConnectionError:
                    time.sleep(1)
            raise RuntimeError("gave up")
    """,
    "min of a value": """
        def fetch(svc, limit):
            for i in range(min(limit, 4)):
                try:
                    return svc.get()
                except ConnectionError:
                    time.sleep(1)
            raise RuntimeError("gave up")
    """,
    "delay by flag": """
        def fetch(svc, slow):
            for i in range(3):
                try:
                    return svc.get()
                except ConnectionError:
                    time.sleep(5 if slow else 1)
            raise RuntimeError("gave up")
    """,
    "if on a parameter": """
        def fetch(svc, x):
            for i in range(3):
                try:
                    return svc.get()
                except ConnectionError:
                    if x > 2:
                        time.sleep(1)
                    else:
                        time.sleep(10)
            raise RuntimeError("gave up")
    """,
    "delay or default": """
        def fetch(svc, wait=None):
            for i in range(3):
                try:
                    return svc.get()
                except ConnectionError:
                    time.sleep(wait or 2)
            raise RuntimeError("gave up")
    """,
    "count if positive": """
        def fetch(svc, n):
            for i in range(n if n > 0 else 3):
                try:
                    return svc.get()
                except ConnectionError:
                    time.sleep(1)
            raise RuntimeError("gave up")
    """,
}


@pytest.mark.parametrize("source", WRONG_ONCE.values(), ids=list(WRONG_ONCE))
def test_a_law_that_small_values_break_is_refused(source: str) -> None:
    sites = decide("import time\n" + textwrap.dedent(source))
    assert sites, "the loop must be reported"
    assert all(s.action != "rewritten" for s in sites), [s.reason for s in sites]


STILL_REWRITTEN = {
    "count": """
        def fetch(svc, retries):
            for i in range(retries):
                try:
                    return svc.get()
                except ConnectionError:
                    time.sleep(1)
            raise RuntimeError("gave up")
    """,
    "count plus one": """
        class Client:
            def fetch(self):
                for i in range(self.max_retries + 1):
                    try:
                        return self.svc.get()
                    except ConnectionError:
                        if i == self.max_retries:
                            raise
                        time.sleep(self.backoff * 2 ** i)
    """,
}


def test_a_flag_in_the_loop_header_is_a_flag_not_a_count() -> None:
    """``range(1 if quick else 50)`` was once rewritten as if ``quick`` were a count,
    then refused; it is the flag form of a count, written as such."""
    source = """
        import time

        def wait_ready(svc, quick=False):
            for _ in range(1 if quick else 50):
                try:
                    return svc.ping()
                except ConnectionError:
                    time.sleep(0.2)
            raise RuntimeError("never came up")
    """
    (site,) = decide(textwrap.dedent(source))
    assert site.action == "rewritten", site.reason
    assert "max_attempts=1 if quick else 50" in str(site.policy)


@pytest.mark.parametrize("source", STILL_REWRITTEN.values(), ids=list(STILL_REWRITTEN))
def test_plain_run_time_values_are_still_rewritten(source: str) -> None:
    sites = decide("import time\n" + textwrap.dedent(source))
    assert [s.action for s in sites] == ["rewritten"], [s.reason for s in sites]


def test_an_assignment_expression_in_the_loop_head_is_reported_not_a_crash() -> None:
    source = """
        import time

        def fetch(svc, flag):
            for i in range(x := 4 if flag else 1):
                try:
                    return svc.get()
                except ConnectionError:
                    time.sleep(1)
            raise RuntimeError("gave up")
    """
    (site,) = decide(textwrap.dedent(source))
    assert site.action == "skipped" and "x :=" in site.reason


def test_a_loop_that_runs_once_below_a_count_of_1_keeps_that_with_max() -> None:
    """``range(max(1, n))`` and ``if count >= tries: raise`` after the attempt run once
    when the count is 0: ``max_attempts=max(1, ...)`` says exactly that."""
    source = """
        import time

        def fetch(svc, n):
            for i in range(max(1, n)):
                try:
                    return svc.get()
                except ConnectionError:
                    time.sleep(1)
            raise RuntimeError("gave up")

        def page(svc, tries):
            count = 0
            while True:
                try:
                    return svc.get()
                except ConnectionError:
                    count += 1
                    if count >= tries:
                        raise
                    time.sleep(2)
    """
    sites = decide(textwrap.dedent(source))
    assert [s.action for s in sites] == ["rewritten", "rewritten"]
    assert "max_attempts=max(1, n)" in str(sites[0].policy)
    assert "max_attempts=max(1, tries)" in str(sites[1].policy)
    assert not any("below 1" in note for s in sites for note in s.notes)


ZERO_MEANS_NO_LIMIT = """
import time


class Client:
    def __init__(self, svc, retries):
        self.svc, self._retries = svc, retries

    def request(self):
        _try = 0
        while True:
            try:
                return self.svc.get()
            except ConnectionError:
                _try += 1
                if self._retries != 0:
                    retry = _try < self._retries
                else:
                    retry = True
                if not retry:
                    raise
                time.sleep(2)
"""


class _Flaky:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def get(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"failure {self.calls}")
        return f"ok after {self.calls}"


@pytest.fixture(scope="module")
def zero_means_no_limit() -> str:
    [site] = decide(ZERO_MEANS_NO_LIMIT)
    assert site.action == "rewritten", site.reason
    assert "max_attempts=max(1, self._retries) if self._retries else None" in str(site.policy)
    rewritten, _ = transform_source(ZERO_MEANS_NO_LIMIT)
    return rewritten


@pytest.mark.parametrize("retries", [-1, 0, 1, 3])
@pytest.mark.parametrize("failures", [0, 2, 5])
def test_a_count_where_0_means_no_limit_keeps_that_with_or_none(
    retries: int, failures: int, zero_means_no_limit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``retry = tries < limit if limit != 0 else True``: 0 is "for ever", -1 one attempt.
    ``max_attempts=max(1, limit) if limit else None`` says exactly that; run before and
    after against a fake."""
    rewritten = zero_means_no_limit
    outcomes = []
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", lambda s: s and slept.append(s))
    for text in (ZERO_MEANS_NO_LIMIT, rewritten):
        slept.clear()
        namespace: dict = {"__name__": f"zero_unlimited_{len(outcomes)}"}
        exec(compile(text, namespace["__name__"], "exec"), namespace)
        svc = _Flaky(failures)
        try:
            result: object = namespace["Client"](svc, retries).request()
        except ConnectionError as exc:
            result = ("raised", str(exc))
        outcomes.append((result, svc.calls, list(slept)))
    assert outcomes[1] == outcomes[0], rewritten
