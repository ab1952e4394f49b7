"""Attempts that are more than their ``try`` behave as before after the rewrite.

The legacy functions below reproduce shapes read in public code: a client made (or
picked from a rotation of servers) before every attempt, a value written into the
request before every attempt and renewed by the handler, a setup reading the attempt
counter, a give-up block reading the handler's message, and a ``finally`` that cleans up
after every attempt. Each runs before and after the codemod against a fake that fails
with a scripted list of exceptions: the result, the exception at the end, everything the
fake saw (in order) and the delays slept must be the same. The differences the rewrite
notes (an error raised by the setup or the cleanup, the cleanup's place among the work
between attempts) are shown, exactly, by their own tests at the end.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from codemods.runner import transform_source
from tests.codemods.test_behaviour_handlers import Domain, Outcome, Status, _copy
from tests.codemods.test_codemod_behaviour import sleeps as sleeps  # the fixture

_ids = itertools.count()


class Client:
    """A connection to one server, made by :meth:`Fake.new_client`."""

    def __init__(self, fake: Fake, server: str) -> None:
        self.fake = fake
        self.server = server
        self.headers: dict[str, str] = {}

    def get(self, key: str) -> str:
        return self.fake.call("get", self.server, dict(self.headers), key)


class Fake:
    """Scripted failures for :meth:`call` (and for :meth:`new_client`); records all it sees."""

    def __init__(self, failures: list[BaseException], broken: Sequence[BaseException] = ()) -> None:
        self.failures = list(failures)
        self.broken = list(broken)  # what new_client raises first
        self.seen: list[tuple[Any, ...]] = []
        self.servers = itertools.cycle(["a", "b", "c"])
        self.token = "t0"
        self.server = "none"

    def call(self, *args: Any) -> str:
        self.seen.append(("call", *args))
        if self.failures:
            raise self.failures.pop(0)
        return f"ok after {len([s for s in self.seen if s[0] == 'call'])} calls"

    def new_client(self) -> Client:
        self.seen.append(("new_client",))
        if self.broken:
            raise self.broken.pop(0)
        self.server = next(self.servers)
        return Client(self, self.server)

    def refresh(self) -> None:
        self.token = f"t{int(self.token[1:]) + 1}"
        self.seen.append(("refresh", self.token))

    def repair(self) -> None:
        self.seen.append(("repair",))

    def acquire(self) -> str:
        self.seen.append(("acquire",))
        return "conn"

    def release(self, conn: str) -> None:
        self.seen.append(("release", conn))


#: name -> (legacy source, how to call it, failure scripts)
CASES: dict[str, tuple[str, Callable[[dict[str, Any], Fake], Any], list[list[Any]]]] = {}

C, T = ConnectionError, TimeoutError


def case(
    name: str,
    source: str,
    call: Callable[[dict[str, Any], Fake], Any],
    scripts: list[list[Any]],
) -> None:
    CASES[name] = (textwrap.dedent(source), call, scripts)


case(
    "client_per_attempt_from_a_rotation",
    """
    import time

    def fetch(dep, key):
        for attempt in range(1, 4):
            client = dep.new_client()
            client.headers = {"token": dep.token}
            try:
                return client.get(key)
            except (ConnectionError, TimeoutError) as e:
                if attempt == 3:
                    raise Domain(f"gave up on {dep.server}: {e}")
                time.sleep(1)
            except PermissionError as e:
                raise Domain(f"denied: {e}")
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
    [[], [C()], [C(), T()], [C(), T(), C()], [C(), PermissionError()], [KeyError("x")]],
)
case(
    "value_written_before_each_attempt_renewed_by_the_handler",
    """
    def get(dep, path, query):
        query = dict(query)
        for is_first_attempt in (True, False):
            query["token"] = dep.token
            try:
                return dep.call(path, dict(query))
            except Status as e:
                if is_first_attempt and e.status == 401:
                    dep.refresh()
                    continue
                raise
    """,
    lambda ns, dep: ns["get"](dep, "/a", {"q": "1"}),
    [[], [Status(401)], [Status(401), Status(401)], [Status(500)], [Status(401), Status(503)]],
)
case(
    "setup_reads_the_attempt_counter",
    """
    import time

    def fetch(dep, key):
        for attempt in range(3):
            timeout = 5 * (attempt + 1)
            try:
                return dep.call(key, timeout)
            except TimeoutError:
                if attempt == 2:
                    raise
                time.sleep(1)
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
    [[], [T()], [T(), T()], [T(), T(), T()], [C()]],
)
case(
    "give_up_block_reads_the_handlers_message",
    """
    import time

    def fetch(dep, key):
        for attempt in range(1, 4):
            try:
                return dep.call(key)
            except ConnectionError as e:
                server = dep.server
                message = "cannot reach the server"
                if attempt == 3:
                    raise Domain(message, server, str(e)) from e
                time.sleep(1)
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
    [[], [C()], [C("1"), C("2"), C("3")], [T()]],
)
case(
    "finally_releases_after_every_attempt",
    """
    import time

    def fetch(dep, key):
        for attempt in range(3):
            conn = dep.acquire()
            try:
                return dep.call(key, conn)
            except ConnectionError:
                if attempt == 2:
                    raise
                time.sleep(2)
            finally:
                dep.release(conn)
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
    [[], [C()], [C(), C()], [C(), C(), C()], [T()]],
)


def _run(
    source: str,
    call: Callable[..., Any],
    failures: list[Any],
    sleeps: list[float],
    broken: Sequence[Any] = (),
) -> Outcome:
    namespace: dict[str, Any] = {
        "__name__": f"setup_behaviour_{next(_ids)}",
        "Status": Status,
        "Domain": Domain,
    }
    exec(compile(source, namespace["__name__"], "exec"), namespace)
    sleeps.clear()
    dep = Fake(failures, list(broken))
    try:
        result, error = call(namespace, dep), None
    except Exception as exc:
        result, error = None, (type(exc).__name__, exc.args)
    return Outcome(result, error, dep.seen, list(sleeps))


@pytest.mark.parametrize("name", sorted(CASES))
def test_setup_and_cleanup_behave_the_same_after_the_rewrite(
    name: str, sleeps: list[float]
) -> None:
    source, call, scripts = CASES[name]
    rewritten, sites = transform_source(source)
    assert any(s.action == "rewritten" for s in sites), f"{name} was not rewritten: {sites}"
    for script in scripts:
        before = _run(source, call, [_copy(e) for e in script], sleeps)
        after = _run(rewritten, call, [_copy(e) for e in script], sleeps)
        where = f"{name}, failures {script!r}\n{rewritten}"
        assert after.result == before.result, where
        assert after.error == before.error, where
        assert after.seen == before.seen, where
        assert [d for d in after.sleeps if d] == [d for d in before.sleeps if d], where


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_second_run_changes_nothing(name: str) -> None:
    source, _, _ = CASES[name]
    once, _ = transform_source(source)
    twice, sites = transform_source(once)
    assert twice == once
    assert all(s.action != "rewritten" for s in sites)


def test_noted_difference_an_error_of_the_setup_is_now_retried(sleeps: list[float]) -> None:
    """The legacy loop let an error of its setup through at once; the step retries it when
    the except clauses would have: exactly what the note says."""
    source, call, _ = CASES["client_per_attempt_from_a_rotation"]
    rewritten, sites = transform_source(source)
    assert any("`client = dep.new_client()`" in n and "let it through" in n for n in sites[0].notes)
    before = _run(source, call, [], sleeps, broken=[C("no route")])
    after = _run(rewritten, call, [], sleeps, broken=[C("no route")])
    assert before.error == ("ConnectionError", ("no route",))
    assert before.seen == [("new_client",)]
    assert after.result == "ok after 1 calls"  # the second client worked
    assert after.seen[:2] == [("new_client",), ("new_client",)]  # retried with a new client
    assert after.sleeps == [1.0]
    # an error the clauses do not catch goes through in both
    before = _run(source, call, [], sleeps, broken=[KeyError("x")])
    after = _run(rewritten, call, [], sleeps, broken=[KeyError("x")])
    assert after.error == before.error == ("KeyError", ("x",))


def test_noted_difference_the_cleanup_runs_before_the_work_between_attempts(
    sleeps: list[float],
) -> None:
    """A ``finally`` after a handler with a repair: the step releases first, then repairs;
    the legacy loop repaired first. Nothing else changes."""
    source = textwrap.dedent(
        """
        def fetch(dep, key):
            for attempt in range(3):
                conn = dep.acquire()
                try:
                    return dep.call(key, conn)
                except ConnectionError:
                    if attempt == 2:
                        raise
                    dep.repair()
                finally:
                    dep.release(conn)
        """
    )
    rewritten, sites = transform_source(source)
    assert sites[0].action == "rewritten"
    assert any("before the work between attempts" in n for n in sites[0].notes)
    call = CASES["finally_releases_after_every_attempt"][1]
    before = _run(source, call, [C()], sleeps)
    after = _run(rewritten, call, [C()], sleeps)
    assert before.result == after.result
    assert before.seen == [
        ("acquire",),
        ("call", "k", "conn"),
        ("repair",),
        ("release", "conn"),
        ("acquire",),
        ("call", "k", "conn"),
        ("release", "conn"),
    ]
    assert after.seen == [
        ("acquire",),
        ("call", "k", "conn"),
        ("release", "conn"),
        ("repair",),
        ("acquire",),
        ("call", "k", "conn"),
        ("release", "conn"),
    ]
