"""retry-loop codemod: run-time caps and delays, ``super()`` in an extracted step, a give-up
that depends on a run-time count, oslo's ``save_and_reraise_exception``, comments kept,
and the precise reasons of loops that stay (each a minimal reproduction of a shape read in
public code, see ../shared/corpus/dev-index.tsv)."""

from __future__ import annotations

from codemods.retry_loop import RetryLoopCodemod
from codemods.runner import transform_source
from codemods.testing import DurableCodemodTest


class TestRewrites(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_a_cap_read_from_the_configuration_and_a_getter_of_the_exception(self) -> None:
        """``settings.config.getint(...)`` with constants is read once where the step is
        defined (noted); ``e.getcode()`` is a getter a predicate may call again."""
        before = """\
import time

import settings


def read(client, url, retries=5):
    for i in range(retries):
        try:
            return client.get(url).json()
        except ConnectionError:
            pass
        if i + 1 != retries:
            time.sleep(min(2 ** i, settings.config.getint("net", "max_delay")))
    return ""


def fetch(opener, url, tries=4, retry_missing=False):
    for i in range(tries):
        try:
            return opener.open(url).read()
        except OSError as e:
            if e.getcode() == 404 and not retry_missing:
                return ""
        time.sleep(2)
    return ""
"""
        after = """\
import settings
from toolkit import RetryPolicy, step


def read(client, url, retries=5):
    @step(
        retry=RetryPolicy(
            max_attempts=retries,
            initial_delay=min(1, settings.config.getint('net', 'max_delay')),
            backoff=2.0,
            max_delay=settings.config.getint('net', 'max_delay'),
            retry_on=(ConnectionError,),
        )
    )
    def _json_step():
        return client.get(url).json()

    try:
        return _json_step()
    except ConnectionError:
        pass
    return ""


def fetch(opener, url, tries=4, retry_missing=False):
    @step(
        retry=RetryPolicy(
            max_attempts=tries,
            initial_delay=2.0,
            backoff=1.0,
            retry_on=(OSError,),
            retry_if=lambda e: not (e.getcode() == 404 and not retry_missing),
        )
    )
    def _read_step():
        return opener.open(url).read()

    try:
        return _read_step()
    except OSError as e:
        if e.getcode() == 404 and not retry_missing:
            return ""
    return ""
"""
        self.assertCodemod(before, after)

    def test_a_give_up_that_depends_on_a_flag_stays_at_the_call_site(self) -> None:
        """``if first and <test on e>: <repair>; continue`` then ``elif not fatal: return
        False`` then ``raise``: the test is retry_if, the repair before_retry, and what
        follows the retrying branch runs at the call site for any exception the step
        raises (rejected at once or the last one), as it ran in the handler."""
        before = """\
def get(client, url, fatal=True):
    for first in (True, False):
        try:
            return client.get(url).json()
        except IOError as e:
            if first and isinstance(e.__cause__, KeyError):
                client.refresh()
                continue
            elif not fatal:
                client.warn(str(e))
                return False
            raise
"""
        after = """\
from toolkit import RetryPolicy, step

def get(client, url, fatal=True):
    @step(
        retry=RetryPolicy(
            max_attempts=2,
            initial_delay=0.0,
            backoff=1.0,
            retry_on=(IOError,),
            retry_if=lambda e: isinstance(e.__cause__, KeyError),
            before_retry=lambda _state: client.refresh(),
        )
    )
    def _json_step():
        return client.get(url).json()

    try:
        return _json_step()
    except IOError as e:
        if not fatal:
            client.warn(str(e))
            return False
        raise
"""
        self.assertCodemod(before, after)
        _, sites = transform_source(before)
        assert any("now handled there" in n for n in sites[0].notes), sites

    def test_the_call_site_handler_is_tidy(self) -> None:
        """No trailing ``pass`` after other statements, no ``as e`` the handler no longer
        reads (its log went into the policy)."""
        before = """\
import logging
import time

log = logging.getLogger(__name__)


def get(client, url):
    for attempt in range(3):
        try:
            return client.get(url).json()
        except OSError as e:
            log.warning("failed: %s", e)
            time.sleep(1)
    return None
"""
        after = """\
import logging

from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(OSError,),
    )
)
def _json_step(client, url):
    return client.get(url).json()


def get(client, url):
    try:
        return _json_step(client, url)
    except OSError:
        pass
    return None
"""
        self.assertCodemod(before, after)

    def test_a_time_budget_from_a_parameter(self) -> None:
        """``if monotonic() - start > deadline: raise`` before a constant wait: the budget
        plus the wait, written from the parameter in the step defined in place."""
        before = """\
import time


def get(client, url, deadline=30):
    start = time.monotonic()
    while True:
        try:
            return client.get(url).json()
        except OSError:
            if time.monotonic() - start > deadline:
                raise
            time.sleep(3)
"""
        after = """\
from toolkit import RetryPolicy, step


def get(client, url, deadline=30):
    @step(
        retry=RetryPolicy(
            max_attempts=None,
            initial_delay=3.0,
            backoff=1.0,
            retry_on=(OSError,),
            max_elapsed=deadline + 3,
        )
    )
    def _json_step():
        return client.get(url).json()

    return _json_step()
"""
        self.assertCodemod(before, after)

    def test_backoff_capped_by_an_argument(self) -> None:
        """``min(cap, backoff * 2 ** n)`` with both from arguments: the cap is read, and a cap
        below the first delay stays exact (``min(backoff, cap)``).
        """
        before = """\
import time


def request(client, url, retries=0, backoff=0.3, max_backoff=10.0):
    attempt = 0
    while True:
        try:
            res = client.get(url)
            break
        except ConnectionError as err:
            if attempt >= retries:
                raise RuntimeError(f"cannot open {url}") from err
            attempt += 1
            time.sleep(min(max_backoff, backoff * (2 ** (attempt - 1))))
    return res.json()
"""
        after = """\
from toolkit import RetryPolicy, step


def request(client, url, retries=0, backoff=0.3, max_backoff=10.0):
    @step(
        retry=RetryPolicy(
            max_attempts=max(1, retries + 1),
            initial_delay=min(backoff, max_backoff),
            backoff=2.0,
            max_delay=max_backoff,
            retry_on=(ConnectionError,),
        )
    )
    def _get_step():
        res = client.get(url)
        return res

    try:
        res = _get_step()
    except ConnectionError as err:
        raise RuntimeError(f"cannot open {url}") from err
    return res.json()
"""
        self.assertCodemod(before, after)
        self.assertCodemod(after, after)  # a second run changes nothing

    def test_delay_slept_only_when_set(self) -> None:
        """``if delay: sleep(delay)``: a delay, not a flag (0 and None sleep nothing, as ``delay or
        0``).
        """
        before = """\
import time


class Notifier:
    def send(self, payload):
        success = False
        attempts = 0
        while not success and attempts <= self.retries:
            if attempts:
                if self.retry_delay:
                    time.sleep(self.retry_delay)
            attempts += 1
            try:
                self.http.post(self.url, json=payload)
                success = True
            except OSError:
                pass
"""
        after = """\
from toolkit import RetryPolicy, step


class Notifier:
    def send(self, payload):
        @step(
            retry=RetryPolicy(
                max_attempts=self.retries + 1,
                initial_delay=(self.retry_delay or 0),
                backoff=1.0,
                max_delay=float("inf"),
                retry_on=(OSError,),
            )
        )
        def _post_step():
            self.http.post(self.url, json=payload)

        try:
            _post_step()
        except OSError:
            pass
"""
        self.assertCodemod(before, after)
        self.assertCodemod(after, after)  # a second run changes nothing

    def test_super_in_an_extracted_step(self) -> None:
        """``super()`` in an attempt that leaves its method becomes ``super(Cls, self)``, ``self``
        passed in.
        """
        before = """\
import time


class Session(Base):
    def request(self, url):
        url = url.strip()
        for attempt in range(3):
            try:
                res = super().request(url)
                break
            except ConnectionError:
                time.sleep(2)
        else:
            raise RuntimeError("gave up")
        return res.text
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
def _request_step(self, url):
    res = super(Session, self).request(url)
    return res


class Session(Base):
    def request(self, url):
        url = url.strip()
        try:
            res = _request_step(self, url)
        except ConnectionError:
            raise RuntimeError("gave up")
        return res.text
"""
        self.assertCodemod(before, after)
        self.assertCodemod(after, after)  # a second run changes nothing

    def test_reraise_at_once_when_no_retry_was_asked(self) -> None:
        """``if attempt == 0: raise`` else ``raise MaxRetries``: the call site re-raises when no
        retry was asked for.
        """
        before = """\
import time


class Command:
    def output(self):
        attempt = 0
        while True:
            try:
                return self.run_once()
            except CommandFailed as exc:
                if attempt < self.retry_times:
                    time.sleep(self.retry_sleep)
                    attempt += 1
                elif attempt == 0:
                    raise
                else:
                    raise MaxRetries(*exc.args)
"""
        after = """\
from toolkit import RetryPolicy, step


class Command:
    def output(self):
        @step(
            retry=RetryPolicy(
                max_attempts=max(1, self.retry_times + 1),
                initial_delay=self.retry_sleep,
                backoff=1.0,
                max_delay=float("inf"),
                retry_on=(CommandFailed,),
            )
        )
        def _run_once_step():
            return self.run_once()

        try:
            return _run_once_step()
        except CommandFailed as exc:
            if self.retry_times <= 0:
                raise
            raise MaxRetries(*exc.args)
"""
        self.assertCodemod(before, after)
        self.assertCodemod(after, after)  # a second run changes nothing

    def test_comments_of_the_attempt_are_kept(self) -> None:
        """Comments of the attempt go with it: the ``try:`` line's, and the one above the dropped
        ``break``.
        """
        before = """\
import time


def fetch(client, url):
    for attempt in range(3):
        try:  # the call that fails
            # first the request
            resp = client.get(url)
            # then the body
            data = resp.json()
            # the body is read
            break
        except ConnectionError:
            time.sleep(1)
    else:
        raise RuntimeError("no")
    return data
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
    )
)
def _get_step(client, url):
    # the call that fails
    # first the request
    resp = client.get(url)
    # then the body
    data = resp.json()
    # the body is read
    return data


def fetch(client, url):
    try:
        data = _get_step(client, url)
    except ConnectionError:
        raise RuntimeError("no")
    return data
"""
        self.assertCodemod(before, after)
        self.assertCodemod(after, after)  # a second run changes nothing

    def test_decided_inside_save_and_reraise(self) -> None:
        """oslo's ``save_and_reraise_exception``: ``ctxt.reraise = False`` ending a branch retries,
        the rest re-raises.
        """
        before = """\
from oslo_utils import excutils


def add_metadata(context, aggregate_id, metadata, max_retries=10):
    all_keys = metadata.keys()
    for attempt in range(max_retries):
        try:
            with context.writer():
                context.insert(aggregate_id, all_keys, metadata)
                return metadata
        except DuplicateEntry:
            # a concurrent writer won: try again unless this was the last attempt
            with excutils.save_and_reraise_exception() as ctxt:
                if attempt < max_retries - 1:
                    ctxt.reraise = False
                else:
                    msg = "Add metadata failed after %(n)s retries" % {"n": max_retries}
                    LOG.warning(msg)
"""
        after = """\
from oslo_utils import excutils
from toolkit import RetryPolicy, step


def add_metadata(context, aggregate_id, metadata, max_retries=10):
    all_keys = metadata.keys()
    # a concurrent writer won: try again unless this was the last attempt
    @step(
        retry=RetryPolicy(
            max_attempts=max_retries,
            initial_delay=0.0,
            backoff=1.0,
            retry_on=(DuplicateEntry,),
        )
    )
    def _writer_step():
        with context.writer():
            context.insert(aggregate_id, all_keys, metadata)
            return metadata

    return _writer_step()
"""
        self.assertCodemod(before, after)
        self.assertCodemod(after, after)  # a second run changes nothing


class TestReasons(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_a_name_the_attempt_only_assigns_is_not_said_read(self) -> None:
        before = """\
import time


def fetch(client, url):
    for attempt in range(3):
        resp = None
        try:
            resp = client.get(url)
            break
        except ConnectionError:
            time.sleep(1)
    return resp
"""
        self.assertUnchanged(
            before,
            [
                (
                    "the attempt body assigns `resp`, which the loop also sets (`resp = "
                    "None`): the value left after the loop comes from both"
                ),
            ],
        )

    def test_a_delay_the_handler_sets_is_not_a_run_time_value(self) -> None:
        # the handler's own `delay` has no value where a step would be defined (it was
        # once written as `initial_delay=delay`, unbound there)
        before = """\
import time


def call(api):
    for i in range(3):
        try:
            return api.get()
        except Busy as e:
            delay = e.retry_after
            time.sleep(delay)
    return delay
"""
        self.assertUnchanged(
            before,
            ["sleep is not a backoff: the delay depends on `delay`, which the loop itself sets"],
        )

    def test_two_tries_say_what_the_retry_decision_reads(self) -> None:
        before = """\
import time


def request(path, endpoint):
    for attempt in range(5):
        started = None
        try:
            with open(path) as f:
                address, started = f.read().split()
        except Exception:
            raise NotRunning()
        try:
            return call(address, endpoint)
        except ConnectError:
            if not (started <= time.time() <= started + 1.0):
                raise NotRunning()
        time.sleep(1.0)
    raise NotRunning()
"""
        self.assertUnchanged(
            before,
            [
                (
                    "the loop body has 2 tries (lines 7, 12): the attempt is the whole body, "
                    "and the retry decision `not (started <= time.time() <= started + 1.0)` "
                    "reads `started`, set by the attempt before the try that fails (not a "
                    "retry on the exception alone)"
                ),
            ],
        )

    def test_a_helper_generator_from_another_module_is_named(self) -> None:
        before = """\
import time

from .helpers import attempts_of


def call(client, request, retries):
    for attempt in attempts_of(retries):
        try:
            return client.send(request)
        except ConnectionError:
            time.sleep(2)
    raise RuntimeError("failed")
"""
        self.assertUnchanged(
            before,
            [
                (
                    "loops over `attempts_of(retries)` rather than over attempts: "
                    "`attempts_of` comes from `.helpers`, and what a helper yields is not "
                    "read across modules"
                ),
            ],
        )


def test_a_returned_argument_and_a_returned_response_get_notes() -> None:
    source = """\
import time


def publish(channel, message):
    for attempt in range(3):
        try:
            channel.publish(message.encode())
            return message
        except ConnectionError:
            time.sleep(1)
    raise RuntimeError("not published")


def load(session, url):
    for attempt in range(3):
        try:
            res = session.request("GET", url)
            break
        except ConnectionError:
            time.sleep(1)
    else:
        raise RuntimeError("no")
    return res.status_code
"""
    _, sites = transform_source(source)
    publish, load = sites
    assert publish.action == load.action == "rewritten"
    assert any(
        n.startswith("the step returns `message`, which it was handed") for n in publish.notes
    )
    assert any(
        n.startswith("the step returns the value of `session.request(...)`") for n in load.notes
    )


class TestMoreReasons(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_a_value_the_small_values_cannot_read_is_named(self) -> None:
        before = """\
class Cluster:
    def execute(self, command, targets=None):
        retries = 0 if targets else self.retry.get_retries()
        for _ in range(1 + retries):
            try:
                return self.send(command, targets)
            except ConnectionError:
                if retries > 0:
                    retries -= 1
                    continue
                raise
"""
        self.assertUnchanged(
            before,
            # `targets` is a flag (`0 if targets else ...`): read with it false, the
            # count is a call made at run time
            ["the initial value of `retries` depends on `self.retry.get_retries()`"],
        )

    def test_the_give_up_code_reading_what_an_attempt_set_is_refused(self) -> None:
        """``return partial`` after the last attempt read what the failed attempt left;
        at the call site the step's locals are gone (it would return the value from
        before the loop): refused, with the name."""
        before = """\
import time


def get(client, url):
    partial = None
    for attempt in range(3):
        try:
            partial = client.head(url)
            return client.get(url)
        except IOError:
            if attempt < 2:
                time.sleep(1)
                continue
            return partial
"""
        self.assertUnchanged(
            before, ["the code run when the step gives up reads `partial`, set by the attempt"]
        )

    def test_a_run_time_budget_with_a_run_time_wait_is_refused(self) -> None:
        before = """\
import time


def get(client, url, deadline=30, delay=2):
    start = time.monotonic()
    while True:
        try:
            return client.get(url)
        except OSError:
            if time.monotonic() - start > deadline:
                raise
            time.sleep(delay)
"""
        self.assertUnchanged(
            before,
            [
                "the time budget `time.monotonic() - start > deadline` comes with a wait or a"
                " count known at run time"
            ],
        )

    def test_a_delay_read_from_a_call_says_so(self) -> None:
        before = """\
import time

import settings


def fetch(client, url):
    for i in range(5):
        try:
            return client.read(url)
        except OSError:
            time.sleep(min(2**i, settings.delay_for(i)))
    return ""
"""
        self.assertUnchanged(
            before,
            [
                "sleep is not a backoff: the delay depends on"
                " `settings.delay_for(i)`, a call made again before each wait"
                " (a run-time value is read from a name or an attribute only)"
            ],
        )


class TestBreakAfterTheTry(DurableCodemodTest):
    """``try: x = call() / except E: wait; continue`` then ``break``: the break is the
    attempt's success; a handler that falls through to it is not a retry."""

    TRANSFORM = RetryLoopCodemod

    def test_the_break_after_the_try_is_the_success(self) -> None:
        before = """\
import time


def fetch(store, key):
    for attempt in range(3):
        try:
            value = store.get(key)
        except ConnectionError:
            time.sleep(2)
            continue
        break
    else:
        raise TimeoutError(key)
    return value
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
def _get_step(store, key):
    value = store.get(key)
    return value


def fetch(store, key):
    try:
        value = _get_step(store, key)
    except ConnectionError:
        raise TimeoutError(key)
    return value
"""
        self.assertCodemod(before, after)

    def test_a_handler_falling_through_to_the_break_is_no_retry(self) -> None:
        before = """\
import time


def fetch(store, key):
    for attempt in range(3):
        try:
            value = store.get(key)
        except ConnectionError:
            time.sleep(2)
        break
    return value
"""
        self.assertCodemod(before, before)


def test_a_call_tried_once_more_in_its_handler_is_a_two_attempt_step() -> None:
    before = """\
class Store:
    def query(self, q):
        try:
            return self.conn.execute(q)
        except ConnectionError:
            self.reconnect()
            return self.conn.execute(q)
"""
    after = """\
from toolkit import RetryPolicy, step

class Store:
    def query(self, q):
        @step(
            retry=RetryPolicy(
                max_attempts=2,
                initial_delay=0.0,
                backoff=1.0,
                retry_on=(ConnectionError,),
                before_retry=lambda _state: self.reconnect(),
            )
        )
        def _execute_step():
            return self.conn.execute(q)

        return _execute_step()
"""
    code, sites = transform_source(before)
    assert code == after
    (site,) = sites
    assert (site.action, site.line, site.end_line) == ("rewritten", 3, 7)
    assert "`self.reconnect()` runs between attempts as before_retry" in site.notes
    again, second = transform_source(code)
    assert again == code and all(s.action != "rewritten" for s in second)


def test_a_call_tried_once_more_that_a_loop_would_refuse_stays_and_is_listed() -> None:
    before = """\
def ask(console):
    try:
        return input("name? ")
    except EOFError:
        console.reset()
        return input("name? ")
"""
    code, sites = transform_source(before)
    assert code == before
    (site,) = sites
    assert (site.action, site.line, site.end_line) == ("skipped", 2, 6)
    assert site.reason == (
        "tried once more in its except handler after `console.reset()`: the attempt body"
        " asks for user input (never a durable step)"
    )


def test_a_comprehension_variable_named_like_the_counter_is_not_the_counter() -> None:
    before = """\
import os
import random


def make_probe(path):
    for _ in range(10):
        name = "probe_" + "".join(random.choice("abc") for _ in range(6))
        try:
            return os.open(os.path.join(path, name), os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            pass
    raise OSError("no free name")
"""
    code, sites = transform_source(before)
    assert sites[0].action == "rewritten", sites
    assert "current_step" not in code
    assert 'name = "probe_" + "".join(random.choice("abc") for _ in range(6))' in code


def test_a_retry_of_an_interrupted_system_call_is_no_site() -> None:
    """``except OSError as e: if e.errno != errno.EINTR: raise`` in ``while True``: Python
    retries EINTR itself (PEP 475). Neither rewritten nor listed as a loop to migrate."""
    from codemods import decide

    source = """\
import errno


def recv_some(sock, size):
    while True:
        try:
            return sock.recv(size)
        except OSError as e:
            if e.errno != errno.EINTR:
                raise
"""
    assert decide(source) == []
