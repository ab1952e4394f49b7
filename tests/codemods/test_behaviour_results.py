"""Retries decided by a returned value keep their behaviour once rewritten.

Each legacy function is a minimal reproduction of a shape read in public code: a GET
retried until its status is 200 then an error, a send retried until its future
succeeds (the last future returned either way), a read retried until it is not
``None`` with a ``for``-``else`` default, a job state polled a counted number of times
(the last state returned), a ``while True`` counter raising with the last value. Each
is run before and after the rewrite against a fake that answers rejected values ``k``
times then an accepted one, always rejected ones, or raises an error on its second
call (and, where the loop's ``try`` retries failed calls too, fails with
``ConnectionError`` first): same result, exception, calls and sleeps (the legacy
loop may sleep once more after its last rejected value, which the site's notes
name).
"""

from __future__ import annotations

import asyncio
import itertools
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from codemods.runner import transform_source
from tests.codemods.test_codemod_behaviour import _run
from tests.codemods.test_codemod_behaviour import sleeps as sleeps  # the fixture


@dataclass(frozen=True)
class Reply:
    """An answer that a retry loop tests: an HTTP-like status, or a future."""

    n: int
    good: bool

    @property
    def status_code(self) -> int:
        return 200 if self.good else 503

    def json(self) -> dict[str, int]:
        return {"n": self.n}

    def succeeded(self) -> bool:
        return self.good


class Replies:
    """Answers a rejected value for the first ``rejected`` calls (``None``: always), then
    an accepted one; raises ``LookupError`` on call ``error_at``."""

    def __init__(
        self, rejected: int | None, kind: str, error_at: int | None = None, drops: int = 0
    ) -> None:
        self.rejected, self.kind, self.error_at = rejected, kind, error_at
        self.drops = drops  # calls that fail with ConnectionError first (retried)
        self.calls = 0

    def call(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls == self.error_at:
            raise LookupError(f"call {self.calls}")
        if self.calls <= self.drops:
            raise ConnectionError(f"call {self.calls}")
        good = self.rejected is not None and self.calls > self.rejected
        if self.kind == "reply":
            return Reply(self.calls, good)
        if self.kind == "value":
            return f"v{self.calls}" if good else None
        if self.kind == "state":
            return "finished" if good else f"running {self.calls}"
        return 201 if good else 503  # "code"

    async def acall(self, *args: Any) -> Any:
        return self.call(*args)


CASES: dict[str, tuple[str, str, Callable[[dict[str, Any], Replies], Any]]] = {}


def case(name: str, kind: str, source: str, call: Callable[[dict[str, Any], Replies], Any]) -> None:
    CASES[name] = (kind, textwrap.dedent(source), call)


case(
    "status_checked_then_an_error",
    "reply",
    """
    import time

    def fetch_profile(dep, user_id):
        for attempt in range(4):
            resp = dep.call(f"/users/{user_id}")
            if resp.status_code == 200:
                return resp.json()
            time.sleep(2)
        raise TimeoutError(user_id)
    """,
    lambda ns, dep: ns["fetch_profile"](dep, 7),
)
case(
    "future_kept_either_way",
    "reply",
    """
    import time

    def publish(dep, record):
        attempts = 0
        while attempts < 3:
            future = dep.call(record)
            if future.succeeded():
                break
            attempts += 1
            time.sleep(0.5 * 2**attempts)
        return future
    """,
    lambda ns, dep: ns["publish"](dep, "r"),
)
case(
    "for_else_default",
    "value",
    """
    import time

    def read_setting(dep, key):
        for attempt in range(5):
            value = dep.call(key)
            if value is not None:
                break
            time.sleep(1)
        else:
            value = "default"
        return value
    """,
    lambda ns, dep: ns["read_setting"](dep, "k"),
)
case(
    "last_state_returned",
    "state",
    """
    import time

    DONE = ("finished", "failed")

    def wait_for_job(dep, job_id):
        for _ in range(4):
            state = dep.call(job_id)
            if state in DONE:
                return state
            time.sleep(5)
        return state
    """,
    lambda ns, dep: ns["wait_for_job"](dep, 1),
)
case(
    "counter_raises_with_the_last_value",
    "code",
    """
    import time

    class Uploader:
        accepted = (200, 201)

        def push(self, dep, blob):
            tries = 0
            while True:
                tries += 1
                code = dep.call(blob)
                if code in self.accepted:
                    return code
                if tries >= 3:
                    raise RuntimeError(f"upload refused with {code}")
                time.sleep(1.5)
    """,
    lambda ns, dep: ns["Uploader"]().push(dep, "b"),
)
case(
    "status_checked_then_none",
    "reply",
    """
    import time

    def lookup(dep, key):
        for attempt in range(3):
            resp = dep.call(key)
            if resp.status_code == 200:
                return resp.json()["n"]
            time.sleep(0.5 * 2**attempt)
        return None
    """,
    lambda ns, dep: ns["lookup"](dep, "k"),
)

case(
    "failed_calls_retried_too",
    "reply",
    """
    import time

    def fetch(dep, url):
        for attempt in range(4):
            try:
                resp = dep.call(url)
            except ConnectionError as exc:
                print("call failed", exc)
                time.sleep(2)
                continue
            if resp.status_code == 200:
                return resp.json()
            time.sleep(2)
        raise RuntimeError("unavailable")
    """,
    lambda ns, dep: ns["fetch"](dep, "/u"),
)
case(
    "a_setup_before_the_try",
    "reply",
    """
    import time

    def fetch(dep, url):
        for i in range(4):
            request = {"url": url, "try": i}
            try:
                resp = dep.call(request["url"])
            except ConnectionError:
                time.sleep(2)
                continue
            if resp.status_code == 200:
                return resp.json()
            time.sleep(2)
        raise RuntimeError("unavailable")
    """,
    lambda ns, dep: ns["fetch"](dep, "/u"),
)
case(
    "async_status_checked",
    "reply",
    """
    import asyncio

    async def fetch(dep, url):
        for attempt in range(3):
            resp = await dep.acall(url)
            if resp.status_code == 200:
                return resp.json()
            await asyncio.sleep(1 + attempt)
        return None
    """,
    lambda ns, dep: asyncio.run(ns["fetch"](dep, "/a")),
)
case(
    "decided_inside_the_try",
    "state",
    """
    import time

    def query(dep, data):
        tries = 0
        while tries < 4:
            tries += 1
            try:
                state = dep.call(data)
                if state in ("finished", "failed"):
                    return state
            except ConnectionError as e:
                print("query failed", e)
            time.sleep(2)
        raise RuntimeError("retry limit reached")
    """,
    lambda ns, dep: ns["query"](dep, "d"),
)

SCENARIOS: list[tuple[int | None, int | None]] = [
    (0, None),
    (1, None),
    (2, None),
    (3, None),
    (4, None),
    (6, None),
    (None, None),
    (1, 2),  # a rejected value, then an exception: never retried
    (0, 1),
]


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewritten_result_retry_behaves_the_same(name: str, sleeps: list[float]) -> None:
    kind, source, call = CASES[name]
    rewritten, sites = transform_source(source)
    assert rewritten != source, f"{name} was not rewritten: {sites}"
    assert "retry_on_result=" in rewritten
    drops = (0, 1, 2, 4) if name in ("failed_calls_retried_too", "decided_inside_the_try") else (0,)
    for (rejected, error_at), drop in itertools.product(SCENARIOS, drops):
        before = _run(source, call, Replies(rejected, kind, error_at, drop), sleeps)  # type: ignore[arg-type]
        after = _run(rewritten, call, Replies(rejected, kind, error_at, drop), sleeps)  # type: ignore[arg-type]
        where = f"{name}, scenario {(rejected, error_at, drop)!r}\n{rewritten}"
        assert after.result == before.result, where
        assert after.error == before.error, where
        assert after.calls == before.calls, where
        assert after.sleeps == before.sleeps[: len(after.sleeps)], where
        assert len(before.sleeps) - len(after.sleeps) in (0, 1), where


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_run_changes_nothing(name: str) -> None:
    _, source, _ = CASES[name]
    once, _ = transform_source(source)
    twice, sites = transform_source(once)
    assert twice == once
    assert all(s.action != "rewritten" for s in sites)
