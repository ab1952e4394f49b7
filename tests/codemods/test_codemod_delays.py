"""retry-loop codemod: delay laws (random ranges, full jitter), and what it refuses about them."""

from __future__ import annotations

from codemods._base import SILENT_NOTE
from codemods.retry_loop import RetryLoopCodemod
from codemods.testing import DurableCodemodTest


class TestRandomDelays(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_full_jitter_assigned_then_slept(self) -> None:
        before = """\
import logging
import random
import time

log = logging.getLogger(__name__)
MAX_TRIES = 5


def enqueue(job):
    tries = 0
    while True:
        try:
            job.enqueue_waiting()
        except OSError as err:
            if tries >= MAX_TRIES:
                raise
            wait_time = random.uniform(0.0, 2**tries)
            tries += 1
            log.info("retry %d in %.2f s", tries, wait_time)
            time.sleep(wait_time)
        else:
            break
"""
        after = """\
import logging

from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
MAX_TRIES = 5


@step(
    retry=RetryPolicy(
        max_attempts=6,
        initial_delay=1.0,
        backoff=2.0,
        full_jitter=True,
        retry_on=(OSError,),
    )
)
def _enqueue_waiting_step(job):
    job.enqueue_waiting()


def enqueue(job):
    _enqueue_waiting_step(job)
"""
        self.assertCodemod(before, after)

    def test_random_whole_steps_scaled(self) -> None:
        before = """\
import random
import time


def run(client, command):
    for attempt in range(4):
        try:
            return client.execute(command)
        except ConnectionError:
            if attempt == 3:
                raise
            time.sleep(random.randint(20, 500) / 100.0)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.2,
        backoff=1.0,
        retry_on=(ConnectionError,),
        random_delay=4.8,
    )
)
def run(client, command):
    return client.execute(command)
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        self.assertIn(
            "`random.randint(20, 500) / 100.0` drew whole steps of the range;"
            " RetryPolicy draws any value in it",
            sites[0].notes,
        )

    def test_full_jitter_with_a_floor(self) -> None:
        before = """\
import random
import time


def fetch(client):
    for attempt in range(5):
        try:
            return client.get()
        except ConnectionError:
            if attempt == 4:
                raise
            time.sleep(random.uniform(0.5, min(30, 2 ** attempt)))
"""
        code, sites = self.run_codemod(before)
        self.assertIn("min_delay=0.5", code)
        self.assertIn("full_jitter=True", code)
        self.assertEqual(sites[0].action, "rewritten")
        self.assertEqual(sites[0].notes, (SILENT_NOTE,))

    def test_jitter_drawn_from_a_floor_above_the_delay_is_not_full_jitter(self) -> None:
        before = """\
import random
import time


def fetch(client):
    for attempt in range(5):
        try:
            return client.get()
        except ConnectionError:
            if attempt == 4:
                raise
            time.sleep(random.uniform(3, 2 ** attempt))
"""
        code, _ = self.run_codemod(before)
        self.assertNotIn("full_jitter", code)


class TestEnginesWithTimeBudgets(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_decorator_factory_with_a_deadline(self) -> None:
        before = """\
from time import perf_counter, sleep


def retry(wait, stop_after_delay):
    def wrapper(func):
        def retry_wrapped(*args, **kwargs):
            start_time = perf_counter()
            while True:
                try:
                    return func(*args, **kwargs)
                except Exception:
                    if perf_counter() - start_time > stop_after_delay:
                        raise
                    sleep(wait)

        return retry_wrapped

    return wrapper
"""
        self.assertUnchanged(
            before,
            [
                "a retry engine: it retries `func`, which its callers pass in, with a policy"
                " they choose (`stop_after_delay`, `wait`) and a time budget read from"
                " `perf_counter()`: make the functions they pass steps instead"
            ],
        )

    def test_wrapper_object_handing_the_function_on(self) -> None:
        before = """\
import time
from datetime import datetime, timedelta


class MinimalRetry:
    def __init__(self, retry_delay=1, timeout=10):
        self.retry_delay = retry_delay
        self.timeout = timeout

    def __call__(self, func):
        def retry_loop(*args, **kwargs):
            end = datetime.now() + timedelta(seconds=self.timeout)
            last_exc = None
            while datetime.now() < end:
                try:
                    return call_checked(func, *args, **kwargs)
                except Exception as exc:
                    last_exc = exc
                    time.sleep(self.retry_delay)
            raise last_exc

        return retry_loop
"""
        self.assertUnchanged(
            before,
            [
                "a retry engine: it retries `func`, which its callers pass in, with a policy"
                " they choose (`self.timeout`, `self.retry_delay`) and a time budget read"
                " from `datetime.now()`: make the functions they pass steps instead"
            ],
        )


class TestFixedTuples(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_two_attempts_with_a_credential_refresh(self) -> None:
        before = """\
class Client:
    def call_api(self, url):
        for is_first_attempt in (True, False):
            try:
                return self.download_json(url, self.client_id)
            except ApiError as e:
                if is_first_attempt and e.status in (401, 403):
                    self.refresh_client_id()
                    continue
                raise
"""
        after = """\
from toolkit import RetryPolicy, step

class Client:
    def call_api(self, url):
        @step(
            retry=RetryPolicy(
                max_attempts=2,
                initial_delay=0.0,
                backoff=1.0,
                retry_on=(ApiError,),
                retry_if=lambda e: e.status in (401, 403),
                before_retry=lambda _state: self.refresh_client_id(),
            )
        )
        def _download_json_step():
            return self.download_json(url, self.client_id)

        return _download_json_step()
"""
        self.assertCodemod(before, after)

    def test_retry_flag_false_then_true(self) -> None:
        before = """\
import time


def fetch(client, url):
    for retry in (False, True):
        try:
            return client.get(url)
        except ConnectionError:
            if retry:
                raise
            time.sleep(2)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=2,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
    )
)
def fetch(client, url):
    return client.get(url)
"""
        self.assertCodemod(before, after)

    def test_the_attempt_reading_the_tuple_value_is_refused(self) -> None:
        before = """\
def fetch(client, url):
    for fresh in (False, True):
        try:
            return client.get(url, fresh=fresh)
        except ConnectionError:
            if fresh:
                raise
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)  # the value is no attempt number: never rewritten
        self.assertTrue(all(s.action != "rewritten" for s in sites))

    def test_failover_over_a_list_is_refused_as_such(self) -> None:
        before = """\
def formats(client, cdn_ids):
    for attempt, cdn_id in enumerate(cdn_ids, start=1):
        url = client.assign(cdn_id)
        try:
            return client.extract(url)
        except LookupError:
            if attempt == len(cdn_ids):
                raise
"""
        self.assertUnchanged(
            before,
            [
                "loops over `enumerate(cdn_ids, start=1)` rather than over attempts: each"
                " attempt uses the next `cdn_id` (a failover: state carried into the next"
                " attempt, not a retry of the same call)"
            ],
        )

    def test_engine_over_a_sleep_generator(self) -> None:
        before = """\
import time


def _retry_func(func, sleep_times, retries):
    counter = 0
    for sleep_time in sleep_times:
        try:
            return func()
        except Exception:
            counter += 1
            if counter == retries:
                raise
            time.sleep(sleep_time)
"""
        self.assertUnchanged(
            before,
            [
                "a retry engine: it retries `func`, which its callers pass in, with a policy"
                " they choose (`sleep_times`, `retries`): make the functions they pass steps"
                " instead (loops over `sleep_times` rather than over attempts)"
            ],
        )


class TestRecursiveWrappers(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_decorator_counting_in_its_kwargs_is_an_engine(self) -> None:
        before = """\
import time
from functools import wraps


def retrier(retries=4):
    def decorator(f):
        @wraps(f)
        def wrapper(*args, **kwargs):
            count = kwargs.pop("count", retries)
            try:
                return f(*args, **kwargs)
            except TimeoutError as ex:
                if count > 0:
                    kwargs.update({"count": count - 1})
                    time.sleep(1)
                    return wrapper(*args, **kwargs)
                raise ex

        return wrapper

    return decorator
"""
        self.assertUnchanged(
            before,
            [
                "a retry engine by recursion: `wrapper` calls itself again from its handler to"
                " retry `f`, which its callers pass in, the attempt count carried in"
                ' `kwargs["count"]`: make the functions they pass steps instead'
            ],
        )

    def test_method_counting_in_its_kwargs(self) -> None:
        before = """\
class Client:
    def fetch(self, url, **kwargs):
        try:
            return self.session.get(url)
        except ConnectionError:
            if kwargs.get("_attempt", 1) >= 3:
                raise
            kwargs["_attempt"] = kwargs.get("_attempt", 1) + 1
            return self.fetch(url, **kwargs)
"""
        self.assertUnchanged(
            before,
            [
                "retries by calling `fetch` again from its handler, the attempt count carried"
                ' in `kwargs["_attempt"]` (a recursion, not a loop): make it a step by hand'
            ],
        )


class TestTimeBudgets(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_budget_checked_before_a_constant_wait(self) -> None:
        before = """\
import time

BUDGET = 30


def fetch(client):
    started = time.monotonic()
    while True:
        try:
            return client.get()
        except ConnectionError:
            if time.monotonic() - started > BUDGET:
                raise
            time.sleep(2)
"""
        after = """\
from toolkit import RetryPolicy, step

BUDGET = 30


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
        max_elapsed=32.0,
    )
)
def _get_step(client):
    return client.get()


def fetch(client):
    return _get_step(client)
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        self.assertIn("became max_elapsed=32", sites[0].notes[0])

    def test_budget_before_growing_waits_is_refused(self) -> None:
        before = """\
import time


def fetch(client):
    started = time.monotonic()
    delay = 1
    while True:
        try:
            return client.get()
        except ConnectionError:
            if time.monotonic() - started > 60:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5)
"""
        self.assertUnchanged(
            before,
            [
                "the time budget `time.monotonic() - started > 60` is checked before waits"
                " that change: max_elapsed counts the wait, the legacy test did not"
            ],
        )


class TestModuleConstantDelays(DurableCodemodTest):
    """A delay read from a module constant keeps the constant's name in the policy."""

    TRANSFORM = RetryLoopCodemod

    def test_the_policy_names_the_constants_the_sleep_reads(self) -> None:
        before = """\
import time

RETRY_PAUSE = 0.5
MAX_PAUSE = 4


def fetch(store, key):
    for attempt in range(6):
        try:
            return store.get(key)
        except ConnectionError:
            if attempt == 5:
                raise
            time.sleep(min(RETRY_PAUSE * 2**attempt, MAX_PAUSE))
"""
        after = """\
from toolkit import RetryPolicy, step

RETRY_PAUSE = 0.5
MAX_PAUSE = 4


@step(
    retry=RetryPolicy(
        max_attempts=6,
        initial_delay=RETRY_PAUSE,
        backoff=2.0,
        max_delay=MAX_PAUSE,
        retry_on=(ConnectionError,),
    )
)
def fetch(store, key):
    return store.get(key)
"""
        self.assertCodemod(before, after)

    def test_a_constant_wait_above_the_default_cap_caps_at_the_constant(self) -> None:
        before = """\
import time

PAUSE = 90


def fetch(store, key):
    for attempt in range(3):
        try:
            return store.get(key)
        except ConnectionError:
            if attempt == 2:
                raise
            time.sleep(PAUSE)
"""
        after = """\
from toolkit import RetryPolicy, step

PAUSE = 90


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=PAUSE,
        backoff=1.0,
        max_delay=PAUSE,
        retry_on=(ConnectionError,),
    )
)
def fetch(store, key):
    return store.get(key)
"""
        self.assertCodemod(before, after)


class TestDeadlines(DurableCodemodTest):
    """A deadline set before the loop: its comments stay above the code that replaces it."""

    TRANSFORM = RetryLoopCodemod

    def test_an_elif_budget_after_a_test_on_the_error(self) -> None:
        before = """\
import time


def set_mode(conn, timeout):
    # a write lock may be refused for a while
    deadline = time.monotonic() + timeout
    while True:
        try:
            return conn.execute("pragma journal_mode=wal")
        except RuntimeError as exc:
            if "locked" not in str(exc):
                raise
            elif time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
"""
        after = """\
from toolkit import RetryPolicy, step


def set_mode(conn, timeout):
    # a write lock may be refused for a while
    @step(
        retry=RetryPolicy(
            max_attempts=None,
            initial_delay=0.5,
            backoff=1.0,
            retry_on=(RuntimeError,),
            max_elapsed=timeout + 0.5,
            retry_if=lambda exc: "locked" in str(exc),
        )
    )
    def _execute_step():
        return conn.execute("pragma journal_mode=wal")

    return _execute_step()
"""
        self.assertCodemod(before, after)


class TestDelaySchedules(DurableCodemodTest):
    """Delays that follow no law but a list become ``RetryPolicy(delays=...)``; a delay
    computed at the top of the loop body from the counter is the loop's law."""

    TRANSFORM = RetryLoopCodemod

    def test_a_loop_over_a_module_list_of_delays_then_a_last_attempt(self) -> None:
        before = """\
import time

RETRY_DELAYS = [1, 5, 30]


def fetch(client, url):
    for delay in RETRY_DELAYS:
        try:
            return client.get(url)
        except ConnectionError:
            time.sleep(delay)
    return client.get(url)
"""
        after = """\
from toolkit import RetryPolicy, step

RETRY_DELAYS = [1, 5, 30]


@step(
    retry=RetryPolicy(
        max_attempts=4,
        delays=(1.0, 5.0, 30.0),
        retry_on=(ConnectionError,),
    )
)
def fetch(client, url):
    return client.get(url)
"""
        self.assertCodemod(before, after)

    def test_a_table_of_delays_read_by_the_counter(self) -> None:
        before = """\
import time

BACKOFF = (2, 10, 90)


def push(queue, item):
    for attempt in range(4):
        try:
            return queue.put(item)
        except TimeoutError:
            if attempt == 3:
                raise
            time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
"""
        after = """\
from toolkit import RetryPolicy, step

BACKOFF = (2, 10, 90)


@step(
    retry=RetryPolicy(
        max_attempts=4,
        delays=(2.0, 10.0, 90.0),
        max_delay=90.0,
        retry_on=(TimeoutError,),
    )
)
def push(queue, item):
    return queue.put(item)
"""
        self.assertCodemod(before, after)

    def test_a_delay_computed_before_the_try_from_the_counter(self) -> None:
        before = """\
import time


def fetch(client, url):
    for i in range(5):
        wait = min(0.5 * 2**i, 4)
        try:
            return client.get(url)
        except ConnectionError:
            if i == 4:
                raise
            time.sleep(wait)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=0.5,
        backoff=2.0,
        retry_on=(ConnectionError,),
    )
)
def fetch(client, url):
    return client.get(url)
"""
        self.assertCodemod(before, after)

    def test_a_delay_the_attempt_also_reads_stays_as_written(self) -> None:
        before = """\
import time


def fetch(client, url):
    for i in range(5):
        wait = 2**i
        try:
            return client.get(url, timeout=wait)
        except ConnectionError:
            time.sleep(wait)
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertEqual(
            [s.reason for s in sites],
            ["the handler reads `wait`, set before the try by `wait = 2**i`"],
        )

    def test_a_list_under_a_name_that_may_change_is_not_read(self) -> None:
        before = """\
import time

delays = [1, 5, 30]


def fetch(client, url):
    for delay in delays:
        try:
            return client.get(url)
        except ConnectionError:
            time.sleep(delay)
    return client.get(url)
"""
        self.assertUnchanged(before, ["loops over `delays` rather than over attempts"])
