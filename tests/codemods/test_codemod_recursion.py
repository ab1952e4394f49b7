"""Retries by recursion (``return f(..., retries - 1)``) are read as a loop over the counter
and rewritten by the loop codemod, or refused with the reason (codemods/_recursion.py).

Each input is a minimal reproduction of a shape read in public code (a countdown argument,
a private counter going up, a delay from the counter, a Retry-After supplied by the
failure, async variants, a method); the refusals name state carried into the next
attempt, generators, calls not in tail position, retries decided after the ``try`` and
counters callers can pass that the policy cannot follow.
"""

from __future__ import annotations

from codemods.retry_loop import RetryLoopCodemod
from codemods.testing import DurableCodemodTest


class TestRecursionRewrites(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_countdown(self) -> None:
        """A public countdown keeps its parameter: the step is defined in the function, its
        attempts read from `retries` at run time (callers passing `retries=` keep their meaning)."""
        before = """\
import time


def fetch(url, retries=3):
    try:
        return get(url)
    except (ConnectionError, TimeoutError):
        if retries <= 0:
            raise
        time.sleep(2)
        return fetch(url, retries - 1)
"""
        after = """\
from toolkit import RetryPolicy, step


def fetch(url, retries=3):
    @step(
        retry=RetryPolicy(
            max_attempts=max(1, retries + 1),
            initial_delay=2.0,
            backoff=1.0,
            retry_on=(ConnectionError, TimeoutError),
        )
    )
    def _get_step():
        return get(url)

    return _get_step()
"""
        self.assertCodemod(before, after)

    def test_private(self) -> None:
        """A private counter only the recursion passes starts at its default: the parameter goes."""
        before = """\
import time


def _fetch(url, _retries=3):
    try:
        return get(url)
    except (ConnectionError, TimeoutError):
        if _retries <= 0:
            raise
        time.sleep(2)
        return _fetch(url, _retries - 1)


def fetch(url):
    return _fetch(url).strip()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(ConnectionError, TimeoutError),
    )
)
def _fetch(url):
    return get(url)


def fetch(url):
    return _fetch(url).strip()
"""
        self.assertCodemod(before, after)

    def test_upcounter(self) -> None:
        """Counting up, the call a statement (the function returns None), a log call dropped."""
        before = """\
import time


def _await_server(api, attempts=0):
    try:
        api.heartbeat()
    except ConnectionError as e:
        if attempts > 15:
            raise e
        else:
            print("waiting for the server")
            time.sleep(4)
            _await_server(api, attempts + 1)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=17,
        initial_delay=4.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
    )
)
def _await_server(api):
    api.heartbeat()
"""
        self.assertCodemod(before, after)

    def test_expo(self) -> None:
        """A delay computed from the counter (`2 ** attempt`) becomes an exponential backoff."""
        before = """\
import time


def _download(url, attempt=0):
    try:
        return get(url)
    except ConnectionError:
        if attempt >= 4:
            raise
        time.sleep(2 ** attempt)
        return _download(url, attempt + 1)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=1.0,
        backoff=2.0,
        retry_on=(ConnectionError,),
    )
)
def _download(url):
    return get(url)
"""
        self.assertCodemod(before, after)

    def test_retryafter(self) -> None:
        """No counter: the failure supplies the delay (Retry-After), retried without limit."""
        before = """\
import time


class Client:
    def api_call(self, method, **kwargs):
        try:
            return self._send(method, **kwargs)
        except RateLimited as e:
            time.sleep(e.retry_after)
            return self.api_call(method, **kwargs)
"""
        after = """\
from toolkit import RetryPolicy, step


class Client:
    @step(
        retry=RetryPolicy(
            max_attempts=None,
            initial_delay=0.0,
            backoff=1.0,
            max_delay=float("inf"),
            retry_on=(RateLimited,),
            delay_from=lambda e: e.retry_after,
        )
    )
    def api_call(self, method, **kwargs):
        return self._send(method, **kwargs)
"""
        self.assertCodemod(before, after)

    def test_async(self) -> None:
        """`await asyncio.sleep`, `return await f(...)`; `if not retries` counts down (no flag)."""
        before = """\
import asyncio


async def fetch(url, retries=3):
    try:
        return await get(url)
    except ConnectionError:
        if not retries:
            raise
        await asyncio.sleep(1)
        return await fetch(url, retries - 1)
"""
        after = """\
from toolkit import RetryPolicy, step


async def fetch(url, retries=3):
    @step(
        retry=RetryPolicy(
            max_attempts=retries + 1,
            initial_delay=1.0,
            backoff=1.0,
            retry_on=(ConnectionError,),
        )
    )
    async def _get_step():
        return await get(url)

    return await _get_step()
"""
        self.assertCodemod(before, after)

    def test_giveup(self) -> None:
        """A method, `if retries: ... return self.send(...)` then `raise`."""
        before = """\
import time


class Client:
    def send(self, request, retries=3):
        try:
            return self.conn.request(request)
        except OSError:
            if retries:
                time.sleep(3)
                return self.send(request, retries - 1)
            raise
"""
        after = """\
from toolkit import RetryPolicy, step


class Client:
    def send(self, request, retries=3):
        @step(
            retry=RetryPolicy(
                max_attempts=retries + 1,
                initial_delay=3.0,
                backoff=1.0,
                retry_on=(OSError,),
            )
        )
        def _request_step():
            return self.conn.request(request)

        return _request_step()
"""
        self.assertCodemod(before, after)

    def test_a_second_run_changes_nothing(self) -> None:
        before = """\
import time


def _fetch(url, _retries=3):
    try:
        return get(url)
    except ConnectionError:
        if _retries <= 0:
            raise
        time.sleep(2)
        return _fetch(url, _retries - 1)
"""
        once, _ = self.run_codemod(before)
        twice, sites = self.run_codemod(once)
        self.assertEqual(twice, once)
        self.assertEqual(sites, [])

    def test_a_delay_read_from_the_failure_into_a_name(self) -> None:
        """No counter: the delay the failure supplies, kept in a name and slept, is
        ``delay_from``; the error test is ``retry_if``, the log calls are dropped."""
        before = """\
import time


class Rtm:
    def issue_url(self):
        try:
            response = self.web.connect()
            return response["url"]
        except ApiError as e:
            if e.response["error"] == "ratelimited":
                delay = int(e.response.headers.get("Retry-After", "30"))
                self.logger.info(f"Rate limited. Retrying in {delay} seconds...")
                time.sleep(delay)
                return self.issue_url()
            else:
                self.logger.error(f"Failed: {e}")
                raise e
"""
        after = """\
from toolkit import RetryPolicy, step


class Rtm:
    @step(
        retry=RetryPolicy(
            max_attempts=None,
            initial_delay=0.0,
            backoff=1.0,
            max_delay=float("inf"),
            retry_on=(ApiError,),
            retry_if=lambda e: e.response["error"] == "ratelimited",
            delay_from=lambda e: int(e.response.headers.get("Retry-After", "30")),
        )
    )
    def issue_url(self):
        response = self.web.connect()
        return response["url"]
"""
        self.assertCodemod(before, after)


class TestRecursionRefused(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_state_carried_in_another_argument(self) -> None:
        before = """\
import time


def fetch(url, retries=3, timeout=5):
    try:
        return get(url, timeout)
    except ConnectionError:
        if retries <= 0:
            raise
        time.sleep(1)
        return fetch(url, retries - 1, timeout * 2)
"""
        self.assertUnchanged(
            before,
            [
                "the recursive call changes `retries`, `timeout` (state carried into the next"
                " attempt): make it a step by hand"
            ],
        )

    def test_an_argument_left_to_its_default(self) -> None:
        before = """\
import time


def fetch(url, timeout=5, retries=3):
    try:
        return get(url, timeout)
    except ConnectionError:
        if retries <= 0:
            raise
        time.sleep(1)
        return fetch(url, retries=retries - 1)
"""
        self.assertUnchanged(
            before,
            [
                "the recursive call `fetch(url, retries=retries - 1)` resets `timeout` to its"
                " default (state carried into the next attempt)"
            ],
        )

    def test_a_generator(self) -> None:
        before = """\
import time


def rows(url, retries=3):
    try:
        yield from get(url)
    except ConnectionError:
        if retries <= 0:
            raise
        time.sleep(1)
        yield from rows(url, retries - 1)
"""
        self.assertUnchanged(
            before,
            [
                "a generator that retries by calling itself: its values are yielded, no step"
                " can return them"
            ],
        )

    def test_the_call_is_not_in_tail_position(self) -> None:
        before = """\
import time


def fetch(url, retries=3):
    try:
        return get(url).strip()
    except ConnectionError:
        if retries <= 0:
            raise
        time.sleep(1)
        return fetch(url, retries - 1).strip()
"""
        self.assertUnchanged(
            before,
            [
                "the recursive call `fetch(url, retries - 1)` is not in tail position of the"
                " handler (its value is used, or code runs after it)"
            ],
        )

    def test_a_retry_decided_after_the_try(self) -> None:
        """As s3cmd's ``send_request``: a status read after the ``try`` retries too."""
        before = """\
import time


def send(url, retries=3):
    try:
        response = get(url)
    except ConnectionError:
        if retries <= 0:
            raise
        time.sleep(1)
        return send(url, retries - 1)
    if response.status >= 500 and retries:
        time.sleep(1)
        return send(url, retries - 1)
    return response
"""
        self.assertUnchanged(
            before,
            [
                "retries by calling itself from 2 places, 1 of them outside an except handler"
                " (a retry decided after the `try`, on a returned value): make it a step by hand"
            ],
        )

    def test_a_public_counter_going_up(self) -> None:
        """Callers may pass ``attempt=2``: a policy read at run time does not follow it."""
        before = """\
import time


def _download(url, attempt=0):
    try:
        return get(url)
    except ConnectionError:
        if attempt >= 4:
            raise
        time.sleep(2 ** attempt)
        return _download(url, attempt + 1)


def resume(url):
    return _download(url, attempt=2)
"""
        self.assertUnchanged(
            before,
            [
                "retries by calling itself with `attempt` changed, read as a loop: callers can"
                " pass `attempt`, and the policy cannot follow it: the policy read for"
                " `attempt` does not hold when it is -1: the policy gives 1 attempt(s), the"
                " loop 6 attempt(s) (it treats small or empty values its own way)"
            ],
        )

    def test_a_handler_that_falls_through_after_a_success_path_that_does_too(self) -> None:
        before = """\
import time


def store(db, row, retries=3):
    try:
        db.put(row)
    except ConnectionError:
        if retries > 0:
            time.sleep(1)
            store(db, row, retries - 1)
    db.flush()
"""
        self.assertUnchanged(
            before,
            [
                "the recursive call `store(db, row, retries - 1)` drops its value while the"
                " function returns one, or code runs after it"
            ],
        )

    def test_a_decorated_recursion(self) -> None:
        """The recursive call goes through the decorator (a cache, a tracer, a retry)."""
        before = """\
import functools
import time


@functools.lru_cache
def fetch(path, retries=3):
    try:
        return get(path)
    except ConnectionError:
        if retries <= 0:
            raise
        time.sleep(1)
        return fetch(path, retries - 1)
"""
        self.assertUnchanged(
            before,
            [
                "the recursive call goes through the decorator `@functools.lru_cache`, which a"
                " loop over the attempts would skip: make it a step by hand"
            ],
        )
