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
        full_jitter=True,
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
        full_jitter=True,
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
        full_jitter=True,
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
        self.assertUnchanged(
            before,
            [
                "on_backoff=lambda d: print(d) reads `d` other than as d['tries'], ['elapsed'],"
                " ['wait'], ['exception'], ['args'] or ['kwargs'], the parts a"
                " toolkit.RetryState and the step's context carry"
            ],
        )

    def test_on_backoff_reading_the_target_is_kept(self) -> None:
        before = """\
import backoff


def backing_off(details):
    print("calling", details["target"].__name__, "again in", details["wait"])


@backoff.on_exception(backoff.expo, OSError, on_backoff=backing_off)
def send(x):
    return x.send()
"""
        self.assertUnchanged(
            before,
            [
                "on_backoff=backing_off reads details['target'], the decorated function,"
                " which a toolkit.RetryState does not carry"
            ],
        )

    def test_a_kept_site_whose_hook_reads_the_arguments_adds_no_import(self) -> None:
        before = """\
import backoff


def note(details):
    print(details["args"])


@backoff.on_exception(backoff.expo, OSError, on_backoff=note, on_success=print)
def send(x):
    return x.send()
"""
        self.assertUnchanged(before, ["option `on_success=` has no equivalent"])

    def test_on_backoff_becomes_before_retry(self) -> None:
        before = """\
import logging

import backoff

log = logging.getLogger(__name__)


def note(details):
    log.warning("retry %d of %s", details["tries"], details["args"])


@backoff.on_exception(backoff.expo, ConnectionError, max_tries=4, jitter=None,
                      on_backoff=note)
def fetch(url, timeout=5):
    return url.get(timeout=timeout)


@backoff.on_exception(backoff.constant, OSError, max_tries=3, interval=1, jitter=None,
                      on_backoff=lambda d: log.info("%s", d["wait"]))
def read(path, *, mode="r"):
    return path.read(mode)
"""
        after = """\
import logging

from toolkit import RetryPolicy, current_step, step

log = logging.getLogger(__name__)


def note(details):
    log.warning("retry %d of %s", details["tries"], details["args"])


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=1.0,
        backoff=2.0,
        retry_on=(ConnectionError,),
        before_retry=lambda state: note({"args": current_step().args, "tries": state.attempt}),
    )
)
def fetch(url, timeout=5):
    return url.get(timeout=timeout)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(OSError,),
        before_retry=lambda state: (lambda d: log.info("%s", d["wait"]))({"wait": state.delay}),
    )
)
def read(path, *, mode="r"):
    return path.read(mode)
"""
        self.assertCodemod(before, after)

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
        full_jitter=True,
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
    return requests.get(url).json()
"""
        after = """\
import requests
from toolkit import RetryPolicy, current_step, step


def on_giveup(details):
    url = details['args'][0]
    raise Exception("giving up on {} after {} tries".format(url, details['tries']))


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=0.0,
        backoff=1.0,
        retry_on=(requests.RequestException,),
        random_delay=10.0,
        on_give_up=lambda state: on_giveup({"args": current_step().args, "tries": state.attempt}),
    )
)
def request(url):
    return requests.get(url).json()
"""
        self.assertCodemod(before, after)

    def test_on_giveup_reading_tries_and_exception_is_called_by_on_give_up(self) -> None:
        before = """\
import logging

import backoff

log = logging.getLogger(__name__)


def report(details):
    \"\"\"Say we gave up.\"\"\"
    log.error("gave up after %d tries: %s", details['tries'], details['exception'])


def fail(info):
    raise RuntimeError("gave up after %d tries" % info["tries"])


@backoff.on_exception(backoff.constant, OSError, max_tries=4, interval=2, jitter=None,
                      on_giveup=report)
def read(path):
    return path.read_text()


@backoff.on_exception(backoff.constant, OSError, max_tries=4, interval=2, jitter=None,
                      on_giveup=fail)
def write(path, text):
    path.write_text(text)
"""
        after = """\
import logging

from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)


def report(details):
    \"\"\"Say we gave up.\"\"\"
    log.error("gave up after %d tries: %s", details['tries'], details['exception'])
    # durable: backoff raised the exception after this hook; so does it now
    raise details['exception']


def fail(info):
    raise RuntimeError("gave up after %d tries" % info["tries"])


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(OSError,),
        on_give_up=lambda state: report({"exception": state.exception, "tries": state.attempt}),
    )
)
def read(path):
    return path.read_text()


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(OSError,),
        on_give_up=lambda state: fail({"tries": state.attempt}),
    )
)
def write(path, text):
    path.write_text(text)
"""
        self.assertCodemod(before, after)

    def test_on_giveup_that_cannot_be_called_from_on_give_up_is_kept(self) -> None:
        before = """\
import backoff


def whole(details):
    log(details)


def early(details):
    if details["tries"] < 2:
        return
    log(details["exception"])


def fast(details):
    log(details["tries"])


@backoff.on_exception(backoff.expo, OSError, max_tries=4, on_giveup=whole)
def a(x):
    return x.go()


@backoff.on_exception(backoff.expo, OSError, max_tries=4, on_giveup=early)
def b(x):
    return x.go()


@backoff.on_exception(backoff.expo, OSError, max_tries=4, on_giveup=fast, giveup=is_fatal)
def c(x):
    return x.go()


@backoff.on_exception(backoff.expo, OSError, max_tries=4, on_giveup=lambda d: log(d["tries"]))
def d(x):
    return x.go()


@backoff.on_predicate(backoff.expo, max_tries=4, on_giveup=fast)
def e(x):
    return x.go()
"""
        self.assertUnchanged(
            before,
            [
                "on_giveup=whole reads `details` other than as details['tries'],"
                " details['elapsed'], details['exception'], details['args'] or"
                " details['kwargs'], the parts a toolkit.RetryState and the step's context"
                " carry",
                "on_giveup=early returns early; backoff re-raised the exception after it,"
                " RetryPolicy.on_give_up's value would replace it: adapt it by hand",
                "on_giveup=fast also ran when giveup= gave up at once; RetryPolicy.on_give_up"
                " runs only when the attempts run out",
                'on_giveup=lambda d: log(d["tries"]) runs before backoff re-raises the'
                " exception; RetryPolicy.on_give_up's value would replace it: adapt it by hand",
                "on_giveup=fast on on_predicate gets the last value, and its on_give_up already"
                " returns that value: adapt it by hand",
            ],
        )

    def test_random_jitter_is_a_random_delay_of_one_second(self) -> None:
        before = """\
import backoff


@backoff.on_exception(backoff.expo, OSError, max_tries=5, max_value=8, jitter=backoff.random_jitter)
def read(path):
    return path.read_text()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=1.0,
        backoff=2.0,
        max_delay=8.0,
        retry_on=(OSError,),
        random_delay=1.0,
    )
)
def read(path):
    return path.read_text()
"""
        self.assertCodemod(before, after)


class TestRunTimeValues(DurableCodemodTest):
    """A decorator on a function defined inside another one is evaluated each time that
    one runs: its ``self.x`` and parameter values are kept as source text in the step."""

    TRANSFORM = BackoffCodemod

    def test_self_values_on_a_nested_function(self) -> None:
        before = """\
import backoff


class Uploader:
    def upload(self, batch, timeout):
        @backoff.on_exception(
            backoff.expo, Exception, max_tries=self.retries + 1, max_time=timeout,
            giveup=lambda e: isinstance(e, ValueError))
        def send():
            return self.session.post(batch)

        send()
"""
        after = """\
from toolkit import RetryPolicy, step


class Uploader:
    def upload(self, batch, timeout):
        @step(
            retry=RetryPolicy(
                max_attempts=self.retries + 1,
                initial_delay=1.0,
                backoff=2.0,
                max_delay=float("inf"),
                full_jitter=True,
                retry_on=(Exception,),
                give_up_on=(ValueError,),
                max_elapsed=timeout,
            )
        )
        def send():
            return self.session.post(batch)

        send()
"""
        self.assertCodemod(before, after)
        _code, sites = self.run_codemod(before)
        self.assertIn(
            "a count below 1 at run time (`self.retries + 1` < 1) retried forever under"
            " backoff; RetryPolicy raises ValueError for it",
            sites[0].notes,
        )

    def test_constant_interval_read_at_run_time(self) -> None:
        before = """\
import backoff


def sync(client, pause):
    @backoff.on_exception(
        backoff.constant, ConnectionError, max_tries=4, interval=pause, jitter=None
    )
    def pull():
        return client.pull()

    return pull()
"""
        after = """\
from toolkit import RetryPolicy, step


def sync(client, pause):
    @step(
        retry=RetryPolicy(
            max_attempts=4,
            initial_delay=pause,
            backoff=1.0,
            max_delay=float("inf"),
            retry_on=(ConnectionError,),
        )
    )
    def pull():
        return client.pull()

    return pull()
"""
        self.assertCodemod(before, after)

    def test_module_level_run_time_values_and_factories_are_kept(self) -> None:
        before = """\
import backoff


@backoff.on_exception(backoff.expo, Exception, max_tries=CONFIG.retries)
def send(batch):
    return batch.send()


def retrying(tries):
    @backoff.on_exception(backoff.expo, Exception, max_tries=tries)
    def wrapper(fn):
        return fn()

    return wrapper


def lazy(client):
    @backoff.on_exception(backoff.expo, Exception, max_tries=lambda: client.tries)
    def go():
        return client.go()

    return go()
"""
        self.assertUnchanged(
            before,
            [
                "max_tries=CONFIG.retries is known only at run time",
                "a retry factory: `retrying` returns `wrapper`, whose policy comes from its"
                " callers (max_tries=tries)",
                "max_tries=lambda: client.tries is a function backoff calls on each call",
            ],
        )


class TestCallForms(DurableCodemodTest):
    """backoff's decorator used as a call: bound to a name, applied to a function, or
    handed out by a factory; each is one site."""

    TRANSFORM = BackoffCodemod

    def test_constant_call_forms_become_step_calls(self) -> None:
        before = """\
import backoff

retry_io = backoff.on_exception(backoff.expo, OSError, max_tries=3, jitter=None)


def _read_once(path):
    return path.read_text()


read = backoff.on_exception(backoff.constant, OSError, max_tries=4, interval=2, jitter=None)(
    _read_once
)


def make_retry():
    return backoff.on_exception(backoff.expo, OSError, max_tries=5, factor=0.5, jitter=None)


@retry_io
def write(path, text):
    path.write_text(text)
"""
        after = """\
from toolkit import RetryPolicy, step

retry_io = step(retry=RetryPolicy(max_attempts=3, initial_delay=1.0, backoff=2.0, retry_on=(OSError,)))


def _read_once(path):
    return path.read_text()


read = step(retry=RetryPolicy(max_attempts=4, initial_delay=2.0, backoff=1.0, retry_on=(OSError,)))(
    _read_once
)


def make_retry():
    return step(retry=RetryPolicy(max_attempts=5, initial_delay=0.5, backoff=2.0, retry_on=(OSError,)))


@retry_io
def write(path, text):
    path.write_text(text)
"""  # noqa: E501
        self.assertCodemod(before, after)

    def test_factories_and_engines_are_listed_with_their_reason(self) -> None:
        before = """\
import backoff


def make_retry_for(tries, **options):
    return backoff.on_exception(backoff.expo, ConnectionError, max_tries=tries, **options)


def make_retry_with(tries):
    return backoff.on_exception(backoff.expo, ConnectionError, max_tries=tries)


def with_retries(func):
    return backoff.on_exception(backoff.expo, ConnectionError, max_tries=3)(func)
"""
        self.assertUnchanged(
            before,
            [
                "a retry factory: `make_retry_for` returns backoff's decorator, whose policy"
                " comes from its callers (**options)",
                "a retry factory: `make_retry_with` returns backoff's decorator, whose policy"
                " comes from its callers (max_tries=tries)",
                "a retry engine: backoff retries `func`, which its callers pass in (a parameter"
                " of the enclosing function): make the functions they pass steps instead",
            ],
        )
