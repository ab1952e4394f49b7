"""retry-loop codemod: retries decided by a returned value, not by an exception.

Each case is a minimal reproduction of a shape read in public code (a status code
checked after the call, a future that must succeed, a read retried until it is not
``None``, a counted poll of a job's state), the source before and after side by side;
then the shapes that must be left alone, each with its reason.
"""

from __future__ import annotations

from codemods._base import LOGGED_NOTE, SILENT_NOTE
from codemods.retry_loop import RetryLoopCodemod
from codemods.testing import DurableCodemodTest


class TestResultRewrites(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_status_code_then_an_error(self) -> None:
        before = """\
import time


def fetch_profile(session, user_id):
    for attempt in range(4):
        resp = session.get(f"/users/{user_id}", timeout=5)
        if resp.status_code == 200:
            return resp.json()
        time.sleep(2)
    raise LookupError(user_id)
"""
        after = """\
from toolkit import RetriesExhausted, RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(),
        retry_on_result=lambda resp: resp.status_code != 200,
    )
)
def _get_step(session, user_id):
    return session.get(f"/users/{user_id}", timeout=5)


def fetch_profile(session, user_id):
    try:
        resp = _get_step(session, user_id)
    except RetriesExhausted:
        pass
    else:
        return resp.json()
    raise LookupError(user_id)
"""
        self.assertCodemod(before, after)
        _, [site] = self.run_codemod(before)
        assert site.notes == (
            SILENT_NOTE,
            "the legacy code slept 2s after its last rejected value; the step gives up at once",
            "the step returns the value of `session.get(...)`, which may not serialize as JSON"
            " (a response, a cursor, an ORM object): inside a workflow the step would fail;"
            " return plain data",
        )

    def test_error_raised_between_attempts(self) -> None:
        before = """\
import time

import requests


def create(url, payload):
    for attempt in range(3):
        resp = requests.post(url, json=payload)
        if resp.status_code < 500:
            return resp
        if attempt == 2:
            raise RuntimeError("server kept failing")
        time.sleep(2**attempt)
"""
        after = """\
import requests
from toolkit import RetriesExhausted, RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=2.0,
        retry_on=(),
        retry_on_result=lambda resp: not (resp.status_code < 500),
    )
)
def _post_step(url, payload):
    return requests.post(url, json=payload)


def create(url, payload):
    try:
        resp = _post_step(url, payload)
    except RetriesExhausted:
        raise RuntimeError("server kept failing")
    else:
        return resp
"""
        self.assertCodemod(before, after)
        _, [site] = self.run_codemod(before)
        assert any("inside `except RetriesExhausted`" in n for n in site.notes)

    def test_future_kept_either_way(self) -> None:
        before = """\
import time


def publish(producer, topic, record):
    attempts = 0
    while attempts < 3:
        future = producer.send(topic, record)
        if future.succeeded():
            break
        attempts += 1
        time.sleep(0.5 * 2**attempts)
    return future
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=3,
        initial_delay=1.0,
        backoff=2.0,
        retry_on=(),
        retry_on_result=lambda future: not future.succeeded(),
        on_give_up=lambda state: state.result,
    )
)
def _send_step(producer, topic, record):
    return producer.send(topic, record)


def publish(producer, topic, record):
    future = _send_step(producer, topic, record)
    return future
"""
        self.assertCodemod(before, after)

    def test_for_else_default_reads_the_test_again(self) -> None:
        before = """\
import time


def read_setting(store, key):
    for attempt in range(5):
        value = store.read(key)
        if value is not None:
            break
        time.sleep(1)
    else:
        value = "default"
    return value
"""
        after = """\
from toolkit import RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=1.0,
        backoff=1.0,
        retry_on=(),
        retry_on_result=lambda value: value is None,
        on_give_up=lambda state: state.result,
    )
)
def _read_step(store, key):
    return store.read(key)


def read_setting(store, key):
    value = _read_step(store, key)
    if value is None:
        value = "default"
    return value
"""
        self.assertCodemod(before, after)

    def test_counted_poll_returns_the_last_state(self) -> None:
        before = """\
import time

DONE = ("finished", "failed")


def wait_for_job(api, job_id):
    for _ in range(10):
        state = api.job_state(job_id)
        if state in DONE:
            return state
        time.sleep(5)
    return state
"""
        after = """\
from toolkit import RetryPolicy, step

DONE = ("finished", "failed")


@step(
    retry=RetryPolicy(
        max_attempts=10,
        initial_delay=5.0,
        backoff=1.0,
        retry_on=(),
        retry_on_result=lambda state: state not in DONE,
        on_give_up=lambda state: state.result,
    )
)
def _job_state_step(api, job_id):
    return api.job_state(job_id)


def wait_for_job(api, job_id):
    state = _job_state_step(api, job_id)
    if state in DONE:
        return state
    return state
"""
        self.assertCodemod(before, after)

    def test_test_reading_self_makes_the_step_nested(self) -> None:
        before = """\
import time


class Uploader:
    def push(self, blob):
        tries = 0
        while True:
            tries += 1
            code = self.client.upload(blob)
            if code in self.accepted:
                return code
            if tries >= 3:
                raise RuntimeError(f"upload refused with {code}")
            time.sleep(1.5)
"""
        after = """\
from toolkit import RetryPolicy, step


class Uploader:
    def push(self, blob):
        @step(
            retry=RetryPolicy(
                max_attempts=3,
                initial_delay=1.5,
                backoff=1.0,
                retry_on=(),
                retry_on_result=lambda code: code not in self.accepted,
                on_give_up=lambda state: state.result,
            )
        )
        def _upload_step():
            return self.client.upload(blob)

        code = _upload_step()
        if code in self.accepted:
            return code
        else:
            raise RuntimeError(f"upload refused with {code}")
"""
        self.assertCodemod(before, after)

    def test_failed_calls_retried_too(self) -> None:
        before = """\
import time

import requests


def fetch(url):
    for attempt in range(4):
        try:
            resp = requests.get(url, timeout=5)
        except requests.ConnectionError as exc:
            print("failed", exc)
            time.sleep(2)
            continue
        if resp.status_code == 200:
            return resp.json()
        time.sleep(2)
    raise RuntimeError("unavailable")
"""
        after = """\
import requests
from toolkit import RetriesExhausted, RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=4,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(requests.ConnectionError,),
        retry_on_result=lambda resp: resp.status_code != 200,
    )
)
def _get_step(url):
    return requests.get(url, timeout=5)


def fetch(url):
    try:
        resp = _get_step(url)
    except (requests.ConnectionError, RetriesExhausted):
        pass
    else:
        return resp.json()
    raise RuntimeError("unavailable")
"""
        self.assertCodemod(before, after)
        _, [site] = self.run_codemod(before)
        assert LOGGED_NOTE in site.notes

    def test_decided_inside_the_try(self) -> None:
        before = """\
import logging
import time

log = logging.getLogger(__name__)


def query(client, data, node):
    tries = 0
    while tries < 5:
        tries += 1
        try:
            obj = client.query(data, node)
            if obj.status in ("ok", "warning"):
                return obj
        except ConnectionError as e:
            log.debug("query failed: %s", e)
        time.sleep(2)
    raise RuntimeError("retry limit reached")
"""
        after = """\
import logging

from toolkit import RetriesExhausted, RetryPolicy, step

log = logging.getLogger(__name__)


@step(
    retry=RetryPolicy(
        max_attempts=5,
        initial_delay=2.0,
        backoff=1.0,
        retry_on=(ConnectionError,),
        retry_on_result=lambda obj: obj.status not in ("ok", "warning"),
    )
)
def _query_step(client, data, node):
    return client.query(data, node)


def query(client, data, node):
    try:
        obj = _query_step(client, data, node)
    except (ConnectionError, RetriesExhausted):
        pass
    else:
        return obj
    raise RuntimeError("retry limit reached")
"""
        self.assertCodemod(before, after)


class TestResultRefusals(DurableCodemodTest):
    TRANSFORM = RetryLoopCodemod

    def test_refused_with_the_reason(self) -> None:
        before = """\
import time


def counter_in_the_test(api, key):
    for attempt in range(5):
        resp = api.fetch(key)
        if resp.ok or attempt == 4:
            return resp
        time.sleep(1)


def two_values(api, key):
    for attempt in range(5):
        head = api.head(key)
        body = api.body(key)
        if head and body:
            return body
        time.sleep(1)


def repair_between(api, key):
    for attempt in range(5):
        resp = api.fetch(key)
        if resp.ok:
            return resp
        api.refresh_token()
        time.sleep(1)


def last_value_and_a_call(api, key):
    for attempt in range(3):
        resp = api.fetch(key)
        if resp.json()["ok"]:
            return resp.json()
        time.sleep(1)
    return resp


def carried(api, token):
    for attempt in range(3):
        token = api.renew(token)
        if token.valid:
            return token
        time.sleep(1)


def told_to_wait(api, key):
    for attempt in range(3):
        resp = api.fetch(key)
        if resp.status_code != 429:
            return resp
        time.sleep(int(resp.headers["Retry-After"]))


def no_count(api, key):
    retries = 0
    while True:
        resp = api.fetch(key)
        if resp.ok:
            return resp
        retries += 1
        time.sleep(1)
"""
        self.assertUnchanged(
            before,
            [
                "the retry decision `resp.ok or attempt == 4` reads `attempt`, which changes"
                " between attempts",
                "the retry decision `head and body` reads `body` and `head`: a value predicate"
                " reads one returned value",
                "between attempts the loop runs `api.refresh_token()` (work for the next"
                " attempt, not followed for a retry decided by a value)",
                "when attempts run out the code reads the last `resp`, and the retry decision"
                ' `resp.json()["ok"]` calls `resp.json` (it would run once more at the call'
                " site)",
                "the attempt body updates `token`, read by the next attempt",
                "sleep is not a backoff: the delay depends on `resp.headers['Retry-After']`",
                "polls until `resp.ok` with no count (a supervisor, not a step: make the poll"
                " a workflow)",
            ],
        )

    def test_readiness_polls_are_not_retries(self) -> None:
        before = """\
import os
import time

import requests


def wait_ready(ready):
    for attempt in range(30):
        if ready():
            break
        time.sleep(1)


def wait_for_file(path):
    for _ in range(30):
        if os.path.exists(path):
            return True
        time.sleep(1)
    return False


def wait_for_health(url):
    for _ in range(30):
        resp = requests.get(url, timeout=1)
        if resp.status_code == 200:
            return True
        time.sleep(1)
    return False
"""
        self.assertUnchanged(before, [])

    def test_retries_decided_after_a_try_name_what_they_read(self) -> None:
        before = """\
import time


def helper_decides(client, req, max_retries):
    retries = 0
    while True:
        try:
            reply = client.send(req)
            error = None
        except ConnectionError as exc:
            error = exc
            reply = None
        if client.should_retry(reply, error, retries, max_retries):
            retries += 1
            time.sleep(client.backoff(retries))
        else:
            return reply


def two_waits(cli, command, codes):
    for retry_num in range(3):
        try:
            out = cli.run(command)
        except Exception as ex:
            raise RuntimeError(ex)
        if out.startswith("E"):
            if out in codes:
                time.sleep(5)
                continue
            time.sleep(1)
            continue
        break


def switches_host(api, data, host):
    tries = 0
    while tries < 5:
        tries += 1
        try:
            obj = api.query(data, host)
            if obj["status"] == "ok":
                return obj
        except Exception:
            host = api.other_host()
"""
        self.assertUnchanged(
            before,
            [
                "the retry is decided after the try, by"
                " `client.should_retry(reply, error, retries, max_retries)`, rather than by an"
                " exception; it reads the counter `retries`; it reads `error`, also set by the"
                " except handler (exceptions and returned values decided together)",
                'the retry is decided after the try, by `out.startswith("E")`, rather than by'
                " an exception; the retries it decides wait differently (`time.sleep(5)`,"
                " `time.sleep(1)`)",
                'the attempt leaves the loop only when `obj["status"] == "ok"`; the except'
                " handler changes `host`, which the next attempt reads (state carried into the"
                " next attempt)",
            ],
        )

    def test_failed_calls_and_values_must_retry_alike(self) -> None:
        before = """\
import time


def waits_differently(api, key):
    for attempt in range(4):
        try:
            resp = api.fetch(key)
        except ConnectionError:
            time.sleep(5)
            continue
        if resp.ok:
            return resp
        time.sleep(2)


def last_value_after_failures(api, key):
    for attempt in range(4):
        try:
            resp = api.fetch(key)
        except ConnectionError:
            time.sleep(2)
            continue
        if resp.ok:
            break
        time.sleep(2)
    return resp
"""
        self.assertUnchanged(
            before,
            [
                "a failed call (`except ConnectionError`) and a rejected value are retried"
                " differently (attempts, delays or the end)",
                "when attempts run out the code reads the last `resp`, which a failed call did"
                " not set (exceptions are retried too)",
            ],
        )

    def test_decided_inside_a_try_that_would_catch_the_test(self) -> None:
        before = """\
import time


def subscripted(client, data):
    for attempt in range(3):
        try:
            obj = client.query(data)
            if obj["status"] == "ok":
                return obj
        except Exception:
            pass
        time.sleep(1)


def does_work(client, data):
    for attempt in range(3):
        try:
            obj = client.query(data)
            if obj.ok:
                return obj.payload()
        except ConnectionError:
            pass
        time.sleep(1)


def handler_repairs(client, data):
    for attempt in range(3):
        try:
            obj = client.query(data)
            if obj.ok:
                return obj
        except ConnectionError:
            client.reconnect()
        time.sleep(1)
"""
        self.assertUnchanged(
            before,
            [
                'the retry decision `obj["status"] == "ok"` is inside a try that catches'
                " `Exception`: an error the test raises was retried, a step would end",
                "the code run when `obj.ok` holds is inside the try: an error it raises was"
                " retried, after the step it would not be",
                "the handler for `ConnectionError` does more than log, and the retry is"
                " decided inside the try",
            ],
        )


class TestPollsWithinATimeBudget(DurableCodemodTest):
    """``while clock() < deadline:`` polling for a value: the budget becomes max_elapsed."""

    TRANSFORM = RetryLoopCodemod

    def test_a_poll_until_a_deadline(self) -> None:
        before = """\
import time


def wait_for_job(client, job_id):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = client.status(job_id)
        if state == "done":
            return state
        time.sleep(5)
    raise TimeoutError(job_id)
"""
        after = """\
from toolkit import RetriesExhausted, RetryPolicy, step


@step(
    retry=RetryPolicy(
        max_attempts=None,
        initial_delay=5.0,
        backoff=1.0,
        retry_on=(),
        max_elapsed=60.0,
        retry_on_result=lambda state: state != "done",
    )
)
def _status_step(client, job_id):
    return client.status(job_id)


def wait_for_job(client, job_id):
    try:
        state = _status_step(client, job_id)
    except RetriesExhausted:
        pass
    else:
        return state
    raise TimeoutError(job_id)
"""
        self.assertCodemod(before, after)
        _, [site] = self.run_codemod(before)
        assert site.notes[0].startswith(
            "the time budget `time.monotonic() < deadline` became max_elapsed=60"
        )

    def test_a_refused_poll_keeps_its_deadline(self) -> None:
        # failed calls and rejected values retried differently: refused, and the
        # deadline the budget would have replaced stays where it is
        before = """\
import time


def wait_for_job(client, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = client.status(job_id)
        except ConnectionError:
            time.sleep(1)
            continue
        if state == "done":
            return state
        time.sleep(5)
    raise TimeoutError(job_id)
"""
        self.assertCodemod(before, before)
