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

    def test_a_call_before_the_try_is_not_a_repair_but_setup(self) -> None:
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
        # it runs before every attempt, the first included: the step's first line, never
        # a repair between attempts (see test_codemod_setup.py)
        assert "before_retry" not in out
        assert sites[0].action == "rewritten"
        assert "    conn.prepare()\n    return conn.pull()\n" in out
        assert any("conn.prepare()" in note for note in sites[0].notes)

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


# -- several handlers, give-up rules, repairs --------------------------------------------
MAPPED = """\
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
"""
BETWEEN = """\
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
"""


class TestSeveralHandlers(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_a_handler_mapping_to_a_domain_error_stays_at_the_call_site(self) -> None:
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(ConnectionError, TimeoutError),
    )
)
def _call_step(dep, key):
    return dep.call(key)


def fetch(dep, key):
    try:
        return _call_step(dep, key)
    except (ConnectionError, TimeoutError) as e:
        raise Domain(f"gave up: {e}")
    except PermissionError as e:
        raise Domain(f"denied: {e}")
"""
        self.assertCodemod(MAPPED, after)

    def test_a_re_raising_handler_between_retrying_ones_is_read_in_order(self) -> None:
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.5,
        backoff=1.0,
        retry_on=(ConnectionError, Exception),
        retry_if=lambda exc: isinstance(exc, ConnectionError) or (not isinstance(exc, OSError)),
    )
)
def fetch(dep):
    return dep.call()
"""
        self.assertCodemod(BETWEEN, after)

    def test_a_rejected_failure_raised_rebuilt(self) -> None:
        source = """\
import time


def clone(api, interval):
    for attempt in range(5):
        try:
            return api.clone()
        except ApiError as e:
            if "Device busy" in e.message:
                if attempt == 4:
                    raise DriverError("timed out")
                time.sleep(interval)
            else:
                raise ApiError(e.code, e.message)
"""
        out, sites = transform_source(source)
        assert sites[0].action == "rewritten", sites
        assert 'retry_if=lambda e: "Device busy" in e.message' in out
        assert '        if "Device busy" not in e.message:\n' in out
        assert "            raise ApiError(e.code, e.message)\n" in out
        assert out.rstrip().endswith('raise DriverError("timed out")')

    def test_an_error_code_read_once_then_domain_errors(self) -> None:
        source = """\
import time


def get(store, key):
    for attempt in range(3):
        try:
            return store.get(key)
        except StoreError as err:
            code = classify(err)
            if code == 404:
                raise NotFound(key)
            elif code == 403:
                raise Denied(key)
            if attempt == 2:
                raise
            time.sleep(1)
"""
        out, sites = transform_source(source)
        assert sites[0].action == "skipped"  # classify() would run once more at the call site
        assert "would call once more" in sites[0].reason
        plain = source.replace("classify(err)", "err.code")
        out, sites = transform_source(plain)
        assert sites[0].action == "rewritten", sites
        assert "retry_if=lambda err: not ((err.code == 404) or (err.code == 403))" in out
        assert "        code = err.code\n        if code == 404:\n" in out

    def test_a_fallback_value_for_a_rejected_failure(self) -> None:
        source = """\
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
"""
        out, sites = transform_source(source)
        assert sites[0].action == "rewritten", sites
        assert "retry_if=lambda e: not (e.status == 404 and missing_ok)" in out
        assert '        if e.status == 404 and missing_ok:\n            return ""\n' in out

    def test_repairs_read_the_exception_and_the_attempt(self) -> None:
        source = """\
import time


class Runner:
    def run(self, *args):
        attempt = 0
        while True:
            try:
                return self.once(*args)
            except OSError as exc:
                if attempt < 3:
                    if self.on_retry:
                        self.on_retry(attempt, exc)
                    del self.conn
                    time.sleep(2)
                    attempt += 1
                else:
                    raise
"""
        out, sites = transform_source(source)
        assert sites[0].action == "rewritten", sites
        assert (
            "before_retry=lambda state: ((self.on_retry((state.attempt - 1), state.exception)"
            " if self.on_retry else None), delattr(self, 'conn'))"
        ) in out
        assert "max_attempts=4" in out


class TestSuppliedDelay(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_the_failure_supplies_the_delay(self) -> None:
        source = """\
import time


def call(api, threshold):
    for attempt in range(5):
        try:
            return api.call()
        except FloodWait as e:
            if e.seconds <= threshold and attempt < 4:
                time.sleep(e.seconds)
                continue
            raise
"""
        after = """\
from toolkit import RetryPolicy, step


def call(api, threshold):
    @step(
        retry=RetryPolicy(
            max_attempts=5,
            initial_delay=0.0,
            backoff=1.0,
            max_delay=float("inf"),
            retry_on=(FloodWait,),
            retry_if=lambda e: e.seconds <= threshold,
            delay_from=lambda e: e.seconds,
        )
    )
    def _call_step():
        return api.call()

    return _call_step()
"""
        self.assertCodemod(source, after)

    def test_a_supplied_delay_read_with_the_counter_is_refused(self) -> None:
        source = """\
import time


def call(api):
    for attempt in range(5):
        try:
            return api.call()
        except FloodWait as e:
            time.sleep(e.seconds * attempt)
"""
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert sites[0].reason == (
            "the delay `e.seconds * attempt`, read from the failure, reads the counter `attempt`"
        )

    def test_clauses_waiting_different_constant_delays(self) -> None:
        source = """\
import time


def fetch(dep):
    for attempt in range(4):
        try:
            return dep.call()
        except Busy:
            if attempt == 3:
                raise
            time.sleep(5)
        except ConnectionError:
            if attempt == 3:
                raise
            time.sleep(1)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.0,
        backoff=1.0,
        max_delay=float("inf"),
        retry_on=(Busy, ConnectionError),
        delay_from=lambda exc: 5 if isinstance(exc, Busy) else 1,
    )
)
def fetch(dep):
    return dep.call()
"""
        self.assertCodemod(source, after)

    def test_clauses_with_growing_different_delays_are_refused(self) -> None:
        source = """\
import time


def fetch(dep):
    for attempt in range(4):
        try:
            return dep.call()
        except Busy:
            if attempt == 3:
                raise
            time.sleep(5 * attempt)
        except ConnectionError:
            if attempt == 3:
                raise
            time.sleep(1)
"""
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert sites[0].reason == (
            "the handlers for `Busy` and `ConnectionError` retry differently:"
            " `time.sleep(5 * attempt)` / `time.sleep(1)`"
        )

    def test_a_message_kept_from_the_failure_is_computed_at_the_call_site(self) -> None:
        source = """\
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
    raise Domain(error)
"""
        out, sites = transform_source(source)
        assert sites[0].action == "rewritten", sites
        # the message of the last failure, not the empty one set before the loop
        assert (
            "    except Status as err:\n        if err.status == 404:\n            raise\n"
            "        error = str(err)\n    raise Domain(error)\n"
        ) in out

    def test_a_message_kept_then_read_after_a_success_is_refused(self) -> None:
        source = """\
import time


def fetch(dep):
    error = ""
    for i in range(3):
        try:
            dep.call()
            break
        except Status as err:
            error = str(err)
            time.sleep(1)
    else:
        raise Domain(error)
    return error
"""
        _, sites = transform_source(source)
        assert sites[0].action == "skipped"
        assert sites[0].reason == (
            "the code after the loop reads `error`, kept from a failure before a later attempt"
            " succeeded"
        )


class TestHandlerRefusals(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def _reason(self, source: str) -> str:
        out, sites = transform_source(source)
        assert out == source
        assert sites and sites[0].action == "skipped", sites
        return sites[0].reason

    def test_a_handler_asking_the_user(self) -> None:
        reason = self._reason(
            """\
import time


def connect(client):
    retry = 0
    while retry < 5:
        try:
            return client.connect()
        except OSError:
            time.sleep(5)
            retry += 1
        except BadHostKey:
            input("fix known_hosts, then press enter")
            retry += 1
"""
        )
        assert reason == (
            "the handler for `BadHostKey` asks for user input between attempts"
            " (never a durable step)"
        )

    def test_handlers_with_different_delays(self) -> None:
        reason = self._reason(MAPPED.replace('raise Domain(f"denied: {e}")', "time.sleep(9)"))
        assert reason == (
            "the handlers for `(ConnectionError, TimeoutError)` and `PermissionError` retry"
            ' differently: `if attempt == 3: raise Domain(f"gave up: {e}")` / `time.sleep(9)`'
        )

    def test_a_retry_object_drives_the_loop(self) -> None:
        reason = self._reason(
            """\
def download(self):
    for retry in RetryManager(self.retries, self.report):
        try:
            return self.fetch()
        except Partial:
            retry.error = None
            retry.attempt -= 1
            continue
        except OSError as err:
            retry.error = err
            continue
"""
        )
        assert reason.startswith("a retry object drives the loop (`for retry in RetryManager(")
        assert "a budget reset by progress" in reason

    def test_state_carried_into_the_next_attempt(self) -> None:
        reason = self._reason(
            """\
def open_file(name, mode):
    for attempt in range(2):
        try:
            return open(name, mode)
        except OSError:
            if attempt:
                raise
            old, name = name, tidy(name)
"""
        )
        assert reason == (
            "the handler changes `name`, which the next attempt reads"
            " (state carried into the next attempt)"
        )

    def test_a_delay_helper_of_another_module(self) -> None:
        reason = self._reason(
            """\
from client.timing import backoff_wait


def send(batch, retries):
    for attempt in range(retries + 1):
        try:
            return post(batch)
        except Exception as e:
            if attempt < retries:
                backoff_wait(attempt, getattr(e, "retry_after", None))
"""
        )
        assert reason.startswith("the handler waits in `backoff_wait(attempt,")
        assert "(from `client.timing`)" in reason

    def test_a_retry_engine(self) -> None:
        reason = self._reason(
            """\
def ensure(self, func, *args):
    retries = 0
    while True:
        try:
            return func(*args)
        except Exception as exc:
            if retries < self.max_retries:
                retries += 1
                try:
                    self.on_error(exc)
                except Exception:
                    pass
                self._sleep(1)
            else:
                raise
"""
        )
        assert reason.startswith("a retry engine: it retries `func`, which its callers pass in")

    def test_a_retry_engine_said_before_its_predicate(self) -> None:
        reason = self._reason(
            """\
import asyncio


async def guarded(self, name, coro_func, *args):
    for attempt in range(self.max_retries + 1):
        try:
            return await coro_func(*args)
        except Exception as e:
            if name in UNSAFE or attempt == self.max_retries or not self.retryable(e):
                raise
            await asyncio.sleep(1)
"""
        )
        assert reason.startswith("a retry engine: it retries `coro_func`")

    def test_a_give_up_handler_reading_the_counter(self) -> None:
        reason = self._reason(
            """\
import time


def fetch(dep):
    for attempt in range(3):
        try:
            return dep.call()
        except KeyError:
            raise Domain(f"bad after {attempt}")
        except ConnectionError:
            time.sleep(1)
    raise RuntimeError("no")
"""
        )
        assert reason == "the handler for `KeyError` gives up reading the counter `attempt`"

    def test_a_handler_deciding_in_save_and_reraise(self) -> None:
        reason = self._reason(
            """\
from oslo_utils import excutils


def add(db, rows, max_retries):
    for attempt in range(max_retries):
        try:
            return db.insert(rows)
        except Duplicate:
            with excutils.save_and_reraise_exception() as ctxt:
                if attempt < max_retries - 1:
                    ctxt.reraise = False
                    db.rollback()
"""
        )
        # (with `reraise = False` last in its branch it is rewritten: test_codemod_loop_misc.py)
        assert reason == (
            "the handler for `Duplicate` decides inside"
            " `with excutils.save_and_reraise_exception()` in a way not followed"
            " (`reraise = False` only as the last thing a branch does is read)"
        )

    def test_a_handler_call_that_may_end_the_program(self) -> None:
        reason = self._reason(
            """\
from time import sleep


def wait_ready(module, client):
    for _ in range(10):
        try:
            client.wait()
            break
        except WaiterError as e:
            if e.code == "NotFound":
                sleep(10)
                continue
            module.fail(e)
        except ClientError as e:
            module.fail(e)
"""
        )
        assert reason.startswith("the handler for `WaiterError` calls `module.fail(...)`")

    def test_a_count_of_zero_ends_the_loop_differently(self) -> None:
        reason = self._reason(
            """\
import time


class Command:
    def get(self):
        attempt = 0
        while True:
            try:
                return self.once()
            except CommandFailed as exc:
                if attempt < self.retry_times:
                    time.sleep(self.retry_sleep)
                    attempt += 1
                elif attempt == 0:
                    raise NoRetry(*exc.args)
                else:
                    raise MaxRetries(*exc.args)
"""
        )
        # (a plain re-raise at 0 is rewritten: see test_codemod_loop_misc.py)
        assert reason == (
            "what happens when attempts run out depends on `self.retry_times`: when it is 0"
            " the loop runs `raise NoRetry(*exc.args)`, else it runs"
            " `raise MaxRetries(*exc.args)`"
        )


class TestLogReadingTheAttempt(DurableCodemodTest):
    """A dropped log call that reads a name the attempt sets (langchain-community's
    GremlinQAChain: `self.log_invalid_query(run_manager, fixed_gremlin, ...)`)."""

    TRANSFORM = RetryLoopCodemod

    def test_unbound_on_the_first_failure_is_refused(self) -> None:
        before = """\
import logging

log = logging.getLogger("x")


def fix(chain, query):
    retries = 0
    while retries < 3:
        try:
            fixed = chain.fix(query)
            return chain.run(fixed)
        except Exception as e:
            retries += 1
            log.warning("invalid query %s: %s", fixed, e)
    raise ValueError("the query is invalid")
"""
        self.assertUnchanged(
            before,
            [
                'the handler logs `log.warning("invalid query %s: %s", fixed, e)`, which'
                " reads `fixed`, set by the attempt: when an attempt fails before setting it,"
                " the legacy handler raises UnboundLocalError (the step would retry)"
            ],
        )

    def test_bound_before_the_loop_is_rewritten(self) -> None:
        before = """\
import logging

log = logging.getLogger("x")


def fix(chain, query):
    retries = 0
    fixed = None
    while retries < 3:
        try:
            fixed = chain.fix(query)
            return chain.run(fixed)
        except Exception as e:
            retries += 1
            log.warning("invalid query %s: %s", fixed, e)
    raise ValueError("the query is invalid")
"""
        after = """\
import logging

from toolkit import RetryPolicy, step

log = logging.getLogger("x")


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(Exception,),
    )
)
def _fix_step(chain, query):
    fixed = chain.fix(query)
    return chain.run(fixed)


def fix(chain, query):
    fixed = None
    try:
        return _fix_step(chain, query)
    except Exception:
        pass
    raise ValueError("the query is invalid")
"""
        self.assertCodemod(before, after)


class TestRejectionInTheIfRetryInItsElse(DurableCodemodTest):
    """``if <test>: raise / else: <wait>``: the else runs after the ``if``, as without it;
    the test is the predicate, and the call site still raises what it rejects."""

    TRANSFORM = RetryLoopCodemod

    def test_the_else_branch_is_the_retry(self) -> None:
        before = """\
import time


def fetch(store, key):
    for attempt in range(4):
        try:
            return store.get(key)
        except LookupError as err:
            if err.args and err.args[0] == "gone":
                raise
            else:
                time.sleep(1)
    raise TimeoutError(key)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(LookupError,),
        retry_if=lambda err: not (err.args and err.args[0] == "gone"),
    )
)
def _get_step(store, key):
    return store.get(key)


def fetch(store, key):
    try:
        return _get_step(store, key)
    except LookupError as err:
        if err.args and err.args[0] == "gone":
            raise
    raise TimeoutError(key)
"""
        self.assertCodemod(before, after)
