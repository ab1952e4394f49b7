"""Handlers that test the caught exception (errno, status, error codes, a predicate
function) become ``retry_if``: CodemodTest pairs, and the code run before and after
against a fake that fails with chosen exceptions (same results, calls, errors, sleeps)."""

from __future__ import annotations

import errno
import itertools
import textwrap
import time
from typing import Any

import pytest

from codemods.retry_loop import RetryLoopCodemod
from codemods.runner import transform_source
from codemods.testing import DurableCodemodTest

ERRNO_GUARD = """\
import errno
import time


def read_block(disk, offset):
    for attempt in range(4):
        try:
            return disk.read(offset)
        except OSError as err:
            if err.errno != errno.EAGAIN:
                raise
            if attempt == 3:
                raise
            time.sleep(0.25)
"""
STATUS_AND_COUNTER = """\
import time


class Busy(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


def submit(queue, job):
    tries = 0
    while True:
        try:
            return queue.push(job)
        except Busy as busy:
            if busy.status in (429, 503) and tries < 3:
                tries += 1
                time.sleep(2 * tries)
                continue
            raise
"""
PREDICATE_ELSE_RAISE = """\
import time


def store(bucket, blob):
    for _ in range(3):
        try:
            bucket.save(blob)
            break
        except RuntimeError as problem:
            if "again" in str(problem):
                time.sleep(1)
            else:
                raise
    else:
        raise TimeoutError("bucket kept failing")
"""


class TestPredicateRewrites(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_errno_guard_becomes_retry_if(self) -> None:
        after = """\
import errno

from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.25,
        backoff=1.0,
        retry_on=(OSError,),
        retry_if=lambda err: err.errno == errno.EAGAIN,
    )
)
def read_block(disk, offset):
    return disk.read(offset)
"""
        self.assertCodemod(ERRNO_GUARD, after)

    def test_status_test_joined_with_a_counter(self) -> None:
        out, sites = transform_source(STATUS_AND_COUNTER)
        assert "retry_if=lambda busy: busy.status in (429, 503)" in out
        assert "max_attempts=4" in out and "initial_delay=2.0" in out
        assert "increment=2.0" in out  # 2, 4, 6: linear
        assert sites[0].action == "rewritten"

    def test_saved_exception_then_error_code_test(self) -> None:
        source = """\
import time


def bump(table, key):
    last = None
    for attempt in range(6):
        try:
            return table.increment(key)
        except LookupError as failure:
            last = failure
            if (failure.args[0] == "throttled"):
                time.sleep(min(2 ** attempt, 8))
            else:
                raise
    raise last
"""
        out, sites = transform_source(source)
        assert sites[0].action == "rewritten", sites
        assert 'retry_if=lambda failure: failure.args[0] == "throttled"' in out
        assert "max_delay=8.0" in out

    def test_counter_before_exception_still_splits(self) -> None:
        source = STATUS_AND_COUNTER.replace(
            "busy.status in (429, 503) and tries < 3", "tries < 3 and busy.status in (429, 503)"
        )
        out, sites = transform_source(source)
        assert sites[0].action == "rewritten"
        assert "retry_if=lambda busy: busy.status in (429, 503)" in out

    def test_or_test_with_the_counter_splits(self) -> None:
        source = """\
import time


def push(queue, job, ready):
    for attempt in range(5):
        try:
            return queue.push(job)
        except OSError as err:
            if not ready or err.errno != 11 or attempt == 4:
                raise
            time.sleep(0.5)
"""
        out, sites = transform_source(source)
        assert sites[0].action == "rewritten", sites
        assert "retry_if=lambda err: not ((not ready) or (err.errno != 11))" in out
        assert "max_attempts=5" in out

    def test_a_calling_test_after_the_counter_is_refused(self) -> None:
        source = STATUS_AND_COUNTER.replace(
            "busy.status in (429, 503) and tries < 3", "tries < 3 and worth(busy)"
        )
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert "skipped on the last attempt" in sites[0].reason


class TestPredicateRefusals(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_test_reading_a_value_set_by_the_attempt(self) -> None:
        source = """\
import time


def pull(api):
    for attempt in range(3):
        try:
            reply = api.begin()
            return reply.finish()
        except IOError as e:
            if reply.code != e.errno:
                raise
            time.sleep(1)
"""
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert "set by the attempt" in sites[0].reason

    def test_a_predicate_call_is_not_repeated_when_attempts_run_out(self) -> None:
        source = PREDICATE_ELSE_RAISE.replace('"again" in str(problem)', "transient(problem)")
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert "would call once more" in sites[0].reason

    def test_flag_guarded_retry_is_never_retry_always(self) -> None:
        source = """\
import time


def once_or_twice(client, flag):
    n = 0
    while True:
        try:
            return client.get()
        except ConnectionError:
            if flag and n == 0:
                n += 1
                time.sleep(5)
                continue
            raise
"""
        out, sites = transform_source(source)
        assert sites[0].action == "rewritten"
        assert "max_attempts=2 if flag else 1" in out
        assert "max_attempts=None" not in out

    def test_two_flags_are_refused(self) -> None:
        source = """\
import time


def maybe(client, a, b):
    for attempt in range(3):
        try:
            return client.get()
        except ConnectionError:
            if not a or not b or attempt == 2:
                raise
            time.sleep(1)
"""
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert "flags `a` and `b`" in sites[0].reason

    def test_reasons_name_the_real_cause(self) -> None:
        source = """\
import socket
import time


def ask(api):
    for attempt in range(3):
        try:
            return api.ask()
        except (socket.timeout, ConnectionError) as exc:
            if "busy" in exc.args[0] and attempt < 2:
                time.sleep(1)
            else:
                raise ValueError(f"gave up after {attempt}")
"""
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert "may be a tuple" not in sites[0].reason  # socket.timeout is a class
        assert "exc.args[0]" in sites[0].reason  # the exception test, not a bare string

    def test_a_call_before_the_try_is_not_a_repair(self) -> None:
        source = """\
import time


def pull(conn):
    for attempt in range(3):
        conn.prepare()
        try:
            return conn.pull()
        except OSError:
            time.sleep(1)
    raise RuntimeError("no")
"""
        out, sites = transform_source(source)
        assert "before_retry" not in out
        assert sites[0].action == "skipped"
        assert "conn.prepare()" in sites[0].reason

    def test_password_prompt_is_never_a_step(self) -> None:
        source = """\
def unlock(vault, ask_password):
    for _ in range(3):
        try:
            return vault.open(ask_password())
        except PermissionError:
            print("wrong password, try again")
    raise PermissionError("locked")
"""
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert "user input" in sites[0].reason


# -- behaviour -------------------------------------------------------------------------
_ids = itertools.count()


class Failing:
    """Raises the exceptions of ``plan`` one per call, then returns ``"done"``."""

    def __init__(self, plan: list[BaseException]) -> None:
        self.plan = list(plan)
        self.calls = 0

    def __call__(self, *args: Any) -> str:
        self.calls += 1
        if self.plan:
            raise self.plan.pop(0)
        return "done"


def _run(source: str, entry: str, make: Any, sleeps: list[float]) -> tuple[Any, ...]:
    namespace: dict[str, Any] = {"__name__": f"handlers_{next(_ids)}"}
    exec(compile(textwrap.dedent(source), namespace["__name__"], "exec"), namespace)
    sleeps.clear()
    fake = make(namespace)
    try:
        result, error = namespace[entry](*fake[1:]), None
    except Exception as exc:
        result, error = None, (type(exc).__name__, str(exc))
    return result, error, fake[0].calls, list(sleeps)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", lambda s: recorded.append(round(s, 9)))
    return recorded


class _Obj:
    pass


def _errno_case(errors: list[int]) -> Any:
    def make(ns: dict[str, Any]) -> tuple[Failing, Any, int]:
        fake = Failing([OSError(code, "io") for code in errors])
        disk = _Obj()
        disk.read = fake  # type: ignore[attr-defined]
        return fake, disk, 0

    return make


def _busy_case(statuses: list[int]) -> Any:
    def make(ns: dict[str, Any]) -> tuple[Failing, Any, str]:
        fake = Failing([ns["Busy"](s) for s in statuses])
        queue = _Obj()
        queue.push = fake  # type: ignore[attr-defined]
        return fake, queue, "job"

    return make


def _store_case(messages: list[str]) -> Any:
    def make(ns: dict[str, Any]) -> tuple[Failing, Any, str]:
        fake = Failing([RuntimeError(m) for m in messages])
        bucket = _Obj()
        bucket.save = fake  # type: ignore[attr-defined]
        return fake, bucket, "blob"

    return make


A, B = errno.EAGAIN, errno.EIO
BEHAVIOUR = [
    ("errno", ERRNO_GUARD, "read_block", _errno_case, [[], [A], [A, A, A], [A] * 4, [B], [A, B]]),
    (
        "status",
        STATUS_AND_COUNTER,
        "submit",
        _busy_case,
        [[], [503], [429, 503, 503], [503] * 4, [503] * 9, [404], [503, 500]],
    ),
    (
        "predicate-else",
        PREDICATE_ELSE_RAISE,
        "store",
        _store_case,
        [[], ["again"], ["again"] * 3, ["again"] * 5, ["fatal"], ["again", "fatal"]],
    ),
]


@pytest.mark.parametrize(("name", "source", "entry", "maker", "scenarios"), BEHAVIOUR)
def test_before_and_after_behave_the_same(
    name: str, source: str, entry: str, maker: Any, scenarios: list[Any], sleeps: list[float]
) -> None:
    rewritten, sites = transform_source(source)
    assert any(s.action == "rewritten" for s in sites), sites
    last_sleep_noted = any("after its last failed attempt" in n for s in sites for n in s.notes)
    for scenario in scenarios:
        before = _run(source, entry, maker(scenario), sleeps)
        after = _run(rewritten, entry, maker(scenario), sleeps)
        where = f"{name} {scenario}\n{rewritten}"
        assert after[:3] == before[:3], where
        if last_sleep_noted and before[3] != after[3]:
            assert before[3][:-1] == after[3], where  # exactly the noted last sleep
        else:
            assert before[3] == after[3], where
    once = transform_source(rewritten)[0]
    assert once == rewritten


REPAIR = """\
import time


class Gateway:
    def __init__(self, plan):
        self.plan = list(plan)
        self.log = []

    def reconnect(self):
        self.log.append("reconnect")

    def send(self, item):
        self.log.append(f"send {item}")
        if self.plan:
            raise self.plan.pop(0)
        return f"sent {item}"

    def deliver(self, item):
        for attempt in range(4):
            try:
                return self.send(item)
            except ConnectionError:
                if attempt == 3:
                    raise
                self.reconnect()
                time.sleep(1.5)
"""


@pytest.mark.parametrize("failures", [0, 1, 3, 4, 6])
def test_repair_between_attempts_runs_as_before(failures: int, sleeps: list[float]) -> None:
    rewritten, _ = transform_source(REPAIR)
    assert "before_retry=lambda _state: self.reconnect()" in rewritten
    outcomes = []
    for source in (REPAIR, rewritten):
        namespace: dict[str, Any] = {"__name__": f"repair_{next(_ids)}"}
        exec(compile(source, namespace["__name__"], "exec"), namespace)
        sleeps.clear()
        gateway = namespace["Gateway"]([ConnectionError("down")] * failures)
        try:
            result: Any = gateway.deliver("parcel")
        except ConnectionError as exc:
            result = repr(exc)
        outcomes.append((result, gateway.log, list(sleeps)))
    assert outcomes[0] == outcomes[1], rewritten
