"""The except handlers of rewritten retry loops behave as before.

Each legacy function below reproduces a handler shape read in public code: several
handlers in order (one retries, one maps the failure to a domain error, one re-raises
between two that retry), a test whose rejection raises a rebuilt exception or returns
a fallback, an ``if/elif`` chain of domain errors on an error code, and the work a
handler does before the next attempt (``del self.connection``, an ``if`` on the
exception, a callback told the attempt number). Each is run before and after the
codemod against a fake that fails with a scripted list of exceptions: the result, the
exception at the end, every call the fake saw and the delays slept must be the same
(the legacy loop may sleep once more after its last attempt only where the site's
notes say so).
"""

from __future__ import annotations

import itertools
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from codemods.runner import transform_source

_ids = itertools.count()


class Status(Exception):
    """A failure carrying a status code and a message (HTTP, a storage API)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


class Gone(ConnectionError):
    """A connection error of a kind a handler treats specially."""


class FloodWait(Exception):
    """The server says how long to wait before the next request."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class Domain(Exception):
    """The project's own error a handler maps a failure to."""


class Fake:
    """Raises the scripted failures one per call, then returns a value; records what the
    code under test does to it (calls, repairs, callbacks, deleted attributes)."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = list(failures)
        self.seen: list[tuple[Any, ...]] = []
        self.connection = "open"
        self.pending: list[str] = []

    def call(self, *args: Any) -> str:
        self.seen.append(("call", *args))
        if self.failures:
            raise self.failures.pop(0)
        return f"ok after {len([s for s in self.seen if s[0] == 'call'])} calls"

    def repair(self, *args: Any) -> None:
        self.seen.append(("repair", *args))

    def callback(self, attempt: int, error: BaseException) -> None:
        self.seen.append(("callback", attempt, type(error).__name__))

    def __delattr__(self, name: str) -> None:
        self.seen.append(("del", name))
        object.__delattr__(self, name)


@dataclass
class Outcome:
    result: Any
    error: tuple[str, tuple[Any, ...]] | None
    seen: list[tuple[Any, ...]]
    sleeps: list[float]


#: name -> (legacy source, how to call it, failure scripts)
CASES: dict[str, tuple[str, Callable[[dict[str, Any], Fake], Any], list[list[Any]]]] = {}

C = ConnectionError


def case(
    name: str,
    source: str,
    call: Callable[[dict[str, Any], Fake], Any],
    scripts: list[list[Any]],
) -> None:
    CASES[name] = (textwrap.dedent(source), call, scripts)


case(
    "retry_handler_then_a_handler_mapping_to_a_domain_error",
    """
    import time

    def fetch(dep, key):
        for attempt in range(1, 4):
            try:
                return dep.call(key)
            except (ConnectionError, TimeoutError) as e:
                if attempt == 3:
                    raise Domain(f"gave up: {e}")
                time.sleep(1)
            except PermissionError as e:
                raise Domain(f"denied: {e}")
    """,
    lambda ns, dep: ns["fetch"](dep, "k"),
    [
        [],
        [C("a")],
        [C("a"), TimeoutError("b")],
        [C("a"), C("b"), C("c")],
        [C("a"), PermissionError("no")],
        [PermissionError("no")],
        [KeyError("other")],
    ],
)
case(
    "a_re_raising_handler_between_two_that_retry",
    """
    import time

    def fetch(dep):
        for attempt in range(4):
            try:
                return dep.call()
            except ConnectionError:
                if attempt == 3:
                    raise
                time.sleep(0.5)
            except OSError:
                raise
            except Exception:
                if attempt == 3:
                    raise
                time.sleep(0.5)
    """,
    lambda ns, dep: ns["fetch"](dep),
    [
        [],
        [C("a"), KeyError("b")],
        [C("a"), FileNotFoundError("f")],
        [KeyError("a"), KeyError("b"), KeyError("c"), KeyError("d")],
        [FileNotFoundError("f")],
    ],
)
case(
    "rejected_failure_raised_rebuilt_and_a_domain_error_when_attempts_run_out",
    """
    import time

    def clone(dep, retries, interval):
        for attempt in range(1, retries + 1):
            try:
                dep.call(attempt)
                break
            except Status as e:
                if 'busy' in e.message:
                    if attempt == retries:
                        msg = "timed out after %s tries"
                        raise Domain(msg % retries)
                    time.sleep(interval)
                else:
                    raise Status(e.status, e.message.upper())
        return "cloned"
    """,
    lambda ns, dep: ns["clone"](dep, 3, 2),
    [
        [],
        [Status(1, "device busy")],
        [Status(1, "device busy")] * 3,
        [Status(1, "device busy"), Status(2, "no space")],
    ],
)
case(
    "error_code_read_once_then_domain_errors_by_code",
    """
    import time

    def fetch(dep, url):
        last = None
        for i in range(3):
            try:
                return dep.call(url)
            except Status as err:
                last = err
                code = err.status
                if code == 404:
                    raise Domain("not found: " + url)
                elif code == 403:
                    raise PermissionError(url)
                time.sleep(1)
        raise Domain("failed: %s" % last)
    """,
    lambda ns, dep: ns["fetch"](dep, "/a"),
    [
        [],
        [Status(500)],
        [Status(500), Status(404)],
        [Status(403)],
        [Status(500), Status(502), Status(503)],
    ],
)
case(
    "a_failure_answered_with_a_fallback_value",
    """
    import time

    def read(dep, missing_ok):
        for i in range(3):
            try:
                return dep.call()
            except Status as e:
                if e.status == 404 and missing_ok:
                    return ""
                if i == 2:
                    raise
                time.sleep(1)
    """,
    lambda ns, dep: (ns["read"](dep, True), ns["read"](Fake([Status(404)]), False)),
    [
        [],
        [Status(500)],
        [Status(500), Status(404)],
        [Status(500)] * 3,
    ],
)
case(
    "connection_dropped_between_attempts_and_after_the_last",
    """
    MAX_ATTEMPTS = 3

    class Broker:
        def __init__(self, dep):
            self.dep = dep

        def publish(self, queue):
            attempts = 0
            while True:
                try:
                    return self.dep.call(queue)
                except ConnectionError as e:
                    del self.dep.connection
                    if isinstance(e, Gone):
                        self.dep.repair(queue)
                    attempts += 1
                    if attempts >= MAX_ATTEMPTS:
                        raise RuntimeError("closed") from None

    def publish(dep, queue):
        return Broker(dep).publish(queue)
    """,
    lambda ns, dep: ns["publish"](dep, "q"),
    [
        [],
        [C("a")],
        [Gone("g"), C("b")],
        [C("a"), Gone("g"), C("c")],
    ],
)
case(
    "a_callback_told_the_attempt_number_and_the_failure",
    """
    import time

    def run(dep, notify):
        attempt = 0
        while True:
            try:
                return dep.call()
            except OSError as exc:
                if attempt < 3:
                    if notify:
                        dep.callback(attempt, exc)
                    time.sleep(2)
                    attempt += 1
                else:
                    raise

    def both(dep):
        return run(dep, True)
    """,
    lambda ns, dep: ns["both"](dep),
    [
        [],
        [OSError("a")],
        [OSError("a"), TimeoutError("b"), OSError("c")],
        [OSError("x")] * 4,
        [KeyError("not retried")],
    ],
)


case(
    "the_failure_supplies_the_delay_under_a_threshold",
    """
    import time

    def call(dep, threshold):
        for attempt in range(4):
            try:
                return dep.call()
            except FloodWait as e:
                if e.seconds > threshold:
                    raise
                if attempt == 3:
                    raise
                time.sleep(e.seconds)

    def both(dep):
        return call(dep, 100)
    """,
    lambda ns, dep: ns["both"](dep),
    [
        [],
        [FloodWait(3)],
        [FloodWait(3), FloodWait(90)],
        [FloodWait(2), FloodWait(500)],
        [FloodWait(1), FloodWait(2), FloodWait(3), FloodWait(4)],
        [KeyError("not retried")],
    ],
)


case(
    "an_error_object_built_in_the_handler_when_attempts_run_out",
    """
    import time

    def request(dep, url):
        attempt = 0
        while True:
            try:
                res = dep.call(url)
                break
            except KeyboardInterrupt:
                raise
            except Exception as rerr:
                if attempt >= 2:
                    err = Domain(f"Unable to open URL: {url} ({rerr})")
                    err.args = (*err.args, type(rerr).__name__)
                    raise err from rerr
                attempt += 1
                time.sleep(0.5 * 2 ** (attempt - 1))
        return res.upper()
    """,
    lambda ns, dep: ns["request"](dep, "/u"),
    [
        [],
        [C("a")],
        [C("a"), KeyError("b"), C("c")],
        [C("a"), KeyError("b")],
    ],
)


case(
    "clauses_waiting_different_constant_delays",
    """
    import time

    def fetch(dep):
        for attempt in range(4):
            try:
                return dep.call()
            except Status:
                if attempt == 3:
                    raise
                time.sleep(5)
            except ConnectionError as e:
                if attempt == 3:
                    raise
                time.sleep(1)
    """,
    lambda ns, dep: ns["fetch"](dep),
    [
        [],
        [Status(503)],
        [C("a"), Status(503), C("b")],
        [Status(503), C("a"), C("b"), Status(500)],
        [KeyError("not retried")],
    ],
)


case(
    "a_message_of_the_failure_kept_for_the_error_after_the_loop",
    """
    import time

    def fetch(dep):
        error = ""
        for i in range(3):
            try:
                return dep.call()
            except Status as err:
                error = str(err)
                if err.status == 404:
                    raise
                time.sleep(1)
        raise Domain("failed: " + error)
    """,
    lambda ns, dep: ns["fetch"](dep),
    [
        [],
        [Status(500, "a")],
        [Status(500, "a"), Status(404, "b")],
        [Status(500, "a"), Status(502, "b"), Status(503, "c")],
    ],
)


case(
    "an_error_code_tested_and_read_after_the_loop",
    """
    import time

    def fetch(dep):
        code = 0
        for i in range(3):
            try:
                return dep.call()
            except Status as err:
                code = err.status
                if code == 404:
                    raise
                time.sleep(1)
        raise Domain(code)
    """,
    lambda ns, dep: ns["fetch"](dep),
    [
        [],
        [Status(500)],
        [Status(500), Status(404)],
        [Status(500), Status(502), Status(503)],
    ],
)


case(
    "a_rejection_in_the_if_and_the_wait_in_its_else",
    """
    import time

    def fetch(dep):
        for attempt in range(4):
            try:
                return dep.call()
            except Status as err:
                if err.status == 404:
                    raise
                else:
                    time.sleep(1)
        raise Domain("gave up")
    """,
    lambda ns, dep: ns["fetch"](dep),
    [
        [],
        [Status(500)],
        [Status(500), Status(404)],
        [Status(500), Status(502), Status(503), Status(504)],
    ],
)


case(
    "success_is_the_break_after_the_try",
    """
    import time

    PAUSE = 0.5

    def fetch(dep):
        for attempt in range(3):
            try:
                result = dep.call()
            except ConnectionError:
                time.sleep(PAUSE)
                continue
            break
        else:
            raise Domain("no answer")
        return result
    """,
    lambda ns, dep: ns["fetch"](dep),
    [
        [],
        [C("a")],
        [C("a"), C("b")],
        [C("a"), C("b"), C("c")],
        [KeyError("not retried")],
    ],
)


case(
    "tried_once_more_after_a_repair_in_the_handler",
    """
    def fetch(dep):
        try:
            return dep.call("a")
        except ConnectionError:
            dep.repair("reconnect")
            return dep.call("a")
    """,
    lambda ns, dep: ns["fetch"](dep),
    [[], [C("a")], [C("a"), C("b")], [KeyError("not retried")], [C("a"), KeyError("b")]],
)


case(
    "tried_once_more_into_a_name",
    """
    import logging

    def fetch(dep):
        try:
            value = dep.call("b")
        except (ConnectionError, Status) as e:
            logging.getLogger("x").warning("again after %s", e)
            value = dep.call("b")
        return value.upper()
    """,
    lambda ns, dep: ns["fetch"](dep),
    [[], [Status(503)], [C("a"), Status(500)], [KeyError("not retried")]],
)


case(
    "a_success_flag_alone_in_the_loop_test",
    """
    import time

    def send(dep):
        sent = False
        tries = 0
        while not sent:
            try:
                dep.call("m")
                sent = True
            except ConnectionError:
                tries += 1
                if tries >= 3:
                    raise
                time.sleep(1)
        return "sent"
    """,
    lambda ns, dep: ns["send"](dep),
    [[], [C("a")], [C("a"), C("b")], [C("a"), C("b"), C("c")], [KeyError("not retried")]],
)


def _run(
    source: str, call: Callable[..., Any], failures: list[Any], sleeps: list[float]
) -> Outcome:
    namespace: dict[str, Any] = {
        "__name__": f"handlers_behaviour_{next(_ids)}",
        "Status": Status,
        "Gone": Gone,
        "Domain": Domain,
        "FloodWait": FloodWait,
        "Fake": Fake,
    }
    exec(compile(source, namespace["__name__"], "exec"), namespace)
    sleeps.clear()
    dep = Fake(failures)
    try:
        result, error = call(namespace, dep), None
    except Exception as exc:
        result, error = None, (type(exc).__name__, exc.args)
    return Outcome(result, error, dep.seen, list(sleeps))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", lambda seconds: recorded.append(round(seconds, 9)))
    return recorded


@pytest.mark.parametrize("name", sorted(CASES))
def test_handlers_behave_the_same_after_the_rewrite(name: str, sleeps: list[float]) -> None:
    source, call, scripts = CASES[name]
    rewritten, sites = transform_source(source)
    assert any(s.action == "rewritten" for s in sites), f"{name} was not rewritten: {sites}"
    slept_once_more = any("slept" in note for s in sites for note in s.notes)
    for script in scripts:
        # fresh exception objects for each run (a raised exception keeps its traceback)
        before = _run(source, call, [_copy(e) for e in script], sleeps)
        after = _run(rewritten, call, [_copy(e) for e in script], sleeps)
        where = f"{name}, failures {script!r}\n{rewritten}"
        assert after.result == before.result, where
        assert after.error == before.error, where
        assert after.seen == before.seen, where
        # RetryPolicy waits 0 s where the legacy loop did not call sleep at all
        before.sleeps = [d for d in before.sleeps if d]
        after.sleeps = [d for d in after.sleeps if d]
        if slept_once_more:
            assert after.sleeps == before.sleeps[: len(after.sleeps)], where
            assert len(before.sleeps) - len(after.sleeps) in (0, 1), where
        else:
            assert after.sleeps == before.sleeps, where


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_second_run_changes_nothing(name: str) -> None:
    source, _, _ = CASES[name]
    once, _ = transform_source(source)
    twice, sites = transform_source(once)
    assert twice == once
    assert all(s.action != "rewritten" for s in sites)


def _copy(error: BaseException) -> BaseException:
    if isinstance(error, Status):
        return Status(error.status, error.message)
    if isinstance(error, FloodWait):
        return FloodWait(error.seconds)
    return type(error)(*error.args)
