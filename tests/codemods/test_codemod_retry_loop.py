"""retry-loop codemod: each shape it rewrites, and each it must leave alone (with its reason).

The cases are modelled on retry loops read in public code (see RETRY-PATTERNS.md in shared/):
for/while counters, for-else, saved exceptions, silent ``return None``, async loops,
loops inside larger functions and methods; and the look-alikes that are not retries.
"""

from __future__ import annotations

from codemods.retry_loop import RetryLoopCodemod
from codemods.testing import DurableCodemodTest


class TestRewrites(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_if_else_handler(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def if_else_handler(url):
    for attempt in range(3):
        try:
            return requests.get(url)
        except requests.RequestException as e:
            if attempt < 2:
                time.sleep(5)
            else:
                raise e
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=5.0,
        backoff=1.0,
        retry_on=(requests.RequestException,),
    )
)
def if_else_handler(url):
    return requests.get(url)
"""
        self.assertCodemod(before, after)

    def test_while_counter(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def while_counter(client, key):
    attempts = 0
    while attempts < RETRIES:
        try:
            return client.fetch(key)
        except (ConnectionError, TimeoutError):
            attempts += 1
            if attempts == RETRIES:
                raise
            time.sleep(min(30, 2 * 2 ** attempts))
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=RETRIES,
        initial_delay=4.0,
        backoff=2.0,
        retry_on=(ConnectionError, TimeoutError),
    )
)
def while_counter(client, key):
    return client.fetch(key)
"""
        self.assertCodemod(before, after)

    def test_delay_variable(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def delay_variable(path):
    delay = 0.5
    for _ in range(5):
        try:
            return open_remote(path)
        except OSError:
            log.warning("retrying in %s", delay)
            time.sleep(delay)
            delay *= 3
    raise RuntimeError(f"could not open {path}")
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=0.5,
        backoff=3.0,
        retry_on=(OSError,),
    )
)
def _open_remote_step(path):
    return open_remote(path)


def delay_variable(path):
    try:
        return _open_remote_step(path)
    except OSError:
        pass
    raise RuntimeError(f"could not open {path}")
"""
        self.assertCodemod(before, after)

    def test_jittered(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def jittered(job):
    for i in range(1, 6):
        try:
            return job.submit()
        except TimeoutError:
            if i == 5:
                raise
            time.sleep(2 ** i + random.uniform(0, 1))
"""
        after = """\
import asyncio
import functools
import itertools
import logging

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=2.0,
        backoff=2.0,
        retry_on=(TimeoutError,),
        random_delay=1.0,
    )
)
def jittered(job):
    return job.submit()
"""
        self.assertCodemod(before, after)

    def test_async_fetch(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


async def async_fetch(session, url):
    for attempt in range(4):
        try:
            async with session.get(url) as response:
                return await response.json()
        except asyncio.TimeoutError:
            if attempt == 3:
                raise
            await asyncio.sleep(0.1 * 2 ** attempt)
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.1,
        backoff=2.0,
        retry_on=(asyncio.TimeoutError,),
    )
)
async def async_fetch(session, url):
    async with session.get(url) as response:
        return await response.json()
"""
        self.assertCodemod(before, after)

    def test_saved_exception(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def saved_exception(conn, sql):
    last_error = None
    for attempt in range(3):
        try:
            return conn.execute(sql)
        except OperationalError as exc:
            last_error = exc
            time.sleep(1)
    raise last_error
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(OperationalError,),
    )
)
def saved_exception(conn, sql):
    return conn.execute(sql)
"""
        self.assertCodemod(before, after)

    def test_silent_none(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def silent_none(url):
    for attempt in range(3):
        try:
            return requests.get(url).json()
        except ValueError:
            time.sleep(1)
    return None
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(ValueError,),
    )
)
def _json_step(url):
    return requests.get(url).json()


def silent_none(url):
    try:
        return _json_step(url)
    except ValueError:
        pass
    return None
"""
        self.assertCodemod(before, after)

    def test_forever(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def forever(queue):
    while True:
        try:
            return queue.connect()
        except ConnectionError:
            time.sleep(10)
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=10.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
    )
)
def forever(queue):
    return queue.connect()
"""
        self.assertCodemod(before, after)

    def test_break_style(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def break_style(order, payments):
    amount = order.total
    receipt = None
    for attempt in range(3):
        try:
            receipt = payments.charge(order.id, amount)
            status = receipt.status
            break
        except PaymentGatewayError:
            if attempt == 2:
                raise
            time.sleep(2)
    order.mark_paid(receipt, status)
    return receipt
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(PaymentGatewayError,),
    )
)
def _charge_step(payments, order, amount):
    receipt = payments.charge(order.id, amount)
    status = receipt.status
    return receipt, status


def break_style(order, payments):
    amount = order.total
    receipt = None
    receipt, status = _charge_step(payments, order, amount)
    order.mark_paid(receipt, status)
    return receipt
"""
        self.assertCodemod(before, after)

    def test_client(self) -> None:
        before = '''\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


class Client:
    def get(self, path):
        """GET with retries."""
        for attempt in range(3):
            try:
                return self.session.get(self.base + path)
            except ConnectionError:
                if attempt == 2:
                    raise
                time.sleep(1)

    def upload(self, blob):
        self.prepare(blob)
        for attempt in range(3):
            try:
                self.bucket.put(blob)
                break
            except OSError as err:
                if attempt == 2:
                    raise UploadFailed(blob.name) from err
                time.sleep(2)
        self.notify(blob)
'''
        after = '''\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(OSError,),
    )
)
def _put_step(self, blob):
    self.bucket.put(blob)


class Client:
    @step(
        retry=RetryPolicy(
            max_attempts=3,
            initial_delay=1.0,
            backoff=1.0,
            retry_on=(ConnectionError,),
        )
    )
    def get(self, path):
        """GET with retries."""
        return self.session.get(self.base + path)

    def upload(self, blob):
        self.prepare(blob)
        try:
            _put_step(self, blob)
        except OSError as err:
            raise UploadFailed(blob.name) from err
        self.notify(blob)
'''
        self.assertCodemod(before, after)

    def test_param_count(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def param_count(url, retries=3):
    for attempt in range(retries):
        try:
            return requests.get(url)
        except ConnectionError:
            if attempt == retries - 1:
                raise
            time.sleep(1)
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def param_count(url, retries=3):
    @step(
        retry=RetryPolicy(
            max_attempts=retries,
            initial_delay=1.0,
            backoff=1.0,
            retry_on=(ConnectionError,),
        )
    )
    def _get_step():
        return requests.get(url)

    return _get_step()
"""
        self.assertCodemod(before, after)

    def test_runtime_attributes(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


class Uploader:
    def upload(self, blob):
        for attempt in range(self.max_retries + 1):
            try:
                return self.bucket.put(blob)
            except self.retry_errors:
                if attempt == self.max_retries:
                    raise
                time.sleep(self.backoff_factor * 2 ** attempt)
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


class Uploader:
    def upload(self, blob):
        @step(
            retry=RetryPolicy(
                max_attempts=self.max_retries + 1,
                initial_delay=self.backoff_factor,
                backoff=2.0,
                max_delay=float("inf"),
                retry_on=self.retry_errors,
            )
        )
        def _put_step():
            return self.bucket.put(blob)

        return _put_step()
"""
        self.assertCodemod(before, after)

    def test_decorator_factory_while(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def retry(tries=4, delay=3, backoff=2):
    def deco_retry(f):
        @functools.wraps(f)
        def f_retry(*args, **kwargs):
            mtries, mdelay = tries, delay
            while mtries > 1:
                try:
                    return f(*args, **kwargs)
                except RETRYABLE:
                    time.sleep(mdelay)
                    mtries -= 1
                    mdelay *= backoff
            return f(*args, **kwargs)

        return f_retry

    return deco_retry
"""
        # a retry engine: the policy comes from the decorator's callers
        self.assertUnchanged(
            before,
            [
                "a retry engine: it retries `f`, which its callers pass in, with a policy"
                " they choose (`backoff`, `delay`, `tries`): make the functions they pass"
                " steps instead"
            ],
        )

    def test_tuple_constant(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def tuple_constant(conn):
    for attempt in range(RETRIES):
        try:
            return conn.ping()
        except RETRYABLE:
            if attempt == RETRIES - 1:
                raise
            time.sleep(1)
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=RETRIES,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=RETRYABLE,
    )
)
def tuple_constant(conn):
    return conn.ping()
"""
        self.assertCodemod(before, after)

    def test_itertools_count(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def with_count(conn):
    for attempt in itertools.count(1):
        try:
            return conn.ping()
        except ConnectionError:
            if attempt >= RETRIES:
                raise
            time.sleep(0.5)
"""
        after = """\
import asyncio
import functools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.5,
        backoff=1.0,
        retry_on=(ConnectionError,),
    )
)
def with_count(conn):
    return conn.ping()
"""
        self.assertCodemod(before, after)

    def test_comments_survive(self) -> None:
        before = """\
import asyncio
import functools
import itertools
import logging
import random
import time

import requests

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


def commented(conn):
    # three tries, the broker is flaky on deploys
    for attempt in range(3):
        try:
            # the only call that can fail
            return conn.publish()  # idempotent on the broker side
        except ConnectionError:
            if attempt == 2:
                raise
            time.sleep(1)
"""
        after = """\
import asyncio
import functools
import itertools
import logging
import random

import requests
from toolkit import RetryPolicy, step

log = logging.getLogger(__name__)
RETRIES = 4
RETRYABLE = (ConnectionError, TimeoutError)


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
    )
)
def commented(conn):
    # three tries, the broker is flaky on deploys
    # the only call that can fail
    return conn.publish()  # idempotent on the broker side
"""
        self.assertCodemod(before, after)


class TestImportPlacement(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_toolkit_import_is_set_apart_from_the_stdlib_block(self) -> None:
        before = """\
import time


def fetch(get):
    for attempt in range(3):
        try:
            return get()
        except OSError:
            if attempt == 2:
                raise
            time.sleep(1)


def stamp():
    return time.time()
"""
        after = """\
import time

from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(OSError,),
    )
)
def fetch(get):
    return get()


def stamp():
    return time.time()
"""
        self.assertCodemod(before, after)

    def test_a_file_without_sections_keeps_its_layout(self) -> None:
        before = """\
import os
import time
import requests


def fetch(url):
    for attempt in range(3):
        try:
            return requests.get(url, timeout=os.cpu_count())
        except requests.ConnectionError:
            if attempt == 2:
                raise
            time.sleep(2 ** attempt)
"""
        after = """\
import os
import requests
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=2.0,
        retry_on=(requests.ConnectionError,),
    )
)
def fetch(url):
    return requests.get(url, timeout=os.cpu_count())
"""
        self.assertCodemod(before, after)


class TestLeftAlone(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_polling(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def polling(job):
    while not job.done():
        time.sleep(1)
    return job.result()
"""
        self.assertUnchanged(before, [])

    def test_tolerant_poll(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def tolerant_poll(client):
    while True:
        try:
            status = client.status()
            if status == "ready":
                return status
        except ConnectionError:
            pass
        time.sleep(2)
"""
        self.assertUnchanged(before, [])

    def test_pagination(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def pagination(session, url):
    items = []
    while url:
        try:
            page = session.get(url).json()
        except ValueError:
            break
        items.extend(page["items"])
        url = page.get("next")
    return items
"""
        self.assertUnchanged(before, [])

    def test_over_hosts(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def over_hosts(hosts, path):
    for host in hosts:
        try:
            return requests.get(host + path)
        except ConnectionError:
            time.sleep(1)
    raise ConnectionError("all hosts down")
"""
        self.assertUnchanged(
            before,
            [
                "loops over `hosts` rather than over attempts: each attempt uses the next"
                " `host` (a failover: state carried into the next attempt, not a retry of"
                " the same call)"
            ],
        )

    def test_shrinking_work(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def shrinking_work(batch):
    for attempt in range(3):
        try:
            batch = [b for b in batch if not b.sent]
            return send_all(batch)
        except OSError:
            time.sleep(1)
"""
        self.assertUnchanged(before, ["the attempt body updates `batch`, read by the next attempt"])

    def test_counter_in_body(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def counter_in_body(url):
    for attempt in range(3):
        try:
            return requests.get(url, timeout=5 * (attempt + 1))
        except requests.Timeout:
            if attempt == 2:
                raise
            time.sleep(1)
"""
        after = """\
import requests
from tenacity import retry
from toolkit import RetryPolicy, current_step, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(requests.Timeout,),
    )
)
def counter_in_body(url):
    attempt = current_step().attempt - 1
    return requests.get(url, timeout=5 * (attempt + 1))
"""
        self.assertCodemod(before, after)  # the counter is the step's attempt number

    def test_try_else_work_runs_after_the_step(self) -> None:
        before = """\
import time


def save(db, row, log):
    for attempt in range(3):
        try:
            db.insert(row)
        except OSError:
            time.sleep(1)
        else:
            log.append("saved")
            break
    else:
        raise RuntimeError("no")
    return row
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(OSError,),
    )
)
def _insert_step(db, row):
    db.insert(row)


def save(db, row, log):
    try:
        _insert_step(db, row)
    except OSError:
        raise RuntimeError("no")
    else:
        log.append("saved")
    return row
"""
        self.assertCodemod(before, after)  # the else work is not retried, and never lost

    def test_retry_loop_inside_a_loop_around_a_try(self) -> None:
        before = """\
import time


def each(items, api):
    for item in items:
        try:
            for attempt in range(3):
                try:
                    api.send(item)
                    break
                except OSError:
                    time.sleep(1)
            else:
                raise RuntimeError("no")
        except RuntimeError:
            continue
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(OSError,),
    )
)
def _send_step(api, item):
    api.send(item)


def each(items, api):
    for item in items:
        try:
            try:
                _send_step(api, item)
            except OSError:
                raise RuntimeError("no")
        except RuntimeError:
            continue
"""
        self.assertCodemod(before, after)  # the outer loop is not a retry: the inner one is

    def test_counter_read_after_the_loop(self) -> None:
        before = """\
import time


def counter_after(client):
    for attempt in range(3):
        try:
            value = client.get(attempt)
            break
        except OSError:
            time.sleep(1)
    else:
        raise RuntimeError("down")
    return value, attempt
"""
        self.assertUnchanged(before, ["the counter `attempt` is read after the loop"])

    def test_repair_between(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def repair_between(db, row):
    for attempt in range(3):
        try:
            return db.insert(row)
        except MissingTable:
            db.create_table()
            time.sleep(1)
"""
        after = """\
import requests
from tenacity import retry
from toolkit import RetryPolicy, step


def repair_between(db, row):
    @step(
        retry=RetryPolicy(
            max_attempts=3,
            initial_delay=1.0,
            backoff=1.0,
            retry_on=(MissingTable,),
            before_retry=lambda _state: db.create_table(),
        )
    )
    def _insert_step():
        return db.insert(row)

    try:
        return _insert_step()
    except MissingTable:
        db.create_table()
"""
        # the repair runs between attempts (before_retry), and after the last failed
        # attempt at the call site, as the legacy handler did
        self.assertCodemod(before, after)

    def test_repair_reading_the_exception(self) -> None:
        before = """\
import time


def repair_with_error(db, row):
    for attempt in range(3):
        try:
            return db.insert(row)
        except KeyError as missing:
            db.create_table(missing)
            time.sleep(1)
"""
        after = """\
from toolkit import RetryPolicy, step


def repair_with_error(db, row):
    @step(
        retry=RetryPolicy(
            max_attempts=3,
            initial_delay=1.0,
            backoff=1.0,
            retry_on=(KeyError,),
            before_retry=lambda state: db.create_table(state.exception),
        )
    )
    def _insert_step():
        return db.insert(row)

    try:
        return _insert_step()
    except KeyError as missing:
        db.create_table(missing)
"""
        # the exception the repair reads is the hook's state.exception
        self.assertCodemod(before, after)

    def test_result_based(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def result_based(url):
    for attempt in range(5):
        try:
            response = requests.get(url)
            if response.status_code == 503:
                time.sleep(1)
                continue
            return response
        except ConnectionError:
            time.sleep(1)
"""
        self.assertUnchanged(before, ["the attempt body uses break or continue"])

    def test_linear_sleep(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def linear_sleep(url):
    for attempt in range(4):
        try:
            return requests.get(url)
        except ConnectionError:
            if attempt == 3:
                raise
            time.sleep(attempt + 1)
"""
        after = """\
import requests
from tenacity import retry
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
        increment=1.0,
    )
)
def linear_sleep(url):
    return requests.get(url)
"""
        self.assertCodemod(before, after)  # linear growth: increment=

    def test_server_delay(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def server_delay(url):
    for attempt in range(4):
        try:
            return requests.get(url)
        except RateLimited as e:
            if attempt == 3:
                raise
            time.sleep(e.retry_after)
"""
        after = """\
import requests
from tenacity import retry
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=0.0,
        backoff=1.0,
        max_delay=float("inf"),
        retry_on=(RateLimited,),
        delay_from=lambda e: e.retry_after,
    )
)
def server_delay(url):
    return requests.get(url)
"""
        # the failure supplies the delay: delay_from, uncapped as the legacy sleep was
        self.assertCodemod(before, after)

    def test_generator(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def generator(source):
    for attempt in range(3):
        try:
            for row in source.rows():
                yield row
            return
        except IOError:
            time.sleep(1)
"""
        self.assertUnchanged(before, ["the attempt body yields"])

    def test_decorated_loop(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


@retry
def decorated_loop(url):
    for attempt in range(3):
        try:
            return requests.get(url)
        except ConnectionError:
            time.sleep(1)
"""
        self.assertUnchanged(before, ["nested retries: the function already has @retry"])

    def test_nested_loops(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def nested_loops(url):
    for outer in range(3):
        try:
            for inner in range(3):
                try:
                    return requests.get(url)
                except ConnectionError:
                    time.sleep(1)
            return None
        except OSError:
            time.sleep(5)
"""
        self.assertUnchanged(before, ["a retry loop inside the attempt body (nested retries)"])

    def test_supervisor(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def supervisor(ws_url):
    while True:
        try:
            ws = connect(ws_url)
            for message in ws:
                handle(message)
        except ConnectionError:
            time.sleep(5)
"""
        # listed, never rewritten: a supervisor is no retry to make a step
        self.assertUnchanged(
            before,
            [
                "a supervisor loop: it starts `ws = connect(ws_url)` again after each failure"
                " and never leaves the loop on success; not a retry to make a step (keep it, or"
                " run each unit of its work as a workflow)"
            ],
        )

    def test_state_reset(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def state_reset(client, items):
    done = 0
    for attempt in range(3):
        try:
            client.send(items[done:])
            break
        except OSError:
            done = client.acked()
            time.sleep(1)
"""
        self.assertUnchanged(
            before, ["the attempt body reads `done`, which changes between attempts"]
        )

    def test_handler_reads_attempt_var(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def handler_reads_attempt_var(url):
    response = None
    for attempt in range(3):
        try:
            response = requests.get(url)
            response.raise_for_status()
            return response
        except requests.HTTPError:
            if response is not None and response.status_code < 500:
                raise
            time.sleep(1)
"""
        self.assertUnchanged(
            before, ["the retry decision depends on `response`, which the loop itself sets"]
        )

    def test_read_input(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def read_input():
    for attempt in range(3):
        try:
            return int(input("number? "))
        except ValueError:
            print("try again")
"""
        self.assertUnchanged(
            before, ["the attempt body asks for user input (never a durable step)"]
        )

    def test_private_name_in_method(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


class Vault:
    def unlock(self, code):
        self.prepare()
        for attempt in range(3):
            try:
                self.__door.open(code)
                break
            except TimeoutError:
                time.sleep(1)
        else:
            raise TimeoutError("door stuck")
        return self.__door
"""
        self.assertUnchanged(before, ["the attempt body uses the class-private name `__door`"])

    def test_runtime_flag(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


def flag(url, retries, jitter):
    for attempt in range(retries):
        try:
            return requests.get(url)
        except ConnectionError:
            if jitter:
                time.sleep(1)
            else:
                time.sleep(2)
"""
        self.assertUnchanged(before, ["the delays depend on the flag `jitter`"])

    def test_ambiguous_types(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


ERRORS = (OSError, ValueError)


def ambiguous(conn):
    for attempt in range(3):
        try:
            return conn.ping()
        except (ERRORS, KeyError):
            time.sleep(1)
"""
        self.assertUnchanged(before, ["exception types `ERRORS` may be a tuple"])

    def test_home_made_retry_decorator(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


@with_retries(3)
def doubled(url):
    for attempt in range(3):
        try:
            return requests.get(url)
        except ConnectionError:
            time.sleep(1)
"""
        self.assertUnchanged(before, ["nested retries: the function already has @with_retries"])

    def test_global_state(self) -> None:
        before = """\
import time

import requests
from tenacity import retry


_cache = None


def warm(url):
    global _cache
    print("warming")
    for attempt in range(3):
        try:
            _cache = requests.get(url)
            break
        except ConnectionError:
            if attempt == 2:
                raise
            time.sleep(1)
"""
        self.assertUnchanged(
            before, ["the attempt body assigns `_cache`, declared global or nonlocal"]
        )


class TestControlFlowReported(DurableCodemodTest):
    """Retry loops whose control flow is not followed are reported, each with the
    construct named (none of them may go unreported)."""

    TRANSFORM = RetryLoopCodemod

    def test_success_flag(self) -> None:
        before = """\
import time


def send(hook, payload):
    success = False
    attempts = 0
    while not success and attempts <= hook.retries:
        if attempts:
            time.sleep(hook.delay)
        attempts += 1
        try:
            hook.post(payload)
        except OSError as exc:
            print("could not call the hook", exc)
        else:
            success = True
"""
        self.assertUnchanged(
            before,
            [
                "the attempt's success is recorded in `success`, which the loop test reads"
                " (a success flag)"
            ],
        )

    def test_retry_decided_after_the_try(self) -> None:
        before = """\
import time


def run(cli, command, retry_codes):
    for retry_num in range(5):
        try:
            rc = cli.run(command)
        except Exception as ex:
            raise RuntimeError(str(ex))
        if rc in retry_codes:
            time.sleep(2)
            continue
        break
    return rc
"""
        self.assertUnchanged(
            before,
            [
                "the retry is decided after the try, by `rc in retry_codes`, rather than by an"
                " exception"
            ],
        )

    def test_try_inside_an_if_of_the_body(self) -> None:
        before = """\
import time


def connect(link, retries):
    connected = False
    for attempt in range(retries):
        if not connected:
            connected = link.open()
            if not connected:
                continue
        if not link.key:
            try:
                link.make_key()
            except OSError:
                connected = False
                time.sleep(1)
                continue
        break
"""
        self.assertUnchanged(
            before,
            [
                "the loop body tests `not connected`, which reads `connected`, set by an"
                " earlier attempt (state carried into the next attempt)"
            ],
        )

    def test_generator_pausing_between_attempts(self) -> None:
        before = """\
def create(resource, retry_limit):
    count = 0
    while count <= retry_limit:
        if count:
            yield from resource.pause(count)
        try:
            resource.do_create()
            break
        except RuntimeError:
            count += 1
"""
        self.assertUnchanged(
            before, ["the loop yields (a generator): its retries cannot become a step"]
        )

    def test_callback_engine_with_a_deadline(self) -> None:
        before = """\
import time


def with_transaction(session, callback):
    start = time.monotonic()
    retry = 0
    while True:
        if retry:
            time.sleep(0.1)
        retry += 1
        try:
            ret = callback(session)
        except OSError:
            if time.monotonic() - start < 120:
                continue
            raise
        if not session.in_transaction:
            return ret
        session.commit()
        return ret
"""
        self.assertUnchanged(
            before,
            [
                "a retry engine: it retries `callback`, which its callers pass in: make the"
                " functions they pass steps instead"
            ],
        )

    def test_recursion_with_one_retry_fewer(self) -> None:
        before = """\
import time


class Client:
    def send(self, request, retries=3):
        try:
            return self.conn.request(request)
        except OSError:
            if retries:
                time.sleep(3)
                return self.send(request.retry(), retries - 1)
            raise
"""
        # rewritten when only the count changes: tests/codemods/test_codemod_recursion.py
        self.assertUnchanged(
            before,
            [
                "the recursive call changes `request`, `retries` (state carried into the next"
                " attempt): make it a step by hand"
            ],
        )

    def test_polling_until_an_error_is_not_a_retry(self) -> None:
        before = """\
import time


def wait_gone(conn, node, retries):
    while retries > 0:
        try:
            time.sleep(5)
            conn.request(node)
            retries -= 1
        except LookupError:
            break
"""
        self.assertUnchanged(before, [])


class TestControlFlowRewrites(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_plain_loop_over_data_inside_the_attempt_is_not_a_nested_retry(self) -> None:
        before = """\
import time


def add(db, metadata):
    for attempt in range(3):
        try:
            for key, value in metadata.items():
                try:
                    db.put(key, value)
                except KeyError:
                    raise ValueError(key)
            return metadata
        except ConnectionError:
            time.sleep(1)
    raise RuntimeError("gave up")
"""
        code, sites = self.run_codemod(before)
        self.assertEqual([s.action for s in sites], ["rewritten"], sites)
        self.assertIn("for key, value in metadata.items():", code)

    def test_attempt_that_raises_or_returns_in_an_if(self) -> None:
        before = """\
import time

CHECK = False


def fetch(client, key):
    for i in range(3):
        try:
            ret = client.get(key)
            if CHECK and not ret:
                raise ValueError("empty")
            else:
                return ret
        except (ValueError, ConnectionError):
            time.sleep(2)
    raise RuntimeError("gave up")
"""
        after = """\
from toolkit import RetryPolicy, step

CHECK = False


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(ValueError, ConnectionError),
    )
)
def _get_step(client, key):
    ret = client.get(key)
    if CHECK and not ret:
        raise ValueError("empty")
    else:
        return ret


def fetch(client, key):
    try:
        return _get_step(client, key)
    except (ValueError, ConnectionError):
        pass
    raise RuntimeError("gave up")
"""
        self.assertCodemod(before, after)

    def test_fallback_value_when_attempts_run_out(self) -> None:
        before = """\
import time


def find(client, wanted):
    found = None
    for _ in range(3):
        try:
            nodes = client.list_nodes()
            found = [n for n in nodes if n.id == wanted][0]
        except IndexError:
            time.sleep(1)
        else:
            break
    return found
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(IndexError,),
    )
)
def _list_nodes_step(client, wanted):
    nodes = client.list_nodes()
    found = [n for n in nodes if n.id == wanted][0]
    return found


def find(client, wanted):
    found = None
    try:
        found = _list_nodes_step(client, wanted)
    except IndexError:
        pass
    return found
"""
        self.assertCodemod(before, after)

    def test_fall_through_reading_a_value_a_failed_attempt_set(self) -> None:
        before = """\
import time


def find(client, wanted):
    found = None
    for _ in range(3):
        try:
            found = client.lookup(wanted)
            found.check()
            break
        except LookupError:
            time.sleep(1)
    return found
"""
        self.assertUnchanged(
            before,
            [
                "when attempts run out the code after the loop reads `found`, which a failed"
                " attempt may have set"
            ],
        )

    def test_final_unguarded_attempt_after_the_loop_is_one_more_attempt(self) -> None:
        before = """\
import errno


class Conn(Base):
    def request(self, *args, **kwargs):
        retries = 4
        tries = 0
        while tries < (retries - 1):
            try:
                return super().request(*args, **kwargs)
            except OSError as e:
                if e.errno == errno.ECONNRESET:
                    tries = tries + 1
                else:
                    raise e

        return super().request(*args, **kwargs)
"""
        after = """\
import errno

from toolkit import RetryPolicy, step


class Conn(Base):
    @step(
        retry=RetryPolicy(
            max_attempts=4,
            initial_delay=0.0,
            backoff=1.0,
            retry_on=(OSError,),
            retry_if=lambda e: e.errno == errno.ECONNRESET,
        )
    )
    def request(self, *args, **kwargs):
        return super().request(*args, **kwargs)
"""
        self.assertCodemod(before, after)

    def test_final_attempt_after_a_different_wait_is_a_schedule(self) -> None:
        before = """\
import time


def fetch(client):
    for attempt in range(3):
        try:
            return client.get()
        except OSError:
            if attempt < 2:
                time.sleep(1)
    return client.get()
"""
        after = """\
from toolkit import RetryPolicy, step


@step(retry=RetryPolicy(max_attempts=4, delays=(1.0, 1.0, 0.0), retry_on=(OSError,)))
def fetch(client):
    return client.get()
"""
        self.assertCodemod(before, after)

    def test_local_count_read_by_the_code_run_when_attempts_run_out_stays(self) -> None:
        before = """\
import time


def download(fetch, url):
    max_retries = 3
    for attempt in range(max_retries):
        try:
            fetch(url).save()
            break
        except OSError as e:
            if attempt == max_retries - 1:
                raise RuntimeError(f"failed after {max_retries} attempts: {e}")
            time.sleep(2**attempt)
"""
        code, sites = self.run_codemod(before)
        self.assertEqual([s.action for s in sites], ["rewritten"], sites)
        self.assertIn("    max_retries = 3\n", code)
        self.assertIn("max_attempts=3,", code)

    def test_success_flag_becomes_a_step(self) -> None:
        before = """\
import time


def send(hook, payload):
    success = False
    attempts = 0
    while not success and attempts < 4:
        attempts += 1
        try:
            response = hook.post(payload)
            success = True
        except OSError:
            time.sleep(2)
    if not success:
        raise RuntimeError("hook failed")
    return response
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(OSError,),
    )
)
def _post_step(hook, payload):
    response = hook.post(payload)
    return response


def send(hook, payload):
    success = False
    try:
        response = _post_step(hook, payload)
    except OSError:
        pass
    else:
        success = True
    if not success:
        raise RuntimeError("hook failed")
    return response
"""
        self.assertCodemod(before, after)

    def test_value_flag_retried_until_a_value(self) -> None:
        before = """\
import time


def open_database(driver, url):
    conn = None
    while conn is None:
        try:
            conn = driver.connect(url)
        except ConnectionError:
            time.sleep(1)
    return conn
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
    )
)
def _connect_step(driver, url):
    conn = driver.connect(url)
    return conn


def open_database(driver, url):
    conn = None
    conn = _connect_step(driver, url)
    return conn
"""
        self.assertCodemod(before, after)
        _, [site] = self.run_codemod(before)
        self.assertIn(
            "when the attempt sets `conn` to None, the legacy loop tried again at once;"
            " the step returns it",
            site.notes,
        )

    def test_value_flag_read_twice_in_the_test_is_not_one(self) -> None:
        before = """\
import time


def open_database(driver, url):
    conn = None
    while conn is None or not conn.ready:
        try:
            conn = driver.connect(url)
        except ConnectionError:
            time.sleep(1)
    return conn
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertTrue(all(s.action != "rewritten" for s in sites))

    def test_success_flag_with_a_value_a_failed_attempt_may_set(self) -> None:
        before = """\
import time


def send(hook, payload):
    success = False
    attempts = 0
    while not success and attempts < 4:
        attempts += 1
        try:
            response = hook.post(payload)
            response.raise_for_status()
            success = True
        except OSError:
            time.sleep(2)
    if not success:
        raise RuntimeError("hook failed")
    return response
"""
        self.assertUnchanged(
            before,
            [
                "when attempts run out the code after the loop reads `response`, which a"
                " failed attempt may have set"
            ],
        )
