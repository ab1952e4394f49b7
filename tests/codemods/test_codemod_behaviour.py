"""The rewrite does not change what the program does.

Each legacy function below is modelled on a retry style read in public code
(for/while counters, saved exceptions, silent ``None``, for-else, loops inside
larger functions, methods, async, tenacity, backoff). Each is run before and
after the codemods against a fake flaky dependency that fails ``k`` times and
then succeeds, or always fails, or fails with an error that is not retried; the
result, the number of calls, the exception at the end and the delays slept
must be the same. ``time.sleep``/``asyncio.sleep`` are replaced by recorders,
so nothing really waits.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from codemods.runner import transform_source

_module_ids = itertools.count()


class Flaky:
    """Fails ``failures`` times with ``error`` (``None``: forever), then returns ``value``."""

    def __init__(self, failures: int | None, error: type[BaseException] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def call(self, *args: Any) -> str:
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return f"ok after {self.calls} calls{args!r}"

    async def acall(self, *args: Any) -> str:
        return self.call(*args)


@dataclass
class Outcome:
    result: Any
    error: tuple[str, tuple[Any, ...]] | None
    calls: int
    sleeps: list[float]


# name -> (legacy source, how to call it: fn(namespace, dependency) -> result)
CASES: dict[str, tuple[str, Callable[[dict[str, Any], Flaky], Any]]] = {}


def case(name: str, source: str, call: Callable[[dict[str, Any], Flaky], Any]) -> None:
    CASES[name] = (textwrap.dedent(source), call)


case(
    "for_range_last_attempt_raises",
    """
    import time

    def fetch(dep, url):
        for attempt in range(4):
            try:
                return dep.call(url)
            except (ConnectionError, TimeoutError):
                if attempt == 3:
                    raise
                time.sleep(0.5 * 2 ** attempt)
    """,
    lambda ns, dep: ns["fetch"](dep, "/a"),
)
case(
    "if_else_handler_module_constant",
    """
    import time

    RETRIES = 3

    def fetch(dep):
        for attempt in range(RETRIES):
            try:
                return dep.call()
            except ConnectionError as e:
                if attempt < RETRIES - 1:
                    time.sleep(2)
                else:
                    raise e
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "while_counter_capped",
    """
    import time

    MAX_ATTEMPTS = 6

    def sync(dep):
        attempts = 0
        while attempts < MAX_ATTEMPTS:
            try:
                return dep.call()
            except ConnectionError:
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    raise
                time.sleep(min(5, 0.5 * 2 ** attempts))
    """,
    lambda ns, dep: ns["sync"](dep),
)
case(
    "saved_exception_raised_after_loop",
    """
    import time

    def query(dep, sql):
        last_exc = None
        for _ in range(3):
            try:
                return dep.call(sql)
            except ConnectionError as exc:
                last_exc = exc
                time.sleep(1)
        raise last_exc
    """,
    lambda ns, dep: ns["query"](dep, "select 1"),
)
case(
    "silent_none_when_attempts_run_out",
    """
    import time

    def best_effort(dep):
        for i in range(3):
            try:
                return dep.call()
            except ConnectionError:
                time.sleep(1)
        return None
    """,
    lambda ns, dep: ns["best_effort"](dep),
)
case(
    "for_else_raises_new_error",
    """
    import time

    class GaveUp(Exception):
        pass

    def publish(dep, event):
        for attempt in range(3):
            try:
                receipt = dep.call(event)
                break
            except TimeoutError:
                time.sleep(3)
        else:
            raise GaveUp(f"could not publish {event}")
        return receipt.upper()
    """,
    lambda ns, dep: ns["publish"](dep, "evt"),
)
case(
    "loop_inside_larger_function",
    """
    import time

    def checkout(dep, cart):
        total = sum(cart)
        audit = ["start"]
        for attempt in range(3):
            try:
                charge = dep.call(total)
                audit.append(charge)
                break
            except ConnectionError as err:
                if attempt == 2:
                    raise RuntimeError("payment failed") from err
                time.sleep(1)
        audit.append("done")
        return charge, audit
    """,
    lambda ns, dep: ns["checkout"](dep, [1, 2, 3]),
)
case(
    "give_up_handler_first",
    """
    import time

    def load(dep):
        attempts = 0
        while True:
            try:
                return dep.call()
            except KeyError:
                raise
            except Exception:
                attempts += 1
                if attempts == 4:
                    raise
                time.sleep(1)
    """,
    lambda ns, dep: ns["load"](dep),
)
case(
    "delay_variable_multiplied",
    """
    import time

    def connect(dep):
        delay = 0.25
        for _ in range(5):
            try:
                return dep.call()
            except OSError:
                time.sleep(delay)
                delay *= 4
        raise ConnectionError("no connection")
    """,
    lambda ns, dep: ns["connect"](dep),
)
case(
    "method_with_docstring",
    """
    import time

    class Client:
        def __init__(self, dep):
            self.dep = dep

        def get(self, path):
            \"\"\"GET with retries.\"\"\"
            for attempt in range(3):
                try:
                    return self.dep.call(path)
                except ConnectionError:
                    if attempt == 2:
                        raise
                    time.sleep(1)
    """,
    lambda ns, dep: ns["Client"](dep).get("/x"),
)
case(
    "async_loop",
    """
    import asyncio

    async def fetch(dep):
        for attempt in range(4):
            try:
                return await dep.acall()
            except ConnectionError:
                if attempt == 3:
                    raise
                await asyncio.sleep(0.1 * 2 ** attempt)
    """,
    lambda ns, dep: asyncio.run(ns["fetch"](dep)),
)
case(
    "count_from_a_parameter",
    """
    import time

    def fetch(dep, retries=4, base_delay=0.5):
        for attempt in range(retries):
            try:
                return dep.call()
            except ConnectionError:
                if attempt == retries - 1:
                    raise
                time.sleep(base_delay * 2 ** attempt)
    """,
    lambda ns, dep: ns["fetch"](dep, retries=5, base_delay=0.25),
)
case(
    "policy_from_self_attributes",
    """
    import time

    class Uploader:
        max_retries = 3
        backoff_factor = 0.1
        retry_errors = (ConnectionError, TimeoutError)

        def __init__(self, dep):
            self.dep = dep

        def upload(self, blob):
            for attempt in range(self.max_retries + 1):
                try:
                    return self.dep.call(blob)
                except self.retry_errors:
                    if attempt == self.max_retries:
                        raise
                    time.sleep(self.backoff_factor * 2 ** attempt)
    """,
    lambda ns, dep: ns["Uploader"](dep).upload("b"),
)
case(
    "decorator_factory_with_unguarded_last_call",
    """
    import functools
    import time

    def retry(tries=4, delay=3, backoff=2):
        def deco_retry(f):
            @functools.wraps(f)
            def f_retry(*args, **kwargs):
                mtries, mdelay = tries, delay
                while mtries > 1:
                    try:
                        return f(*args, **kwargs)
                    except (ConnectionError, TimeoutError):
                        time.sleep(mdelay)
                        mtries -= 1
                        mdelay *= backoff
                return f(*args, **kwargs)

            return f_retry

        return deco_retry

    def fetch(dep):
        return retry(tries=4, delay=1, backoff=3)(dep.call)()

    def fetch_direct(dep):  # the same loop with its policy in place: not an engine
        mtries, mdelay = 4, 1
        while mtries > 1:
            try:
                return dep.call()
            except (ConnectionError, TimeoutError):
                time.sleep(mdelay)
                mtries -= 1
                mdelay *= 3
        return dep.call()
    """,
    lambda ns, dep: ns["fetch_direct"](dep),
)
case(
    "exception_tuple_constant",
    """
    import time

    TRANSIENT = (ConnectionError, TimeoutError)

    def ping(dep):
        for attempt in range(3):
            try:
                return dep.call()
            except TRANSIENT:
                if attempt == 2:
                    raise
                time.sleep(1)
    """,
    lambda ns, dep: ns["ping"](dep),
)
case(
    "tenacity_decorator",
    """
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    @retry(
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=2),
        retry=retry_if_exception_type(ConnectionError),
        reraise=True,
    )
    def fetch(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "tenacity_retrying_block",
    """
    from tenacity import Retrying, stop_after_attempt, wait_fixed

    def fetch(dep):
        for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_fixed(1), reraise=True):
            with attempt:
                return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "backoff_decorator",
    """
    import backoff

    @backoff.on_exception(backoff.expo, ConnectionError, max_tries=4, jitter=None, factor=0.5)
    def fetch(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)

case(
    "tenacity_incrementing_predicate_fallback",
    """
    from tenacity import (
        retry,
        retry_if_exception,
        stop_after_attempt,
        wait_incrementing,
    )

    @retry(
        stop=stop_after_attempt(4),
        wait=wait_incrementing(1, 2),
        retry=retry_if_exception(lambda e: isinstance(e, ConnectionError)),
        retry_error_callback=lambda state: "fallback",
    )
    def fetch(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "tenacity_retrying_call_form",
    """
    import tenacity

    def fetch(dep):
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(2), reraise=True
        )(dep.call, "/x")
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "tenacity_module_level_decorator",
    """
    import tenacity

    patient = tenacity.retry(
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(multiplier=0.5, max=3),
        retry=tenacity.retry_if_exception_type(ConnectionError),
        reraise=True,
    )

    @patient
    def fetch(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)

case(
    "retrying_exponential_predicate",
    """
    from retrying import retry

    @retry(
        stop_max_attempt_number=4,
        wait_exponential_multiplier=250,
        wait_exponential_max=1500,
        retry_on_exception=lambda e: isinstance(e, ConnectionError),
    )
    def fetch(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "retrying_incrementing",
    """
    import retrying

    @retrying.retry(
        stop_max_attempt_number=5,
        wait_incrementing_start=100,
        wait_incrementing_increment=400,
        retry_on_exception=(ConnectionError, TimeoutError),
    )
    def fetch(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "retry_package_linear_and_long_constant",
    """
    from retry import retry

    @retry((ConnectionError, TimeoutError), tries=4, delay=1, jitter=2, logger=None)
    def fetch(dep):
        return dep.call()

    @retry(ConnectionError, 3, 90, logger=None)
    def slow(dep):
        return dep.call()

    def both(dep):
        try:
            first = fetch(dep)
        except ConnectionError:
            first = "gave up"
        return first, slow(dep) if dep.calls < 2 else "skip"
    """,
    lambda ns, dep: ns["both"](dep),
)
case(
    "stamina_without_jitter",
    """
    import stamina

    @stamina.retry(on=ConnectionError, attempts=4, wait_initial=0.5, wait_max=3, wait_jitter=0)
    def fetch(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)

case(
    "backoff_giveup_predicate",
    """
    import backoff

    @backoff.on_exception(
        backoff.constant,
        ConnectionError,
        interval=2,
        max_tries=5,
        jitter=None,
        giveup=lambda e: "failure 3" in str(e),
    )
    def fetch(dep):
        return dep.call()
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "backoff_on_predicate_returns_last_value",
    """
    import backoff

    @backoff.on_predicate(backoff.expo, lambda v: "after 1 " in v, max_tries=3, jitter=None)
    def fetch(dep):
        try:
            return dep.call()
        except ConnectionError:
            return "after 1 failure"
    """,
    lambda ns, dep: ns["fetch"](dep),
)

case(
    "attempt_counter_read_in_the_body",
    """
    import time

    def fetch(dep):
        for attempt in range(1, 5):
            try:
                return dep.call(attempt, 10 * attempt)
            except (ConnectionError, TimeoutError):
                if attempt == 4:
                    raise
                time.sleep(0.5)

    def fetch_from_zero(dep):
        total = 1
        for n in range(3):
            try:
                value = dep.call(n)
                break
            except ConnectionError:
                time.sleep(2)
        else:
            raise TimeoutError("gave up")
        return value, total
    """,
    lambda ns, dep: (ns["fetch"](dep), ns["fetch_from_zero"](dep)),
)

case(
    "countdown_from_a_parameter_and_counter_bumped_in_the_try",
    """
    import time

    def countdown(dep, attempts=3):
        while attempts > 0:
            attempts -= 1
            try:
                return dep.call()
            except ConnectionError:
                if attempts == 0:
                    raise
                time.sleep(1)

    def bumped(dep):
        tries = 0
        while True:
            try:
                tries += 1
                return dep.call()
            except (ConnectionError, TimeoutError):
                if tries >= 4:
                    raise
                time.sleep(0.5 * 2 ** tries)

    def both(dep):
        try:
            first = countdown(dep, 4)
        except ConnectionError:
            first = "first gave up"
        return first, bumped(dep)
    """,
    lambda ns, dep: ns["both"](dep),
)

case(
    "random_range_and_added_random_wait",
    """
    import random
    import time

    def fetch(dep):
        for attempt in range(4):
            try:
                return dep.call()
            except ConnectionError:
                if attempt == 3:
                    raise
                time.sleep(random.uniform(0.5, 3))

    def fetch_expo(dep):
        for attempt in range(5):
            try:
                return dep.call()
            except ConnectionError:
                if attempt == 4:
                    raise
                time.sleep(0.25 * 2 ** attempt + random.uniform(0, 1))

    def both(dep):
        try:
            first = fetch(dep)
        except ConnectionError:
            first = "first gave up"
        return first, fetch_expo(dep)
    """,
    lambda ns, dep: ns["both"](dep),
)

case(
    "retry_allowed_by_a_run_time_flag",
    """
    import time

    def fetch(dep, allow_retry):
        n = 0
        while True:
            try:
                return dep.call()
            except ConnectionError:
                if allow_retry and n < 3:
                    n += 1
                    time.sleep(2)
                    continue
                raise

    def both(dep):
        try:
            first = fetch(dep, False)
        except ConnectionError:
            first = "no retry"
        return first, fetch(dep, True)
    """,
    lambda ns, dep: ns["both"](dep),
)

case(
    "try_except_else_return_after_success",
    """
    import time

    def fetch(dep):
        seen = []
        for i in range(4):
            try:
                value = dep.call()
            except ConnectionError:
                time.sleep(2 ** i)
            else:
                seen.append(value)
                return value.upper(), seen
        raise TimeoutError("no luck")
    """,
    lambda ns, dep: ns["fetch"](dep),
)
case(
    "try_except_else_break_after_success",
    """
    import time

    def save(dep):
        seen = []
        for attempt in range(3):
            try:
                dep.call("row")
            except (ConnectionError, TimeoutError):
                time.sleep(1)
            else:
                seen.append("saved")
                break
        else:
            raise RuntimeError("not saved")
        return seen
    """,
    lambda ns, dep: ns["save"](dep),
)

case(
    "exception_test_joined_with_a_setting_and_the_counter",
    """
    import time

    def fetch(dep, mode):
        for attempt in range(4):
            try:
                return dep.call()
            except ConnectionError as e:
                if mode == "on" and "failure" in str(e) and attempt < 3:
                    time.sleep(1)
                    continue
                raise

    def both(dep):
        try:
            first = fetch(dep, "off")
        except ConnectionError:
            first = "not retried"
        return first, fetch(dep, "on")
    """,
    lambda ns, dep: ns["both"](dep),
)

case(
    "message_built_for_a_log_call_and_else_work",
    """
    import logging
    import time

    log = logging.getLogger("legacy")

    def publish(dep):
        for attempt in range(1, 4):
            try:
                dep.call("tag")
            except ConnectionError as e:
                line = f"attempt {attempt} failed: {e}"
                log.warning(line)
                time.sleep(5 * attempt)
            else:
                line = "published"
                log.info(line)
                return 0
        return 1
    """,
    lambda ns, dep: ns["publish"](dep),
)


def _run(
    source: str, call: Callable[[dict[str, Any], Flaky], Any], dep: Flaky, sleeps: list[float]
) -> Outcome:
    namespace: dict[str, Any] = {"__name__": f"legacy_{next(_module_ids)}"}
    exec(compile(source, namespace["__name__"], "exec"), namespace)
    sleeps.clear()
    try:
        result, error = call(namespace, dep), None
    except Exception as exc:
        result, error = None, (type(exc).__name__, exc.args)
    return Outcome(result, error, dep.calls, list(sleeps))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every sleep instead of sleeping."""
    recorded: list[float] = []

    def fake_sleep(seconds: float) -> None:
        recorded.append(round(seconds, 9))

    async def fake_async_sleep(seconds: float, *args: Any) -> None:
        recorded.append(round(seconds, 9))

    monkeypatch.setattr(time, "sleep", fake_sleep)
    monkeypatch.setattr(asyncio, "sleep", fake_async_sleep)
    # random draws at their upper bound: the same in the legacy code and in RetryPolicy
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    return recorded


SCENARIOS = [0, 1, 2, 3, 4, 5, None, "not retried"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewritten_code_behaves_the_same(name: str, sleeps: list[float]) -> None:
    source, call = CASES[name]
    rewritten, sites = transform_source(source)
    assert rewritten != source, f"{name} was not rewritten: {sites}"
    assert "from toolkit import" in rewritten
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
        # The legacy loop may sleep once more after its last attempt; nothing else differs.
        assert after.sleeps == before.sleeps[: len(after.sleeps)], where
        assert len(before.sleeps) - len(after.sleeps) in (0, 1), where


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_run_changes_nothing(name: str) -> None:
    source, _ = CASES[name]
    once, _ = transform_source(source)
    twice, sites = transform_source(once)
    assert twice == once
    assert all(s.action != "rewritten" for s in sites)
