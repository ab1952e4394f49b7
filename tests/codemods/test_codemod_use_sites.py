"""Retry decorators of frameworks and brokers (codemods.framework_retry) and uses of a
project's own retry decorators (codemods.project_retry): listed with a reason and the policy
read, never rewritten."""

from __future__ import annotations

import json
import unittest
from pathlib import Path
from typing import Any

import libcst as cst
import pytest
from click.testing import CliRunner
from libcst.codemod import CodemodContext

from codemods._base import sites_of
from codemods._use_sites import says_retry
from codemods.cli import codemod
from codemods.framework_retry import FrameworkRetryCodemod
from codemods.project_retry import ProjectRetryCodemod
from codemods.runner import transform_source
from codemods.testing import DurableCodemodTest
from tests.codemods.test_codemod_behaviour import SCENARIOS, Flaky, _run
from tests.codemods.test_codemod_behaviour import sleeps as sleeps  # the fixture


class TestFrameworkRetry(DurableCodemodTest):
    TRANSFORM = FrameworkRetryCodemod

    def test_oslo_db_wrap_db_retry_is_listed(self) -> None:
        before = """\
from oslo_db import api as oslo_db_api


@oslo_db_api.wrap_db_retry(max_retries=5, retry_on_deadlock=True)
def update(context, values):
    return context.session.update(values)
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertEqual([s.action for s in sites], ["skipped"])
        self.assertIn("wrap_db_retry", sites[0].reason)
        self.assertEqual(sites[0].policy, "max_retries=5, retry_on_deadlock=True")
        self.assertEqual((sites[0].line, sites[0].end_line), (5, 6))

    def test_retry_decorator_positional_arguments_are_named(self) -> None:
        before = """\
from oslo_service import loopingcall


@loopingcall.RetryDecorator(CONF.retries, 1, 15, (IOError,))
def create(session):
    return session.create()
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertEqual(
            sites[0].reason,
            "oslo.service loopingcall.RetryDecorator: max_retry_count=CONF.retries is known"
            " only at run time",
        )
        self.assertEqual(
            sites[0].policy,
            "max_retry_count=CONF.retries, inc_sleep_time=1, max_sleep_time=15,"
            " exceptions=(IOError,)",
        )

    def test_aws_retry_decorator_and_client_config(self) -> None:
        before = """\
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


@AWSRetry.jittered_backoff(**params)
def describe(client):
    return client.describe()


def do(module):
    return module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertEqual([s.line for s in sites], [5, 10])
        self.assertEqual(sites[0].policy, "**params")
        self.assertIn("retry_decorator=AWSRetry.jittered_backoff", sites[1].reason)

    def test_forever_retry_is_a_supervisor(self) -> None:
        before = """\
from oslo_utils import excutils


class Adapter:
    @excutils.forever_retry_uncaught_exceptions
    def _runner(self):
        self.poll()
"""
        self.assertUnchanged(
            before,
            [
                "excutils.forever_retry_uncaught_exceptions is a supervisor that never ends "
                "(it retries every exception forever)"
            ],
        )

    def test_celery_tasks_with_broker_retries(self) -> None:
        before = """\
from celery import shared_task


@shared_task(autoretry_for=(IOError,), retry_backoff=10, max_retries=3)
def fetch(url):
    return get(url)


@app.task(bind=True)
def send(self, to):
    try:
        mail(to)
    except IOError as exc:
        raise self.retry(countdown=60, exc=exc)


@app.task
def plain(x):
    return x
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertEqual([s.line for s in sites], [5, 10])
        self.assertEqual(
            sites[0].policy, "autoretry_for=(IOError,), retry_backoff=10, max_retries=3"
        )
        self.assertEqual(sites[1].policy, "self.retry(...) in the body")
        self.assertTrue(all("broker-managed" in s.reason for s in sites))

    def test_dramatiq_actor(self) -> None:
        before = """\
import dramatiq


@dramatiq.actor(max_retries=3)
def crawl(url):
    return get(url)
"""
        _code, sites = self.run_codemod(before)
        self.assertEqual(sites[0].policy, "max_retries=3")
        self.assertIn("dramatiq", sites[0].reason)

    def test_annotate_carries_the_policy(self) -> None:
        before = """\
import dramatiq


@dramatiq.actor(max_retries=3)
def crawl(url):
    return get(url)
"""
        after = """\
import dramatiq


{comment}
@dramatiq.actor(max_retries=3)
def crawl(url):
    return get(url)
""".format(
            comment="# durable: framework-retry not rewritten: broker-managed retries "
            "(dramatiq actor): the broker re-queues the message; a task-to-workflow "
            "migration, not a step (policy read: max_retries=3)"
        )
        self.assertCodemod(before, after, annotate=True)
        self.assertCodemod(after, after, annotate=True)

    def test_other_decorators_are_ignored(self) -> None:
        self.assertUnchanged(
            """\
import functools


@functools.lru_cache
def f(max_retries=3):
    return max_retries
""",
            [],
        )


# -- project-retry: uses of a project's own retry decorator ---------------------------

ENGINE = """\
import functools
import time


def with_retries(attempts):
    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for attempt in range(attempts):
                try:
                    return func(*args, **kwargs)
                except ConnectionError:
                    if attempt == attempts - 1:
                        raise
                    time.sleep(2)

        return wrapper

    return decorator
"""

ELSEWHERE = (
    "defined in a file outside this run: its policy lives in its definition; run the "
    "codemod on the project's directory to read the definition's decision, then make "
    "each use a step with that policy"
)


class TestProjectRetryUses(DurableCodemodTest):
    TRANSFORM = ProjectRetryCodemod
    FILENAME = "shop/orders.py"

    def test_use_of_a_retry_engine_defined_in_the_file(self) -> None:
        before = (
            ENGINE
            + """

class Client:
    @with_retries(5)
    def fetch(self, url):
        return self.session.get(url)
"""
        )
        self.assertUnchanged(
            before,
            [
                "a use of the project's own retry decorator `@with_retries`, defined at line 5: "
                "retry-loop skipped: a retry engine: it retries `func`, which its callers "
                "pass in, with a policy they choose (`attempts`): make the functions they "
                "pass steps instead"
            ],
        )
        _code, sites = self.run_codemod(before)
        self.assertEqual((sites[0].line, sites[0].end_line, sites[0].policy), (23, 25, "5"))

    def test_use_of_a_definition_the_tenacity_codemod_rewrites(self) -> None:
        before = """\
import tenacity


def retry_on_lock(f):
    def wrapper(*args, **kwargs):
        for attempt in tenacity.Retrying(stop=tenacity.stop_after_attempt(3), reraise=True):
            with attempt:
                return f(*args, **kwargs)

    return wrapper


@retry_on_lock
def reserve(node):
    return node.lock()
"""
        _code, sites = self.run_codemod(before)
        self.assertEqual(
            [(s.line, s.action, s.reason, s.policy) for s in sites],
            [
                (
                    13,
                    "skipped",
                    "a use of the project's own retry decorator `@retry_on_lock`, defined at "
                    "line 4, which the tenacity codemod rewrites into a step: each use becomes a "
                    "step with it",
                    "3 attempts, no delay, on Exception",
                )
            ],
        )

    def test_imported_from_the_project_by_name(self) -> None:
        before = """\
from shop import utils
from shop.exchange.common import retrier

from .s3util import aws_retry


class Exchange:
    @utils.retry(IOError, tries=4)
    def a(self):
        pass

    @retrier(retries=API_RETRY_COUNT)
    def b(self):
        pass

    @aws_retry
    def c(self):
        pass
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertEqual(
            [(s.line, s.action, s.reason, s.policy) for s in sites],
            [
                (
                    8,
                    "skipped",
                    f"a use of the project's own retry decorator `@utils.retry` (from shop.utils), "
                    f"{ELSEWHERE}",
                    "IOError, tries=4",
                ),
                (
                    12,
                    "skipped",
                    "a use of the project's own retry decorator `@retrier` (from "
                    f"shop.exchange.common), {ELSEWHERE}",
                    "retries=API_RETRY_COUNT",
                ),
                (
                    16,
                    "skipped",
                    "a use of the project's own retry decorator `@aws_retry` (from .s3util), "
                    + ELSEWHERE,
                    "",
                ),
            ],
        )

    def test_factory_returning_wrap_db_retry_gives_its_policy(self) -> None:
        before = """\
from oslo_db import api as oslo_db_api


def _retry_instance_update():
    return oslo_db_api.wrap_db_retry(max_retries=5, retry_on_deadlock=True)


@_retry_instance_update()
def instance_update(context, values):
    return context.session.update(values)
"""
        _code, sites = self.run_codemod(before)
        self.assertEqual(
            [(s.line, s.reason, s.policy) for s in sites],
            [
                (
                    8,
                    "a use of the project's own retry decorator `@_retry_instance_update`, "
                    "defined at line 4: framework-retry skipped: oslo.db wrap_db_retry (built by "
                    "`_retry_instance_update` for the functions it is given) retries the database "
                    "transaction on deadlock or disconnect, deciding per exception inside oslo.db",
                    "max_retries=5, retry_on_deadlock=True",
                )
            ],
        )

    def test_annotate_carries_the_reason_and_the_policy(self) -> None:
        before = """\
from shop.net import retrier


@retrier(retries=3)
def fetch(url):
    return get(url)
"""
        after = """\
from shop.net import retrier


{comment}
@retrier(retries=3)
def fetch(url):
    return get(url)
""".format(
            comment="# durable: project-retry not rewritten: a use of the project's own retry "
            f"decorator `@retrier` (from shop.net), {ELSEWHERE} (policy read: retries=3)"
        )
        context = CodemodContext(filename=self.FILENAME)
        self.assertCodemod(before, after, annotate=True, context_override=context)
        context = CodemodContext(filename=self.FILENAME)
        self.assertCodemod(after, after, annotate=True, context_override=context)

    def test_look_alikes_are_not_reported(self) -> None:
        self.assertUnchanged(
            """\
import functools
from functools import cache

from vendorlib import retry

from shop._vendor.tenacity import retry as vendored_retry

from . import helpers
from .http import retry_after_header


def log_retries(f):
    return f


def retry_counter(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        return f(*args, **kwargs)

    return wrapper


@retry_after_header
def a(response):
    return response


@cache
@functools.lru_cache(maxsize=3)
def b(x):
    return x


@helpers.no_retry
@helpers.on_retry
def c():
    pass


@retry(3)
@vendored_retry(reraise=True)
def d():
    pass


@log_retries
@retry_counter
def e():
    pass
""",
            [],
        )

    def test_a_name_that_says_retry_over_a_definition_without_one(self) -> None:
        self.assertUnchanged(
            """\
def retry_on_conflict(f):
    return _registry.wrap(f)


@retry_on_conflict
def save(row):
    row.save()
""",
            [
                "a use of the project's own retry decorator `@retry_on_conflict`, defined at "
                "line 1, where the codemods read no retry: check its policy by hand"
            ],
        )

    def test_a_module_given_without_a_path_knows_only_relative_imports(self) -> None:
        code = """\
from shop.net import retrier
from .net import retrier as local_retrier


@retrier
@local_retrier
def fetch(url):
    return get(url)
"""
        context = CodemodContext(filename="<string>")
        transform = ProjectRetryCodemod(context)
        transform.transform_module(cst.parse_module(code))
        self.assertEqual(
            [s.reason.split(",")[0] for s in sites_of(context)],
            ["a use of the project's own retry decorator `@local_retrier` (from .net)"],
        )


class TestRetryNames(unittest.TestCase):
    def test_names_that_say_retry(self) -> None:
        for name in ("retry", "retrier", "aws_retry", "wrap_sqlite_retry", "retry_on_db_error",
                     "with_retries", "retryable_task", "RetryDecorator", "autoretry",
                     "_retry_instance_update", "k8s_retry", "retrying"):  # fmt: skip
            self.assertTrue(says_retry(name), name)

    def test_names_that_do_not(self) -> None:
        for name in ("retry_after_header", "no_retry", "on_retry", "log_retries", "retry_count",
                     "should_retry", "retry_delay", "cache", "reattach", "noretry",
                     "skip_retries", "RetryAfter"):  # fmt: skip
            self.assertFalse(says_retry(name), name)


class TestFrameworkRetryBuilders(DurableCodemodTest):
    TRANSFORM = FrameworkRetryCodemod

    def test_a_decorator_applying_wrap_db_retry_per_call(self) -> None:
        before = """\
import functools

from oslo_db import api as oslo_db_api


def retry_on_db_error(func):
    @functools.wraps(func)
    def try_func(context, *args, **kwargs):
        wrapped = oslo_db_api.wrap_db_retry(max_retries=CONF.retries, retry_on_deadlock=True)(func)
        return wrapped(context, *args, **kwargs)

    return try_func
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertEqual(
            [(s.line, s.end_line, s.reason, s.policy) for s in sites],
            [
                (
                    6,
                    12,
                    "oslo.db wrap_db_retry (built by `retry_on_db_error` for the functions it is "
                    "given) retries the database transaction on deadlock or disconnect, deciding "
                    "per exception inside oslo.db",
                    "max_retries=CONF.retries, retry_on_deadlock=True",
                )
            ],
        )

    def test_a_helper_retrying_the_celery_task_it_is_given(self) -> None:
        before = """\
from celery import Task


def handle_retry(task: Task, response) -> bool:
    if 400 <= response.status < 500:
        return False
    task.retry(countdown=task.retry_backoff * 2**task.request.retries)
    return True
"""
        code, sites = self.run_codemod(before)
        self.assertEqual(code, before)
        self.assertEqual(
            [(s.line, s.reason, s.policy) for s in sites],
            [
                (
                    4,
                    "broker-managed retries (celery): `handle_retry` calls `task.retry(...)`, the "
                    "broker re-queues the task; a task-to-workflow migration, not a step",
                    "countdown=task.retry_backoff * 2**task.request.retries",
                )
            ],
        )

    def test_a_class_wrapping_functions_into_retried_celery_tasks(self) -> None:
        before = """\
from celery import shared_task


class retrying_task:
    def __init__(self, **options):
        self.options = options

    def __call__(self, f):
        def inner(*args, **kwargs):
            try:
                return f(*args, **kwargs)
            except Exception as e:
                raise task.retry(exc=e, countdown=10)

        task = shared_task(**self.options)(inner)
        return task
"""
        _code, sites = self.run_codemod(before)
        self.assertEqual([(s.line, s.policy) for s in sites], [(4, "exc=e, countdown=10")])

    def test_other_retry_methods_are_not_celery(self) -> None:
        self.assertUnchanged(
            """\
import celery


def connect(policy, client):
    return policy.retry(client.connect, attempts=3)
""",
            [],
        )


# -- the command on a project: the definition in one file, its uses in another -----------

USES = """\
from shop.retrying import with_retries


class Client:
    @with_retries(5)
    def fetch(self, url):
        return self.session.get(url)
"""


def _project(root: Path) -> Path:
    (root / "pyproject.toml").write_text('[project]\nname = "shop"\n')
    package = root / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "retrying.py").write_text(ENGINE)
    (package / "client.py").write_text(USES)
    return package


def _sites(*args: str) -> dict[str, list[dict[str, Any]]]:
    result = CliRunner().invoke(codemod, [*args, "--json", "--jobs", "1"], catch_exceptions=False)
    report = json.loads(result.stdout)
    return {Path(r["path"]).name: r["sites"] for r in report["results"]}


def test_a_use_in_one_file_answers_with_the_definition_in_another(tmp_path: Path) -> None:
    package = _project(tmp_path)
    sites = _sites(str(tmp_path))
    (definition,) = sites["retrying.py"]
    assert (definition["selector"], definition["action"]) == ("retry-loop", "skipped")
    (use,) = sites["client.py"]
    assert use["selector"] == "project-retry" and use["action"] == "skipped"
    assert (use["line"], use["end_line"], use["policy"]) == (5, 7, "5")
    assert use["reason"] == (
        f"a use of the project's own retry decorator `@with_retries`, defined at "
        f"{package / 'retrying.py'}:5: retry-loop skipped: {definition['reason']}"
    )
    # the use file alone: the definition is outside the run, the name says retry
    (alone,) = _sites(str(package / "client.py"))["client.py"]
    assert alone["reason"].startswith(
        "a use of the project's own retry decorator `@with_retries` (from shop.retrying), "
        "defined in a file outside this run"
    )


def test_the_definition_decides_when_the_name_says_nothing(tmp_path: Path) -> None:
    package = _project(tmp_path)
    (package / "retrying.py").write_text(
        ENGINE.replace("with_retries", "robust") + "\n\ndef timed(f):\n    return f\n"
    )
    (package / "client.py").write_text(
        USES.replace("import with_retries", "import robust, timed").replace(
            "    @with_retries(5)", "    @timed\n    @robust(5)"
        )
    )
    (use,) = _sites(str(tmp_path))["client.py"]
    assert use["reason"].startswith(
        "a use of the project's own retry decorator `@robust`, defined at"
    )
    assert "retry-loop skipped: a retry engine" in use["reason"]
    # alone, neither name says retry: nothing to report
    assert _sites(str(package / "client.py")) == {}


def test_annotate_write_twice_changes_nothing_more(tmp_path: Path) -> None:
    package = _project(tmp_path)
    args = [str(tmp_path), "--write", "--annotate", "--jobs", "1"]
    CliRunner().invoke(codemod, args, catch_exceptions=False)
    first = (package / "client.py").read_text()
    assert first.count("# durable: project-retry not rewritten:") == 1
    assert "(policy read: 5)" in first
    CliRunner().invoke(codemod, args, catch_exceptions=False)
    assert (package / "client.py").read_text() == first


# -- behaviour: a listed use is left as it was (the annotated file runs the same) ----------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_an_annotated_use_site_behaves_the_same(
    scenario: int | str | None, sleeps: list[float]
) -> None:
    source = ENGINE + "\n\n@with_retries(3)\ndef fetch(dep, url):\n    return dep.call(url)\n"
    annotated, sites = transform_source(source, annotate=True)
    assert [s.selector for s in sites] == ["retry-loop", "project-retry"]
    assert "# durable: project-retry not rewritten:" in annotated

    def make() -> Flaky:
        if scenario == "not retried":
            return Flaky(1, error=LookupError)
        assert not isinstance(scenario, str)
        return Flaky(scenario)

    def call(namespace: dict[str, Any], dep: Flaky) -> Any:
        return namespace["fetch"](dep, "/a")

    assert _run(annotated, call, make(), sleeps) == _run(source, call, make(), sleeps)


def test_a_decorator_defined_here_is_answered_whatever_its_name() -> None:
    source = (
        ENGINE.replace("with_retries", "robust") + "\n\n@robust(3)\ndef fetch(dep):\n    return 1\n"
    )
    assert "retr" not in source.lower()
    _code, sites = transform_source(source)
    assert [(s.selector, s.line) for s in sites] == [("retry-loop", 9), ("project-retry", 22)]
    assert sites[1].reason.startswith("a use of the project's own retry decorator `@robust`")


def test_worker_processes_get_the_definitions_too(tmp_path: Path) -> None:
    package = _project(tmp_path)
    for n in range(8):  # enough files for a worker pool
        (package / f"client{n}.py").write_text(USES)
    one = _sites(str(tmp_path))
    two = json.loads(
        CliRunner()
        .invoke(codemod, [str(tmp_path), "--json", "--jobs", "2"], catch_exceptions=False)
        .stdout
    )
    assert {Path(r["path"]).name: r["sites"] for r in two["results"]} == one
    assert sum(s["selector"] == "project-retry" for v in one.values() for s in v) == 9
