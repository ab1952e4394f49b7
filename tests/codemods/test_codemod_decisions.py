"""``codemods.decide``: the codemods' decision per site, in memory, never raising."""

from __future__ import annotations

from codemods import decide

LOOP = """\
import time


def fetch(client):
    for attempt in range(5):
        try:
            return client.get()
        except ConnectionError:
            time.sleep(2 ** attempt)
    raise RuntimeError("gave up")
"""


def test_decide_reports_the_rewrite_its_range_and_policy() -> None:
    (site,) = decide(LOOP, "pkg/fetch.py")
    assert site.selector == "retry-loop"
    assert site.action == "rewritten"
    assert (site.line, site.end_line) == (5, 9)
    assert site.policy == "5 attempts, 1s doubling, on ConnectionError"


def test_decide_on_a_file_that_does_not_parse_is_empty() -> None:
    assert decide("def broken(:\n") == []
    assert decide("") == []


def test_decide_writes_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fetch.py"
    path.write_text(LOOP)
    decide(LOOP, str(path))
    assert path.read_text() == LOOP


def test_decorator_site_spans_the_function() -> None:
    source = (
        "import tenacity\n\n\n"
        "@tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)\n"
        "def ping(host):\n"
        "    return host.ping()\n"
    )
    (site,) = decide(source)
    assert site.selector == "tenacity"
    assert site.action == "rewritten"
    assert (site.line, site.end_line) == (4, 6)
    assert site.policy.startswith("3 attempts")


def test_nested_calls_of_one_retry_construct_are_one_site() -> None:
    source = (
        "from tenacity import retry\n\n"
        "class Embedder:\n"
        "    def embed(self, items, **retry_kwargs):\n"
        "        return retry(**retry_kwargs)(self.__call__)(items)\n"
    )
    (site,) = decide(source)
    assert site.action == "kept" and site.line == 5


TRY_INSIDE_A_LOCK = """\
import threading
import time

lock = threading.Lock()


def call(client):
    for attempt in range(3):
        with lock:
            try:
                return client.call()
            except ConnectionError:
                pass
        time.sleep(1)
    raise RuntimeError("no answer")
"""

SUPERVISOR = """\
import time


def supervise(consumer):
    while True:
        try:
            consumer.run_forever()
        except ConnectionError:
            time.sleep(3)
            consumer.reconnect()
"""

POLL_WITHOUT_END = """\
import time


def wait_for_job(client, job_id):
    while True:
        try:
            state = client.status(job_id)
        except ConnectionError:
            time.sleep(5)
            continue
        if state == "done":
            return state
        time.sleep(5)
"""

READINESS_POLL = """\
import time


def wait_ready(service):
    while not service.ready():
        time.sleep(1)
"""


def test_a_retry_loop_the_codemod_does_not_follow_is_listed_with_the_audits_reading() -> None:
    (site,) = decide(TRY_INSIDE_A_LOCK, "locked.py")
    assert (site.selector, site.action) == ("retry-loop", "skipped")
    assert (site.line, site.end_line) == (8, 14)
    assert site.reason.startswith("a counted `for` loop that retries, in a shape the codemod")
    assert site.reason.endswith("migrate it by hand (a @step with a RetryPolicy)")


def test_a_supervisor_is_listed_never_rewritten() -> None:
    (site,) = decide(SUPERVISOR, "supervise.py")
    assert (site.selector, site.action) == ("retry-loop", "skipped")
    assert site.reason.startswith(
        "a supervisor loop: it starts `consumer.run_forever()` again after each failure"
    )


def test_a_poll_without_end_that_retries_failures_is_listed_with_its_reason() -> None:
    (site,) = decide(POLL_WITHOUT_END, "jobs.py")
    assert (site.action, site.reason) == (
        "skipped",
        'polls until `state == "done"` with no count (a supervisor, not a step: make the'
        " poll a workflow)",
    )


def test_a_readiness_poll_is_not_a_retry_site() -> None:
    assert decide(READINESS_POLL, "ready.py") == []


def test_unfollowed_loops_are_retry_loop_sites_only() -> None:
    from codemods.runner import transform_source

    code, sites = transform_source(TRY_INSIDE_A_LOCK, selectors=("tenacity",))
    assert (code, sites) == (TRY_INSIDE_A_LOCK, [])


def test_a_loop_run_while_a_flag_holds_says_so() -> None:
    source = """\
class Reader:
    def consume(self):
        while not self.coordinator.exception:
            try:
                self.bucket.consume(self.amount)
                return
            except RuntimeError as e:
                self.clock.sleep(e.retry_time)
        raise self.coordinator.exception
"""
    (site,) = decide(source)
    assert site.reason == (
        "the loop runs while `not self.coordinator.exception`, which reads"
        " `self.coordinator.exception`: state set elsewhere (a flag), not an attempt count"
    )


def test_annotate_writes_the_reason_above_an_unfollowed_loop_once() -> None:
    from codemods.runner import transform_source

    once, _ = transform_source(TRY_INSIDE_A_LOCK, annotate=True)
    assert once.splitlines()[7] == (
        "    # durable: retry-loop not rewritten: a counted `for` loop that retries, in a shape"
        " the codemod does not follow: its try sits inside `with lock:` (the handler catches"
        " the error inside the block; in a step the error would pass through the block's"
        " exit); migrate it by hand (a @step with a RetryPolicy)"
    )
    assert once.splitlines()[8] == "    for attempt in range(3):"
    twice, sites = transform_source(once, annotate=True)
    assert twice == once
    assert [s.action for s in sites] == ["skipped"]
