"""Retry decorators of frameworks and brokers: listed with a reason and the policy read,
never rewritten (codemods.framework_retry)."""

from __future__ import annotations

from codemods.framework_retry import FrameworkRetryCodemod
from codemods.testing import DurableCodemodTest


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
