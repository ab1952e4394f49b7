# ruff: noqa: E501  (the cases are source files quoted verbatim)
"""tenacity codemod: decorators and Retrying blocks it rewrites, and those it keeps."""

from __future__ import annotations

from codemods.tenacity_retry import TenacityCodemod
from codemods.testing import DurableCodemodTest


class TestRewrites(DurableCodemodTest):
    TRANSFORM = TenacityCodemod

    def test_attempts_and_exponential(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


@retry(stop=stop_after_attempt(5), wait=wait_exponential(multiplier=1, max=10), reraise=True)
def fetch(url):
    return requests.get(url)
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=1.0,
        backoff=2.0,
        max_delay=10.0,
        retry_on=(Exception,),
    )
)
def fetch(url):
    return requests.get(url)
"""
        self.assertCodemod(before, after)

    def test_min_wait_exact(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


@retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=1, min=4, max=10), reraise=True)
def fetch(url):
    return requests.get(url)
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=2.0,
        max_delay=10.0,
        min_delay=4.0,
        retry_on=(Exception,),
    )
)
def fetch(url):
    return requests.get(url)
"""
        self.assertCodemod(before, after)

    def test_module_attribute_and_union_stop(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


@tenacity.retry(
    stop=tenacity.stop_after_attempt(10) | tenacity.stop_after_delay(30),
    wait=tenacity.wait_fixed(2),
    retry=tenacity.retry_if_exception_type((IOError, TimeoutError)),
    reraise=True,
)
def sync_inventory(store):
    return store.sync()
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=10,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(IOError, TimeoutError),
        max_elapsed=30.0,
    )
)
def sync_inventory(store):
    return store.sync()
"""
        self.assertCodemod(before, after)

    def test_bare_retry_forever(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


@retry
def connect():
    return requests.get("http://localhost:8080/health")
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(Exception,),
    )
)
def connect():
    return requests.get("http://localhost:8080/health")
"""
        self.assertCodemod(before, after)

    def test_fixed_plus_random(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


@retry(stop=stop_after_delay(60), wait=wait_fixed(1) + wait_random(0, 2))
def publish(event):
    event.send()
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(Exception,),
        max_elapsed=60.0,
        random_delay=2.0,
    )
)
def publish(event):
    event.send()
"""
        self.assertCodemod(before, after)

    def test_random_exponential_async(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


@retry(
    retry=retry_if_exception_type(ConnectionError),
    stop=stop_after_attempt(6),
    wait=wait_random_exponential(multiplier=0.5, max=20),
    reraise=True,
)
async def call_model(client, prompt):
    return await client.complete(prompt)
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=6,
        initial_delay=0.5,
        backoff=2.0,
        max_delay=20.0,
        full_jitter=True,
        retry_on=(ConnectionError,),
    )
)
async def call_model(client, prompt):
    return await client.complete(prompt)
"""
        self.assertCodemod(before, after)

    def test_not_exception_type(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


@retry(retry=retry_if_not_exception_type(ValueError), stop=stop_after_attempt(4), reraise=True)
def parse_remote(url):
    return requests.get(url).json()
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(Exception,),
        give_up_on=(ValueError,),
    )
)
def parse_remote(url):
    return requests.get(url).json()
"""
        self.assertCodemod(before, after)

    def test_stacked_decorators_keep_order(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


class Repo:
    @staticmethod
    @retry(stop=stop_after_attempt(2), reraise=True)
    def load(key):
        return requests.get(key)
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


class Repo:
    @staticmethod
    @step(
        retry=RetryPolicy(
            max_attempts=2,
            initial_delay=0.0,
            backoff=1.0,
            retry_on=(Exception,),
        )
    )
    def load(key):
        return requests.get(key)
"""
        self.assertCodemod(before, after)

    def test_retrying_block(self) -> None:
        before = '''\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


def resize(image):
    """Resize on the remote worker."""
    for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_fixed(1), reraise=True):
        with attempt:
            return image.remote_resize()
'''
        after = '''\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(Exception,),
    )
)
def resize(image):
    """Resize on the remote worker."""
    return image.remote_resize()
'''
        self.assertCodemod(before, after)

    def test_async_retrying_block(self) -> None:
        before = """\
import tenacity
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

import requests


async def resize_async(image):
    async for attempt in AsyncRetrying(stop=stop_after_attempt(3), reraise=True):
        with attempt:
            return await image.remote_resize()
"""
        after = """\
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(Exception,),
    )
)
async def resize_async(image):
    return await image.remote_resize()
"""
        self.assertCodemod(before, after)

    def test_import_sections_stay_apart(self) -> None:
        """The blank line above a removed import stays, so the sections stay separated."""
        before = """\
\"\"\"Module doc.\"\"\"
from __future__ import annotations

import logging

import tenacity
from myapp import client

log = logging.getLogger(__name__)


@tenacity.retry(stop=tenacity.stop_after_attempt(3))
def call():
    return client.get()
"""
        after = """\
\"\"\"Module doc.\"\"\"
from __future__ import annotations

import logging

from myapp import client
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(Exception,),
    )
)
def call():
    return client.get()
"""
        self.assertCodemod(before, after)


class TestImportPlacement(DurableCodemodTest):
    TRANSFORM = TenacityCodemod

    def test_toolkit_import_is_sorted_into_the_block_of_the_removed_import(self) -> None:
        before = """\
import time

import requests
import tenacity
from zmq import Context

from myapp import client


@tenacity.retry(stop=tenacity.stop_after_attempt(3))
def call():
    time.sleep(0)
    return client.get(requests, Context)
"""
        after = """\
import time

import requests
from toolkit import RetryPolicy, step
from zmq import Context

from myapp import client


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(Exception,),
    )
)
def call():
    time.sleep(0)
    return client.get(requests, Context)
"""
        self.assertCodemod(before, after)


class TestLeftAlone(DurableCodemodTest):
    TRANSFORM = TenacityCodemod

    def test_before_sleep_hook(self) -> None:
        before = """\
import logging

import tenacity
from tenacity import Retrying, before_sleep_log, retry, retry_if_result, stop_after_attempt, wait_chain, wait_fixed

log = logging.getLogger(__name__)
ATTEMPTS = 3


@retry(stop=stop_after_attempt(3), before_sleep=before_sleep_log(log, logging.WARNING))
def fetch(url):
    return url.get()
"""
        after = """\
import logging

from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
ATTEMPTS = 3


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(Exception,),
    )
)
def fetch(url):
    return url.get()
"""
        self.assertCodemod(before, after)  # tenacity's log hook is dropped (noted)

    def test_options_spread_at_run_time_are_kept_with_that_reason(self) -> None:
        before = """\
from tenacity import retry


class Retrying:
    def __getattr__(self, item):
        method = getattr(self.connection, item)

        @retry(**self.retry_kwargs)
        def retrier(*args, **kwargs):
            return method(*args, **kwargs)

        return retrier
"""
        self.assertUnchanged(
            before,
            [
                "@retry gets its options from `**self.retry_kwargs`, known only at run time"
                " (a policy its callers choose): adapt it by hand"
            ],
        )

    def test_before_sleep_user_hook_reading_the_function_is_kept(self) -> None:
        before = """\
from tenacity import retry, stop_after_attempt


def shout(state):
    print(state.fn.__name__, state.attempt_number)


@retry(stop=stop_after_attempt(3), before_sleep=shout)
def fetch(url):
    return url.get()
"""
        self.assertUnchanged(
            before,
            [
                "option `before_sleep=shout` runs shout with tenacity's RetryCallState"
                " (before_retry gets a toolkit.RetryState; `shout` reads `state` other than"
                " as state.attempt_number, state.outcome.exception(), state.next_action.sleep,"
                " state.upcoming_sleep, state.seconds_since_start, state.args or state.kwargs):"
                " adapt it by hand"
            ],
        )

    def test_retry_error_callback_reading_the_state_becomes_on_give_up(self) -> None:
        before = """\
from tenacity import retry, retry_if_result, stop_after_attempt, wait_fixed


def report(retry_state):
    print("gave up after", retry_state.attempt_number, retry_state.args)
    return None


@retry(stop=stop_after_attempt(3), wait=wait_fixed(1), retry_error_callback=report)
def fetch(url):
    return url.get()


@retry(stop=stop_after_attempt(5), retry=retry_if_result(lambda r: r is None),
       retry_error_callback=lambda rs: rs.outcome.result())
def poll(job):
    return job.status()


@retry(stop=stop_after_attempt(5), retry_error_callback=lambda rs: rs.outcome.result())
def poll_or_raise(job):
    return job.status()
"""
        after = """\
from tenacity import retry, stop_after_attempt
from toolkit import RetryPolicy, current_step, step


def report(retry_state):
    print("gave up after", retry_state.attempt, current_step().args)
    return None


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(Exception,),
        on_give_up=report,
    )
)
def fetch(url):
    return url.get()


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(),
        retry_on_result=lambda r: r is None,
        on_give_up=lambda rs: rs.result,
    )
)
def poll(job):
    return job.status()


@retry(stop=stop_after_attempt(5), retry_error_callback=lambda rs: rs.outcome.result())
def poll_or_raise(job):
    return job.status()
"""
        # the last outcome of poll_or_raise may be an exception, which
        # outcome.result() raised: a RetryState's result would be None, so it is kept
        self.assertCodemod(before, after)

    def test_before_sleep_hook_of_a_retrying_block_had_no_call_arguments(self) -> None:
        before = """\
from tenacity import Retrying, stop_after_attempt, wait_fixed


def shout(rs):
    print(rs.attempt_number, rs.args, rs.kwargs)


def fetch(url):
    for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_fixed(1), before_sleep=shout):
        with attempt:
            return url.get()
"""
        after = """\
from toolkit import RetryPolicy, step


def shout(rs):
    print(rs.attempt, (), {})


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(Exception,),
        before_retry=shout,
    )
)
def fetch(url):
    return url.get()
"""
        self.assertCodemod(before, after)  # tenacity's state of a block had args () and {}

    def test_before_sleep_user_hook_becomes_before_retry(self) -> None:
        before = """\
import logging

from tenacity import retry, stop_after_attempt, wait_fixed

log = logging.getLogger(__name__)


def shout(retry_state):
    log.warning(
        "attempt %d of %s failed (%s), sleeping %.1f",
        retry_state.attempt_number,
        retry_state.args[0],
        retry_state.outcome.exception(),
        retry_state.next_action.sleep,
    )


@retry(stop=stop_after_attempt(3), wait=wait_fixed(2), before_sleep=shout, reraise=True)
def fetch(url):
    return url.get()
"""
        after = """\
import logging

from toolkit import RetryPolicy, current_step, step

log = logging.getLogger(__name__)


def shout(retry_state):
    log.warning(
        "attempt %d of %s failed (%s), sleeping %.1f",
        retry_state.attempt,
        current_step().args[0],
        retry_state.exception,
        retry_state.delay,
    )


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(Exception,),
        before_retry=shout,
    )
)
def fetch(url):
    return url.get()
"""
        self.assertCodemod(before, after)

    def test_polling_on_result(self) -> None:
        before = """\
import logging

import tenacity
from tenacity import Retrying, before_sleep_log, retry, retry_if_result, stop_after_attempt, wait_chain, wait_fixed

log = logging.getLogger(__name__)
ATTEMPTS = 3


@retry(retry=retry_if_result(lambda r: r is None), wait=wait_fixed(1))
def wait_for_job(job):
    return job.result()
"""
        after = """\
import logging

from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
ATTEMPTS = 3


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(),
        retry_on_result=lambda r: r is None,
    )
)
def wait_for_job(job):
    return job.result()
"""
        self.assertCodemod(before, after)  # exceptions were never retried: retry_on=()

    def test_wait_chain(self) -> None:
        before = """\
import logging

import tenacity
from tenacity import Retrying, before_sleep_log, retry, retry_if_result, stop_after_attempt, wait_chain, wait_fixed

log = logging.getLogger(__name__)
ATTEMPTS = 3


@retry(wait=wait_chain(*[wait_fixed(1)] * 3, wait_fixed(5)), reraise=True)
def chained(x):
    return x()
"""
        self.assertUnchanged(
            before,
            [
                "wait=wait_chain(*[wait_fixed(1)] * 3, wait_fixed(5)) chains waits other than"
                " wait_fixed(seconds)"
            ],
        )

    def test_retry_error_caught(self) -> None:
        before = """\
import logging

import tenacity
from tenacity import Retrying, before_sleep_log, retry, retry_if_result, stop_after_attempt, wait_chain, wait_fixed

log = logging.getLogger(__name__)
ATTEMPTS = 3


@retry(stop=stop_after_attempt(ATTEMPTS))
def flaky(x):
    return x()


def caller(x):
    try:
        return flaky(x)
    except tenacity.RetryError:
        return None
"""
        self.assertUnchanged(
            before,
            [
                "the module handles tenacity.RetryError, raised when attempts run out:"
                " `except ... RetryError` at line 18 would not catch the last attempt's"
                " exception, which the step raises instead; change that handler, then rerun"
            ],
        )

    def test_retry_error_handler_of_a_result_poll_catches_retries_exhausted(self) -> None:
        before = """\
import logging

from tenacity import RetryError, retry, retry_if_result, stop_after_attempt, wait_fixed

log = logging.getLogger(__name__)


def settle(device):
    try:
        return _until_ready(device)
    except (RetryError, TimeoutError) as exc:
        log.info("still not ready, going on")
        return False


@retry(stop=stop_after_attempt(6), wait=wait_fixed(5), retry=retry_if_result(lambda ok: not ok))
def _until_ready(device):
    return device.ready()
"""
        after = """\
import logging

from toolkit import RetriesExhausted, RetryPolicy, step

log = logging.getLogger(__name__)


def settle(device):
    try:
        return _until_ready(device)
    except (RetriesExhausted, TimeoutError) as exc:
        log.info("still not ready, going on")
        return False


@step(
    retry=RetryPolicy(
        max_attempts=6,
        initial_delay=5.0,
        backoff=1.0,
        retry_on=(),
        retry_on_result=lambda ok: not ok,
    )
)
def _until_ready(device):
    return device.ready()
"""
        self.assertCodemod(before, after)
        _code, sites = self.run_codemod(before)
        self.assertIn(
            "the `except RetryError` at line 11 catches RetriesExhausted", sites[0].notes[0]
        )

    def test_retry_error_handler_that_reads_the_error_or_another_site_kept(self) -> None:
        reads = """\
import tenacity


def settle(device):
    try:
        return _until_ready(device)
    except tenacity.RetryError as exc:
        return exc.last_attempt.result()


@tenacity.retry(stop=tenacity.stop_after_attempt(6), retry=tenacity.retry_if_result(lambda ok: not ok))
def _until_ready(device):
    return device.ready()
"""
        self.assertUnchanged(
            reads,
            [
                "the module handles tenacity.RetryError, raised when attempts run out:"
                " `except ... RetryError` at line 7 would not catch toolkit.RetriesExhausted (a"
                " result still rejected), which the step raises instead (the handler at line 7"
                " reads the error `exc` (RetriesExhausted has no `last_attempt`));"
                " change that handler, then rerun"
            ],
        )
        other = """\
import tenacity


def settle(device):
    try:
        return _until_ready(device)
    except tenacity.RetryError:
        return False


@tenacity.retry(stop=tenacity.stop_after_attempt(6), retry=tenacity.retry_if_result(lambda ok: not ok))
def _until_ready(device):
    return device.ready()


@tenacity.retry(wait=tenacity.wait_chain(tenacity.wait_fixed(1), tenacity.wait_random(0, 5)))
def _other(device):
    return device.other()
"""
        self.assertUnchanged(
            other,
            [
                "the module handles tenacity.RetryError, raised when attempts run out:"
                " `except ... RetryError` at line 7 would not catch toolkit.RetriesExhausted (a"
                " result still rejected), which the step raises instead (1 other tenacity"
                " site(s) of the module stay, so the handler cannot change); change that"
                " handler, then rerun",
                "wait=tenacity.wait_chain(tenacity.wait_fixed(1), tenacity.wait_random(0, 5))"
                " chains waits other than wait_fixed(seconds)",
            ],
        )

    def test_retrying_block_with_code_after(self) -> None:
        before = """\
import logging

import tenacity
from tenacity import Retrying, before_sleep_log, retry, retry_if_result, stop_after_attempt, wait_chain, wait_fixed

log = logging.getLogger(__name__)
ATTEMPTS = 3


def partial(job):
    for attempt in Retrying(stop=stop_after_attempt(3)):
        with attempt:
            job.run()
    job.cleanup()
"""
        self.assertUnchanged(before, ["code follows the Retrying block"])

    def test_runtime_attempts(self) -> None:
        before = """\
import logging

import tenacity
from tenacity import Retrying, before_sleep_log, retry, retry_if_result, stop_after_attempt, wait_chain, wait_fixed

log = logging.getLogger(__name__)
ATTEMPTS = 3


def factory(n):
    @retry(stop=stop_after_attempt(n), reraise=True)
    def inner(x):
        return x()

    return inner
"""
        self.assertUnchanged(
            before,
            [
                "a retry factory: `factory` returns `inner`, whose policy comes from its"
                " callers (stop_after_attempt=n)"
            ],
        )


class TestCallForms(DurableCodemodTest):
    TRANSFORM = TenacityCodemod

    def test_retry_called_on_a_function_and_module_level_decorator(self) -> None:
        before = """\
import tenacity

patient = tenacity.retry(stop=tenacity.stop_after_attempt(4), reraise=True)


def load(store, key):
    return tenacity.retry(wait=tenacity.wait_incrementing(1, 2), reraise=True)(store.read)(key)


def save(store, key):
    return tenacity.Retrying(stop=tenacity.stop_after_attempt(2), reraise=True)(store.write, key)
"""
        after = """\
from toolkit import RetryPolicy, step

patient = step(retry=RetryPolicy(max_attempts=4, initial_delay=0.0, backoff=1.0, retry_on=(Exception,)))


def load(store, key):
    return step(retry=RetryPolicy(max_attempts=None, initial_delay=1.0, backoff=1.0, max_delay=float("inf"), retry_on=(Exception,), increment=2.0))(store.read)(key)


def save(store, key):
    return step(retry=RetryPolicy(max_attempts=2, initial_delay=0.0, backoff=1.0, retry_on=(Exception,)))(store.write)(key)
"""
        self.assertCodemod(before, after)

    def test_fallback_value_and_exception_predicate(self) -> None:
        before = """\
from tenacity import retry, retry_if_exception, stop_after_attempt


def transient(exc):
    return getattr(exc, "status", 0) >= 500


@retry(
    stop=stop_after_attempt(3),
    retry=retry_if_exception(transient),
    retry_error_callback=lambda state: {},
)
def settings(api):
    return api.settings()
"""
        after = """\
from toolkit import RetryPolicy, step


def transient(exc):
    return getattr(exc, "status", 0) >= 500


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(Exception,),
        retry_if=transient,
        on_give_up=lambda _state: {},
    )
)
def settings(api):
    return api.settings()
"""
        self.assertCodemod(before, after)

    def test_factory_returning_the_decorator(self) -> None:
        # langchain-community's `_create_retry_decorator(llm)`: `return retry(...)`, used as
        # `@retry_decorator` on a nested function; with a run-time count it is reported
        before = """\
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential


def _create_retry_decorator():
    return retry(
        reraise=True,
        stop=stop_after_attempt(6),
        wait=wait_exponential(multiplier=1, min=4, max=10),
        retry=retry_if_exception_type(TimeoutError),
    )


def _create_from_settings(llm):
    return retry(reraise=True, stop=stop_after_attempt(llm.max_retries))
"""
        after = """\
from tenacity import retry, stop_after_attempt
from toolkit import RetryPolicy, step


def _create_retry_decorator():
    return step(retry=RetryPolicy(max_attempts=6, initial_delay=1.0, backoff=2.0, max_delay=10.0, min_delay=4.0, retry_on=(TimeoutError,)))


def _create_from_settings(llm):
    return retry(reraise=True, stop=stop_after_attempt(llm.max_retries))
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        self.assertEqual(
            [(s.line, s.action, s.reason) for s in sites if s.action != "rewritten"],
            [(14, "kept", "stop_after_attempt=llm.max_retries is known only at run time")],
        )


class TestRunTimePolicies(DurableCodemodTest):
    TRANSFORM = TenacityCodemod

    def test_nested_function_reads_run_time_values(self) -> None:
        before = """\
import tenacity


class Agent:
    def wait_until_ready(self, node, timeout):
        wait = self.interval

        @tenacity.retry(
            stop=tenacity.stop_after_delay(timeout),
            retry=(tenacity.retry_if_result(lambda result: not result)
                   | tenacity.retry_if_exception_type(ConnectionError)),
            wait=tenacity.wait_fixed(wait),
            reraise=True)
        def _ready(node):
            return self.client.status(node)

        return _ready(node)
"""
        after = """\
from toolkit import RetryPolicy, step


class Agent:
    def wait_until_ready(self, node, timeout):
        wait = self.interval

        @step(
            retry=RetryPolicy(
                max_attempts=None,
                initial_delay=wait,
                backoff=1.0,
                max_delay=float("inf"),
                retry_on=(ConnectionError,),
                max_elapsed=timeout,
                retry_on_result=lambda result: not result,
            )
        )
        def _ready(node):
            return self.client.status(node)

        return _ready(node)
"""
        self.assertCodemod(before, after)

    def test_before_hook_guarded_from_the_second_attempt_becomes_before_retry(self) -> None:
        before = """\
import tenacity


def replace(store, attempts):
    def prepare(retry_state):
        \"\"\"Reload before a retry.\"\"\"
        if retry_state.attempt_number > 1:
            # the row may have moved on
            store.reload(retry_state.attempt_number)

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(attempts),
        retry=tenacity.retry_if_exception_type(KeyError),
        before=prepare,
        wait=tenacity.wait_random(max=2),
        reraise=True)
    def create():
        return store.create()

    return create()
"""
        after = """\
from toolkit import RetryPolicy, step


def replace(store, attempts):
    def prepare(retry_state):
        \"\"\"Reload before a retry.\"\"\"
        # the row may have moved on
        store.reload((retry_state.attempt + 1))

    @step(
        retry=RetryPolicy(
            max_attempts=attempts,
            initial_delay=0.0,
            backoff=1.0,
            retry_on=(KeyError,),
            random_delay=2.0,
            before_retry=prepare,
        )
    )
    def create():
        return store.create()

    return create()
"""
        self.assertCodemod(before, after)
        _code, sites = self.run_codemod(before)
        self.assertIn("before the wait instead of after it", sites[0].notes[0])
        self.assertIn("`retry_state.attempt + 1`", sites[0].notes[0])

    def test_before_hook_on_the_first_attempt_or_reading_more_is_kept(self) -> None:
        before = """\
import tenacity

from app import store


def prepare(state):
    store.reload()


def check(state):
    if state.attempt_number >= 2:
        store.check(state.outcome)


@tenacity.retry(stop=tenacity.stop_after_attempt(3), before=prepare, reraise=True)
def create():
    return store.create()


@tenacity.retry(stop=tenacity.stop_after_attempt(3), before=check, reraise=True)
def update():
    return store.update()
"""
        kept = (
            "option `before={}` runs before every attempt, the first included, with"
            " tenacity's RetryCallState (RetryPolicy.before_retry runs only between"
            " attempts, given a toolkit.RetryState)"
        )
        self.assertUnchanged(
            before,
            [
                kept.format("prepare") + "; `prepare` also runs before the first attempt (only a"
                " hook whose whole body is under `if state.attempt_number > 1:` is rewritten):"
                " adapt it by hand",
                kept.format("check") + ": `check` reads `state.outcome`, which a"
                " toolkit.RetryState does not carry",
            ],
        )

    def test_retrying_engine_in_a_decorator_factory(self) -> None:
        before = """\
import functools

import tenacity


def retry(retries=3):
    def _decorator(f):
        @functools.wraps(f)
        def _wrapper(*args, **kwargs):
            r = tenacity.Retrying(stop=tenacity.stop_after_attempt(retries), reraise=True)
            return r(f, *args, **kwargs)

        return _wrapper

    return _decorator
"""
        self.assertUnchanged(
            before,
            [
                "a retry engine: a Retrying object runs `f`, which its callers pass in, with a"
                " policy from the enclosing function's parameters: make the functions they"
                " pass steps instead"
            ],
        )

    def test_local_stop_and_wait_resolved(self) -> None:
        before = """\
import tenacity


def once(self):
    stop = tenacity.stop_after_attempt(4)
    wait = tenacity.wait_fixed(self.interval)

    @tenacity.retry(retry=tenacity.retry_if_exception_type(KeyError), stop=stop, wait=wait, reraise=True)
    def reserve():
        return self.reserve()

    return reserve()
"""
        after = """\
import tenacity
from toolkit import RetryPolicy, step


def once(self):
    stop = tenacity.stop_after_attempt(4)
    wait = tenacity.wait_fixed(self.interval)

    @step(
        retry=RetryPolicy(
            max_attempts=4,
            initial_delay=self.interval,
            backoff=1.0,
            max_delay=float("inf"),
            retry_on=(KeyError,),
        )
    )
    def reserve():
        return self.reserve()

    return reserve()
"""
        self.assertCodemod(before, after)

    def test_wait_changed_by_the_attempts(self) -> None:
        before = """\
import tenacity


def sync(store, preds):
    wait_strategy = tenacity.wait_random_exponential(max=60)

    @tenacity.retry(retry=tenacity.retry_if_result(lambda r: r is None), wait=wait_strategy)
    def _sync():
        wait_strategy.multiplier = len(preds) * 0.01
        return store.update()

    return _sync()
"""
        self.assertUnchanged(
            before,
            [
                "wait=wait_strategy: `wait_strategy` (line 5) has `wait_strategy.multiplier`"
                " changed at run time (line 9, inside `_sync`), so each delay depends on state"
                " the attempts set (a RetryPolicy's delays follow a law fixed where the step is"
                " defined; delay_from reads only the exception)"
            ],
        )

    def test_stop_chosen_by_branches(self) -> None:
        before = """\
import tenacity


class Task:
    def lock(self):
        if self.patient:
            stop_after = tenacity.stop_never
        elif self.retry:
            stop_after = tenacity.stop_after_attempt(self.attempts)
        else:
            stop_after = tenacity.stop_after_attempt(1)

        @tenacity.retry(
            retry=tenacity.retry_if_exception_type(KeyError),
            stop=stop_after,
            wait=tenacity.wait_fixed(self.interval),
            reraise=True)
        def reserve():
            self.node = self.store.reserve()

        reserve()
"""
        after = """\
import tenacity
from toolkit import RetryPolicy, step


class Task:
    def lock(self):
        if self.patient:
            stop_after = tenacity.stop_never
        elif self.retry:
            stop_after = tenacity.stop_after_attempt(self.attempts)
        else:
            stop_after = tenacity.stop_after_attempt(1)

        @step(
            retry=RetryPolicy(
                max_attempts=(None if self.patient else self.attempts if self.retry else 1),
                initial_delay=self.interval,
                backoff=1.0,
                max_delay=float("inf"),
                retry_on=(KeyError,),
            )
        )
        def reserve():
            self.node = self.store.reserve()

        reserve()
"""
        self.assertCodemod(before, after)

    def test_retrying_block_in_a_branch_of_a_decorator(self) -> None:
        before = """\
import functools

import tenacity


def wrap_retry(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        if not ENABLED:
            return f(*args, **kwargs)
        else:
            for attempt in tenacity.Retrying(stop=tenacity.stop_after_delay(10)):
                with attempt:
                    return f(*args, **kwargs)

    return wrapper
"""
        self.assertUnchanged(
            before,
            [
                "a retry engine: the Retrying block runs `f`, which its callers pass in:"
                " make the functions they pass steps instead"
            ],
        )


class TestRunTimeCounts(DurableCodemodTest):
    TRANSFORM = TenacityCodemod

    def test_run_time_count_leaves_exponential_delays_uncapped(self) -> None:
        before = """\
import tenacity


class Poller:
    def poll(self):
        @tenacity.retry(
            stop=tenacity.stop_after_attempt(self.tries),
            wait=tenacity.wait_exponential(multiplier=0.5),
            reraise=True,
        )
        def once():
            return self.client.poll()

        return once()
"""
        after = """\
from toolkit import RetryPolicy, step


class Poller:
    def poll(self):
        @step(
            retry=RetryPolicy(
                max_attempts=self.tries,
                initial_delay=0.5,
                backoff=2.0,
                max_delay=float("inf"),
                retry_on=(Exception,),
            )
        )
        def once():
            return self.client.poll()

        return once()
"""
        self.assertCodemod(before, after)
