"""The retry libraries beside tenacity and backoff: ``retrying``, ``retry``, ``stamina`` and
``google.api_core.retry``. CodemodTest pairs for each mapping and each decorator kept
(behaviour before/after is in test_codemod_behaviour.py)."""

from __future__ import annotations

from codemods.framework_retry import FrameworkRetryCodemod
from codemods.google_retry import GoogleRetryCodemod
from codemods.retry_package import RetryPackageCodemod
from codemods.retrying_retry import RetryingCodemod
from codemods.stamina_retry import StaminaCodemod
from codemods.testing import DurableCodemodTest


class TestRetrying(DurableCodemodTest):
    TRANSFORM = RetryingCodemod

    def test_milliseconds_become_seconds_and_the_predicate_retry_if(self) -> None:
        before = """\
from retrying import retry


@retry(
    stop_max_attempt_number=4,
    wait_exponential_multiplier=250,
    wait_exponential_max=2000,
    retry_on_exception=lambda e: isinstance(e, IOError),
)
def pull(source):
    return source.pull()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.5,
        backoff=2.0,
        max_delay=2.0,
        retry_on=(Exception,),
        retry_if=lambda e: isinstance(e, IOError),
    )
)
def pull(source):
    return source.pull()
"""
        self.assertCodemod(before, after)

    def test_results_and_random_waits(self) -> None:
        before = """\
import retrying


@retrying.retry(
    stop_max_delay=30000,
    wait_random_min=500,
    wait_random_max=1500,
    retry_on_result=lambda r: r is None,
)
def poll(job):
    return job.state()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=0.5,
        backoff=1.0,
        retry_on=(Exception,),
        max_elapsed=30.0,
        random_delay=1.0,
        retry_on_result=lambda r: r is None,
    )
)
def poll(job):
    return job.state()
"""
        self.assertCodemod(before, after)

    def test_two_wait_laws_are_kept(self) -> None:
        before = """\
from retrying import retry


@retry(wait_fixed=100, wait_exponential_multiplier=10)
def pull(source):
    return source.pull()
"""
        self.assertUnchanged(
            before, ["waits fixed and exponential at once (retrying takes the longest)"]
        )


class TestRetryPackage(DurableCodemodTest):
    TRANSFORM = RetryPackageCodemod

    def test_positional_arguments_and_a_long_constant_delay(self) -> None:
        before = """\
from retry import retry


@retry(OSError, 3, 90)
def slow(disk):
    return disk.read()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=90.0,
        backoff=1.0,
        max_delay=90.0,
        retry_on=(OSError,),
    )
)
def slow(disk):
    return disk.read()
"""
        self.assertCodemod(before, after)

    def test_retry_call_becomes_a_step_called_with_the_same_arguments(self) -> None:
        before = """\
from retry.api import retry_call


def fetch(url):
    return retry_call(download, [url], {"timeout": 5}, OSError, tries=3, delay=2)


def fetch_all(urls, options):
    return retry_call(download, fargs=urls, fkwargs=options, tries=2, logger=None)


def engine(func, *args):
    return retry_call(func, fargs=args, tries=3)


def download(url, timeout=3):
    return url.get(timeout=timeout)
"""
        after = """\
from retry.api import retry_call
from toolkit import RetryPolicy, step


def fetch(url):
    return step(retry=RetryPolicy(max_attempts=3, initial_delay=2.0, backoff=1.0, retry_on=(OSError,)))(download)(url, timeout=5)


def fetch_all(urls, options):
    return step(retry=RetryPolicy(max_attempts=2, initial_delay=0.0, backoff=1.0, retry_on=(Exception,)))(download)(*urls, **options)


def engine(func, *args):
    return retry_call(func, fargs=args, tries=3)


def download(url, timeout=3):
    return url.get(timeout=timeout)
"""  # noqa: E501
        self.assertCodemod(before, after)  # engine(func) is listed: a retry engine

    def test_random_jitter_is_kept(self) -> None:
        before = """\
from retry import retry


@retry(ValueError, tries=3, delay=1, jitter=(0, 1))
def parse(text):
    return text.parse()
"""
        self.assertUnchanged(before, ["jitter=(0, 1) adds a random amount to every later wait"])


class TestStamina(DurableCodemodTest):
    TRANSFORM = StaminaCodemod

    def test_defaults_are_written_out(self) -> None:
        before = """\
import stamina


@stamina.retry(on=ConnectionError, attempts=3)
def ping(host):
    return host.ping()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.1,
        backoff=2.0,
        max_delay=5.0,
        retry_on=(ConnectionError,),
        max_elapsed=45.0,
        random_delay=1.0,
    )
)
def ping(host):
    return host.ping()
"""
        self.assertCodemod(before, after)

    def test_a_predicate_is_kept(self) -> None:
        before = """\
import stamina


def worth_it(exc):
    return True


@stamina.retry(on=worth_it)
def ping(host):
    return host.ping()
"""
        self.assertUnchanged(before, ["on=worth_it may be a predicate or a backoff hook"])


class TestStaminaRetryContext(DurableCodemodTest):
    TRANSFORM = StaminaCodemod

    def test_a_whole_body_block_makes_the_function_a_step(self) -> None:
        before = """\
import stamina


def fetch(client, url):
    \"\"\"Get it.\"\"\"
    for attempt in stamina.retry_context(on=OSError, attempts=3, wait_initial=0.5):
        with attempt:
            return client.get(url)


async def afetch(client, url):
    async for attempt in stamina.retry_context(on=(OSError, TimeoutError), timeout=None):
        with attempt:
            return await client.get(url)
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=0.5,
        backoff=2.0,
        max_delay=5.0,
        retry_on=(OSError,),
        max_elapsed=45.0,
        random_delay=1.0,
    )
)
def fetch(client, url):
    \"\"\"Get it.\"\"\"
    return client.get(url)


@step(
    retry=RetryPolicy(
        max_attempts=10,
        initial_delay=0.1,
        backoff=2.0,
        max_delay=5.0,
        retry_on=(OSError, TimeoutError),
        random_delay=1.0,
    )
)
async def afetch(client, url):
    return await client.get(url)
"""
        self.assertCodemod(before, after)

    def test_a_block_that_is_not_the_whole_body_is_listed(self) -> None:
        before = """\
import stamina


def fetch(client, url, log):
    log.info("start")
    for attempt in stamina.retry_context(on=OSError):
        with attempt:
            return client.get(url)


def maybe(client, url, flag):
    if flag:
        for attempt in stamina.retry_context(on=OSError):
            with attempt:
                return client.get(url)
"""
        self.assertUnchanged(
            before,
            [
                "the retry_context block is not the whole body of the function",
                "the retry_context block is inside a branch or block of the function",
            ],
        )


class TestGoogleRetry(DurableCodemodTest):
    TRANSFORM = GoogleRetryCodemod

    def test_exception_types_and_time_budget(self) -> None:
        before = """\
from google.api_core import exceptions, retry


@retry.Retry(predicate=retry.if_exception_type(exceptions.ServiceUnavailable), timeout=30)
def upload(blob):
    return blob.upload()


def configured(client):
    return client.get(retry=retry.Retry(timeout=5))
"""
        after = """\
from google.api_core import exceptions, retry
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=1.0,
        backoff=2.0,
        jitter=True,
        retry_on=(exceptions.ServiceUnavailable,),
        max_elapsed=30.0,
    )
)
def upload(blob):
    return blob.upload()


def configured(client):
    return client.get(retry=retry.Retry(timeout=5))
"""
        self.assertCodemod(before, after)

    def test_on_error_is_kept(self) -> None:
        before = """\
from google.api_core import retry


@retry.Retry(on_error=print)
def upload(blob):
    return blob.upload()
"""
        self.assertUnchanged(before, ["Retry(...) has option `on_error=` with no equivalent"])


class TestOsloRetryDecorator(DurableCodemodTest):
    """oslo.service ``loopingcall.RetryDecorator(max_retry_count, inc_sleep_time,
    max_sleep_time, exceptions)``: ``max_retry_count + 1`` attempts, delays
    ``min(n * inc_sleep_time, max_sleep_time)``."""

    TRANSFORM = FrameworkRetryCodemod

    def test_growing_delays_capped(self) -> None:
        before = """\
from oslo_service import loopingcall

from app import errors


@loopingcall.RetryDecorator(
    max_retry_count=8, inc_sleep_time=3, max_sleep_time=15,
    exceptions=(errors.Busy,))
def build(client, spec):
    return client.build(spec)
"""
        after = """\
from app import errors
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=9,
        initial_delay=3.0,
        backoff=1.0,
        max_delay=15.0,
        retry_on=(errors.Busy,),
        increment=3.0,
    )
)
def build(client, spec):
    return client.build(spec)
"""
        self.assertCodemod(before, after)
        _code, sites = self.run_codemod(before)
        self.assertEqual([s.action for s in sites], ["rewritten"])
        self.assertIn("never reset", sites[0].notes[0])
        self.assertIn("caller's thread", sites[0].notes[1])

    def test_positional_arguments_forever_and_a_cap_below_the_step(self) -> None:
        before = """\
from oslo_service import loopingcall

RETRIES = -1


class Volume:
    @loopingcall.RetryDecorator(RETRIES, 30, 20, (IOError, TimeoutError))
    def attach(self, host):
        return self.api.attach(host)
"""
        after = """\
from toolkit import RetryPolicy, step

RETRIES = -1


class Volume:
    @step(
        retry=RetryPolicy(
            max_attempts=None,
            initial_delay=20.0,
            backoff=1.0,
            retry_on=(IOError, TimeoutError),
        )
    )
    def attach(self, host):
        return self.api.attach(host)
"""
        self.assertCodemod(before, after)

    def test_run_time_values_and_no_exceptions_are_refused(self) -> None:
        before = """\
from oslo_service import loopingcall


@loopingcall.RetryDecorator(max_retry_count=CONF.retries, exceptions=(IOError,))
def a(x):
    return x.go()


@loopingcall.RetryDecorator(max_retry_count=3)
def b(x):
    return x.go()
"""
        self.assertUnchanged(
            before,
            [
                "oslo.service loopingcall.RetryDecorator: max_retry_count=CONF.retries is known"
                " only at run time",
                "oslo.service loopingcall.RetryDecorator: no `exceptions=`: it retries nothing"
                " (every exception is raised)",
            ],
        )
