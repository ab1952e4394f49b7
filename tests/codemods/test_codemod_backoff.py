"""backoff codemod: on_exception decorators it rewrites, and those it keeps or reports."""

from __future__ import annotations

from codemods.backoff_retry import BackoffCodemod
from codemods.testing import DurableCodemodTest


class TestRewrites(DurableCodemodTest):
    TRANSFORM = BackoffCodemod

    def test_expo_defaults(self) -> None:
        before = """\
import backoff
import requests

MAX_TRIES = 8


@backoff.on_exception(backoff.expo, requests.exceptions.RequestException, max_tries=MAX_TRIES)
def get_url(url):
    return requests.get(url)
"""
        after = """\
import requests
from toolkit import RetryPolicy, step

MAX_TRIES = 8


@step(
    retry=RetryPolicy(
        max_attempts=MAX_TRIES,
        initial_delay=1.0,
        backoff=2.0,
        max_delay=64.0,
        jitter=True,
        retry_on=(requests.exceptions.RequestException,),
    )
)
def get_url(url):
    return requests.get(url)
"""
        self.assertCodemod(before, after)

    def test_expo_no_jitter_with_cap(self) -> None:
        before = """\
import backoff
import requests

MAX_TRIES = 8


@backoff.on_exception(
    backoff.expo,
    (ConnectionError, TimeoutError),
    max_tries=5,
    max_value=30,
    factor=2,
    jitter=None,
)
def sync(client):
    return client.sync()
"""
        after = """\
import requests
from toolkit import RetryPolicy, step

MAX_TRIES = 8


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=2.0,
        backoff=2.0,
        max_delay=30.0,
        retry_on=(ConnectionError, TimeoutError),
    )
)
def sync(client):
    return client.sync()
"""
        self.assertCodemod(before, after)

    def test_constant_with_giveup(self) -> None:
        before = """\
import backoff
import requests

MAX_TRIES = 8


@backoff.on_exception(
    backoff.constant,
    requests.HTTPError,
    interval=3,
    max_time=60,
    giveup=lambda e: isinstance(e, PermissionError),
    jitter=None,
)
def poll_upload(session, upload_id):
    return session.check(upload_id)
"""
        after = """\
import requests
from toolkit import RetryPolicy, step

MAX_TRIES = 8


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=3.0,
        backoff=1.0,
        retry_on=(requests.HTTPError,),
        give_up_on=(PermissionError,),
        max_elapsed=60.0,
    )
)
def poll_upload(session, upload_id):
    return session.check(upload_id)
"""
        self.assertCodemod(before, after)

    def test_fibo_async_logger_dropped(self) -> None:
        before = """\
import backoff
import requests

MAX_TRIES = 8


@backoff.on_exception(backoff.fibo, OSError, max_tries=6, logger=None)
async def read_sensor(sensor):
    return await sensor.read()
"""
        after = """\
import requests
from toolkit import RetryPolicy, step

MAX_TRIES = 8


@step(
    retry=RetryPolicy(
        max_attempts=6,
        initial_delay=1.0,
        backoff=1.618,
        jitter=True,
        retry_on=(OSError,),
    )
)
async def read_sensor(sensor):
    return await sensor.read()
"""
        self.assertCodemod(before, after)


class TestLeftAlone(DurableCodemodTest):
    TRANSFORM = BackoffCodemod

    def test_on_predicate(self) -> None:
        before = """\
import backoff


@backoff.on_predicate(backoff.fibo, lambda x: x is None, max_value=13)
def poll_for_message(queue):
    return queue.get()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=1.0,
        backoff=1.618,
        max_delay=13.0,
        jitter=True,
        retry_on=(),
        retry_on_result=lambda x: x is None,
        on_give_up=lambda state: state.result,
    )
)
def poll_for_message(queue):
    return queue.get()
"""
        self.assertCodemod(before, after)  # a returned value is retried; the last one returned

    def test_on_backoff_hook(self) -> None:
        before = """\
import backoff


@backoff.on_exception(backoff.expo, Exception, on_backoff=lambda d: print(d))
def send(x):
    return x.send()
"""
        self.assertUnchanged(before, ["option `on_backoff=` has no equivalent"])

    def test_giveup_predicate(self) -> None:
        before = """\
import backoff


@backoff.on_exception(backoff.expo, Exception, giveup=lambda e: e.response.status_code < 500)
def fetch(x):
    return x.get()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=1.0,
        backoff=2.0,
        max_delay=float("inf"),
        jitter=True,
        retry_on=(Exception,),
        retry_if=lambda e: not (e.response.status_code < 500),
    )
)
def fetch(x):
    return x.get()
"""
        self.assertCodemod(
            before, after
        )  # giveup(e) true: raised at once; retry_if is its negation

    def test_raise_on_giveup_false(self) -> None:
        before = """\
import backoff


@backoff.on_exception(backoff.constant, Exception, raise_on_giveup=False, max_tries=3)
def best_effort(x):
    return x.get()
"""
        self.assertUnchanged(before, ["raise_on_giveup=False has no equivalent"])

    def test_runtime_wait_generator(self) -> None:
        before = """\
import backoff


@backoff.on_exception(backoff.runtime, Exception, value=lambda r: r.headers["Retry-After"])
def throttled(x):
    return x.get()
"""
        self.assertUnchanged(before, ["wait generator backoff.runtime has no equivalent"])


class TestExactMappings(DurableCodemodTest):
    TRANSFORM = BackoffCodemod

    def test_constant_with_full_jitter_is_a_random_delay(self) -> None:
        before = """\
import backoff


@backoff.on_exception(backoff.constant, OSError, interval=90, max_tries=3)
def poll(job):
    return job.done()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(OSError,),
        random_delay=90.0,
    )
)
def poll(job):
    return job.done()
"""
        self.assertCodemod(before, after)

    def test_on_predicate_with_the_default_predicate(self) -> None:
        before = """\
import backoff


@backoff.on_predicate(backoff.constant, interval=2, max_tries=5, jitter=None)
def poll(job):
    return job.done()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(),
        retry_on_result=lambda value: not value,
        on_give_up=lambda state: state.result,
    )
)
def poll(job):
    return job.done()
"""
        self.assertCodemod(before, after)

    def test_on_giveup_reads_the_call_arguments(self) -> None:
        before = """\
import backoff
import requests


def on_giveup(details):
    url = details['args'][0]
    raise Exception("giving up on {} after {} tries".format(url, details['tries']))


@backoff.on_exception(
    backoff.constant, requests.RequestException, max_tries=5, on_giveup=on_giveup, interval=10
)
def request(url):
    return requests.get(url)
"""
        self.assertUnchanged(
            before,
            [
                "on_giveup=on_giveup reads details['args'], the call's arguments, which"
                " RetryPolicy.on_give_up (given a toolkit.RetryState) does not get"
            ],
        )
