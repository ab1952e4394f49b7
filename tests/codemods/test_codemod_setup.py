"""retry-loop codemod: an attempt that is more than its `try` (issue 13).

Statements before the try that each attempt recomputes (a client per attempt, a
value written into the request) become the step's first lines; a `finally` run after
every attempt closes the step's body. Each shape is a minimal reproduction of one read
in public code; the refusals name what keeps a loop from being one step.
"""

from __future__ import annotations

from codemods.retry_loop import RetryLoopCodemod
from codemods.testing import DurableCodemodTest


class TestSetupBeforeTheTry(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_client_made_before_each_attempt(self) -> None:
        """A client made (or picked) before every attempt: the step's first lines; the
        errors of the factory are noted."""
        before = """\
import time


class Images:
    def call(self, method, *args):
        for attempt in range(1, 4):
            client = self.client or self.new_client()
            client.headers = {"x-request": self.request_id}
            try:
                return getattr(client, method)(*args)
            except (ConnectionError, TimeoutError) as e:
                if attempt == 3:
                    raise Unreachable(str(e))
                time.sleep(1)
"""
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
def _getattr_step(self, method, args):
    client = self.client or self.new_client()
    client.headers = {"x-request": self.request_id}
    return getattr(client, method)(*args)


class Images:
    def call(self, method, *args):
        try:
            return _getattr_step(self, method, args)
        except (ConnectionError, TimeoutError) as e:
            raise Unreachable(str(e))
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        assert any("`client = self.client or self.new_client()`" in note for note in sites[0].notes)

    def test_value_written_before_each_attempt_read_after_a_refresh(self) -> None:
        """The setup reads `self.token`, which the repair between attempts renews: it runs
        after before_retry as it ran after the handler (exact: no note)."""
        before = """\
class Api:
    def get(self, path, query):
        query = dict(query)
        for is_first_attempt in (True, False):
            query["token"] = self.token
            try:
                return self.download(path, query)
            except ApiError as e:
                if is_first_attempt and e.status == 401:
                    self.refresh_token()
                    continue
                raise
"""
        after = """\
from toolkit import RetryPolicy, step

class Api:
    def get(self, path, query):
        query = dict(query)
        @step(
            retry=RetryPolicy(
                max_attempts=2,
                initial_delay=0.0,
                backoff=1.0,
                retry_on=(ApiError,),
                retry_if=lambda e: e.status == 401,
                before_retry=lambda _state: self.refresh_token(),
            )
        )
        def _download_step():
            query["token"] = self.token
            return self.download(path, query)

        return _download_step()
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        assert not any("setup" in note or "finally" in note for note in sites[0].notes)

    def test_setup_reading_the_attempt_counter(self) -> None:
        """The setup reads the range's counter: current_step().attempt."""
        before = """\
import time


def fetch(dep, key):
    for attempt in range(3):
        timeout = 5 * (attempt + 1)
        try:
            return dep.get(key, timeout=timeout)
        except TimeoutError:
            if attempt == 2:
                raise
            time.sleep(1)
"""
        after = """\
from toolkit import RetryPolicy, current_step, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(TimeoutError,),
    )
)
def fetch(dep, key):
    attempt = current_step().attempt - 1
    timeout = 5 * (attempt + 1)
    return dep.get(key, timeout=timeout)
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        assert not any("setup" in note or "finally" in note for note in sites[0].notes)

    def test_give_up_block_reads_the_handlers_message(self) -> None:
        """`message = ...` set by the handler before its give-up block: kept in front of
        it at the call site."""
        before = """\
import logging
import time

log = logging.getLogger(__name__)


def fetch(dep, key):
    for attempt in range(1, 4):
        try:
            return dep.get(key)
        except ConnectionError as e:
            server = dep.server
            message = "cannot reach the server"
            if attempt == 3:
                log.error("%s %s", message, server)
                raise Unreachable(message, server) from e
            log.warning("%s %s, retrying", message, server)
            time.sleep(1)
"""
        after = """\
import logging

from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)


def fetch(dep, key):
    @step(
        retry=RetryPolicy(
            max_attempts=3,
            initial_delay=1.0,
            backoff=1.0,
            retry_on=(ConnectionError,),
        )
    )
    def _get_step():
        return dep.get(key)

    try:
        return _get_step()
    except ConnectionError as e:
        server = dep.server
        message = "cannot reach the server"
        log.error("%s %s", message, server)
        raise Unreachable(message, server) from e
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        assert not any("setup" in note or "finally" in note for note in sites[0].notes)

    def test_finally_cleanup_closes_the_step(self) -> None:
        """`finally: pool.release(conn)` after every attempt: try/finally in the step,
        noted (it now runs before the wait)."""
        before = """\
import time


def fetch(pool, key):
    for attempt in range(3):
        conn = pool.acquire()
        try:
            return conn.get(key)
        except ConnectionError:
            if attempt == 2:
                raise
            time.sleep(2)
        finally:
            pool.release(conn)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
    )
)
def fetch(pool, key):
    conn = pool.acquire()
    try:
        return conn.get(key)
    finally:
        pool.release(conn)
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        assert any("before the wait" in note for note in sites[0].notes)

    def test_finally_without_wait(self) -> None:
        """No wait, no repair, nothing run when attempts run out: only the errors of the
        cleanup are noted."""
        before = """\
def send(channel, message):
    for attempt in range(3):
        try:
            return channel.publish(message)
        except BrokenPipeError:
            if attempt == 2:
                raise
        finally:
            channel.flush()
"""
        after = """\
from toolkit import RetryPolicy, step

@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(BrokenPipeError,),
    )
)
def send(channel, message):
    try:
        return channel.publish(message)
    finally:
        channel.flush()
"""
        self.assertCodemod(before, after)
        _, sites = self.run_codemod(before)
        assert any("`channel.flush()`" in note for note in sites[0].notes)

    def test_put_then_wait_keyword_named_like_the_counter(self) -> None:
        """The write before the try is redone at every attempt, as the loop did; the
        keyword `retries=5` is no read of the counter `retries`."""
        before = """\
def put_key(client, name):
    max_tries = 3
    for retries in range(1, max_tries + 1):
        client.put(name)
        try:
            client.wait_applied(name, retries=5)
            return
        except NotApplied:
            if retries == max_tries:
                raise
"""
        after = """\
from toolkit import RetryPolicy, step

@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(NotApplied,),
    )
)
def put_key(client, name):
    client.put(name)
    client.wait_applied(name, retries=5)
    return
"""
        self.assertCodemod(before, after)


class TestSetupRefusals(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_setup_reading_what_the_handler_changes(self) -> None:
        before = """\
import time


def fetch(dep, servers):
    i = 0
    for attempt in range(3):
        server = servers[i]
        try:
            return dep.get(server)
        except ConnectionError:
            i += 1
            time.sleep(1)
    raise RuntimeError("no server")
"""
        self.assertUnchanged(
            before,
            [
                "the setup `server = servers[i]` before the try reads `i`, which the loop"
                " changes between attempts"
            ],
        )

    def test_handler_reading_what_the_setup_set(self) -> None:
        before = """\
import time


def fetch(dep, bad):
    for attempt in range(3):
        server = dep.pick()
        try:
            return dep.get(server)
        except ConnectionError:
            bad.add(server)
            time.sleep(1)
    raise RuntimeError("no server")
"""
        self.assertUnchanged(
            before,
            ["the handler reads `server`, set before the try by `server = dep.pick()`"],
        )

    def test_wait_between_the_setup_and_the_try(self) -> None:
        before = """\
import time


def fetch(dep):
    for attempt in range(3):
        client = dep.connect()
        if attempt:
            time.sleep(2)
        try:
            return client.get()
        except ConnectionError:
            pass
    raise RuntimeError("no server")
"""
        self.assertUnchanged(
            before,
            ["the loop runs `if attempt:` between the setup `client = dep.connect()` and the try"],
        )

    def test_setup_value_read_when_attempts_run_out(self) -> None:
        before = """\
def make_name(create):
    tries = 5
    while tries > 0:
        name = "tmp-" + new_suffix()
        try:
            create_file(name)
            break
        except FileExistsError:
            pass
        tries -= 1
    return name
"""
        self.assertUnchanged(
            before,
            [
                "when attempts run out the code after the loop reads `name`,"
                " which a failed attempt may have set"
            ],
        )

    def test_finally_reading_the_counter(self) -> None:
        before = """\
import time


def fetch(dep, stats):
    tries = 0
    while True:
        try:
            return dep.get()
        except ConnectionError:
            if tries >= 3:
                raise
            tries += 1
            time.sleep(1)
        finally:
            stats["tries"] = tries
"""
        self.assertUnchanged(
            before,
            [
                'the finally block (`stats["tries"] = tries`) reads `tries`, which the loop'
                " changes between attempts"
            ],
        )

    def test_finally_after_else_work(self) -> None:
        before = """\
import time


def fetch(dep):
    for attempt in range(3):
        try:
            value = dep.get()
        except ConnectionError:
            time.sleep(1)
        else:
            dep.commit(value)
            break
        finally:
            dep.release()
"""
        self.assertUnchanged(
            before,
            [
                "the try's else block runs before its finally block; after the step it would run"
                " after it"
            ],
        )

    def test_finally_assigning(self) -> None:
        before = """\
def fetch(dep):
    for attempt in range(3):
        try:
            return dep.get()
        except ConnectionError:
            if attempt == 2:
                raise
        finally:
            done = True
"""
        self.assertUnchanged(
            before,
            ["the finally block assigns `done` after every attempt"],
        )

    def test_loop_else_reading_what_the_setup_set(self) -> None:
        before = """\
import time


def fetch(dep):
    for attempt in range(3):
        server = dep.pick()
        try:
            return dep.get(server)
        except ConnectionError:
            time.sleep(1)
    else:
        raise RuntimeError(server)
"""
        self.assertUnchanged(
            before,
            ["the loop's else block reads `server`, set before the try by `server = dep.pick()`"],
        )

    def test_setup_reading_the_count_is_exact(self) -> None:
        """The count the loop header reads does not change between attempts; plain
        arithmetic raises nothing the handler catches: no note."""
        before = """\
import time


def fetch(dep, n):
    for attempt in range(n):
        share = dep.total / n
        try:
            return dep.get(share)
        except ConnectionError:
            time.sleep(1)
    raise RuntimeError("no")
"""
        code, sites = self.run_codemod(before)
        assert sites[0].action == "rewritten"
        assert "        share = dep.total / n\n        return dep.get(share)\n" in code
        assert not any("setup" in note for note in sites[0].notes)

    def test_setup_raising_a_caught_type(self) -> None:
        before = """\
import time


def fetch(dep):
    for attempt in range(3):
        if not dep.ready:
            raise NotReady
        try:
            return dep.get()
        except NotReady:
            time.sleep(1)
    raise RuntimeError("no")
"""
        self.assertUnchanged(
            before,
            [
                "the setup before the try raises `NotReady`, which the loop's except clauses"
                " would catch inside the step (the legacy loop let it through)"
            ],
        )
