"""Codemod ``framework-retry``: retry decorators of frameworks are reported, never rewritten.

Each of these retries a function with a policy that lives in a framework (or a
broker), not in a ``RetryPolicy`` this codemod could write; the site is listed
(``skipped``) with the framework's construct named as the reason and the
arguments read as the policy (and, with ``--annotate``, a comment above it):

* oslo.db ``wrap_db_retry(...)``: retries a database transaction on deadlock
  or disconnect, deciding per exception inside oslo.db;
* oslo.service ``loopingcall.RetryDecorator(...)`` is the one construct
  rewritten (see :meth:`FrameworkRetryCodemod.retry_decorator`): its retries
  (``max_retry_count + 1`` attempts, delays ``inc_sleep_time * n`` capped at
  ``max_sleep_time``, on ``exceptions``) are a ``RetryPolicy``; it is kept when
  an argument is known only at run time or nothing is retried;
* ``AWSRetry.jittered_backoff`` / ``exponential_backoff`` / ``backoff``
  (decorator, or a client's ``retry_decorator=``): retries on AWS error codes
  read from the response, not on exception classes;
* oslo ``excutils.forever_retry_uncaught_exceptions``: a supervisor that never
  ends;
* celery tasks with ``autoretry_for=`` / ``retry_backoff=`` / ``max_retries=``
  / ``default_retry_delay=`` or a body calling ``self.retry(...)``, and
  dramatiq actors: the broker re-queues the message; moving them is a
  task-to-workflow migration.
"""

from __future__ import annotations

import math
import re

import libcst as cst
import libcst.matchers as m
from libcst.metadata import GlobalScope, PositionProvider, ScopeProvider

from . import _evaluate as ev
from ._base import DurableCodemod, module_constants, sites_of
from ._effects import unserializable_return
from ._policy import AmbiguousTypes, Policy, check_types

_OSLO_ARGS = ("max_retry_count", "inc_sleep_time", "max_sleep_time", "exceptions")
_CELERY_OPTIONS = ("autoretry_for", "retry_backoff", "max_retries", "default_retry_delay")
#: keywords of celery's ``Task.retry`` that tell it from another ``.retry(...)``
_TASK_RETRY_OPTIONS = ("countdown", "eta", "exc", "max_retries", "throw")
_AWS_METHODS = ("jittered_backoff", "exponential_backoff", "backoff")
_SIGNS = re.compile(
    r"wrap_db_retry|RetryDecorator|AWSRetry|forever_retry_uncaught_exceptions"
    r"|autoretry_for|retry_backoff|self\.retry\(|dramatiq|max_retries|default_retry_delay"
    r"|\.retry\("
)


class _Refused(Exception):
    """oslo.service's RetryDecorator stays: the message says why."""


def _dotted(node: cst.BaseExpression) -> str:
    """``a.b.c`` for a name or attribute chain, else ""."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr.value}" if head else ""
    return ""


def _is_wrap_db_retry(func: cst.BaseExpression) -> bool:
    return _dotted(func).rsplit(".", 1)[-1] == "wrap_db_retry"


def _is_task_retry(func: cst.BaseExpression) -> bool:
    """``task.retry`` on a task the code holds (not ``self.retry``, a task's own)."""
    return (
        isinstance(func, cst.Attribute)
        and func.attr.value == "retry"
        and _dotted(func.value) not in ("", "self")
    )


def _calls_self_retry(function: cst.FunctionDef) -> bool:
    pattern = m.Call(func=m.Attribute(value=m.Name("self"), attr=m.Name("retry")))
    return bool(m.findall(function.body, pattern))


class FrameworkRetryCodemod(DurableCodemod):
    """Report framework and broker retry decorators with the policy read."""

    SELECTOR = "framework-retry"
    DESCRIPTION = "Report framework and broker retry decorators (never rewritten)."

    def __init__(self, context: cst.codemod.CodemodContext, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.source_module = cst.Module(body=[])
        self.functions: list[cst.FunctionDef] = []
        self.classes = 0
        self.constants: dict[str, ev.Number] = {}
        self.changed = False

    @classmethod
    def might_apply(cls, source: str) -> bool:
        return _SIGNS.search(source) is not None

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.source_module = node
        scope = self.get_metadata(ScopeProvider, node, None)
        if isinstance(scope, GlobalScope):
            self.constants = module_constants(node, scope)
        return True

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if self.changed:
            self.drop_if_unused("oslo_service", "loopingcall")
            self.drop_if_unused("oslo_service.loopingcall")
        return updated_node

    def code(self, node: cst.CSTNode) -> str:
        return " ".join(self.source_module.code_for_node(node).split())

    def policy_of(self, call: cst.Call, names: tuple[str, ...] = ()) -> str:
        """The arguments as written (positional ones named after ``names``)."""
        parts = []
        for index, arg in enumerate(call.args):
            value = self.code(arg.value)
            if arg.keyword is not None:
                parts.append(f"{arg.keyword.value}={value}")
            elif arg.star:
                parts.append(f"{arg.star}{value}")
            elif index < len(names):
                parts.append(f"{names[index]}={value}")
            else:
                parts.append(value)
        return ", ".join(parts) or "the framework's defaults"

    def reason_for(
        self, decorator: cst.Decorator, function: cst.FunctionDef
    ) -> tuple[str, str] | None:
        """(reason, policy read) when ``decorator`` is a framework retry, else None."""
        target = decorator.decorator
        call = target if isinstance(target, cst.Call) else None
        name = _dotted(call.func if call else target)
        last = name.rsplit(".", 1)[-1]
        if last == "wrap_db_retry":
            policy = self.policy_of(call) if call else "oslo.db's defaults"
            return (
                "oslo.db wrap_db_retry retries the database transaction on deadlock or "
                "disconnect, deciding per exception inside oslo.db",
                policy,
            )
        if last == "RetryDecorator" and call is not None:
            return self._retry_decorator_reason(call, function), self.policy_of(call, _OSLO_ARGS)
        if last in _AWS_METHODS and "AWSRetry" in name:
            policy = self.policy_of(call) if call else "AWSRetry's defaults"
            return (
                f"AWSRetry.{last} retries on AWS error codes read from the response "
                "(throttling), not on exception classes",
                policy,
            )
        if last == "forever_retry_uncaught_exceptions":
            return (
                "excutils.forever_retry_uncaught_exceptions is a supervisor that never ends "
                "(it retries every exception forever)",
                "no limit, 1 s between attempts",
            )
        if last in ("task", "shared_task") and call is not None:
            options = [
                a for a in call.args if a.keyword is not None and a.keyword.value in _CELERY_OPTIONS
            ]
            if options or _calls_self_retry(function):
                policy = ", ".join(
                    f"{a.keyword.value}={self.code(a.value)}" for a in options if a.keyword
                )
                if _calls_self_retry(function):
                    policy = ", ".join(p for p in (policy, "self.retry(...) in the body") if p)
                return (
                    "broker-managed retries (celery): the broker re-queues the task; "
                    "a task-to-workflow migration, not a step",
                    policy,
                )
        if name in ("dramatiq.actor", "actor") and "dramatiq" in self.source_module.code:
            policy = self.policy_of(call) if call else "dramatiq's defaults (max_retries=20)"
            return (
                "broker-managed retries (dramatiq actor): the broker re-queues the message; "
                "a task-to-workflow migration, not a step",
                policy,
            )
        return None

    def built_retry(self, node: cst.FunctionDef | cst.ClassDef) -> tuple[str, str] | None:
        """(reason, policy read) when the body of a top-level ``node`` builds a framework
        retry for the functions its callers pass in: a decorator made of oslo.db's
        ``wrap_db_retry(...)`` (returned, or applied per call), or a celery task retried
        through the broker from a helper (``task.retry(countdown=...)``)."""
        name = node.name.value
        for call in m.findall(node.body, m.Call(func=m.MatchIfTrue(_is_wrap_db_retry))):
            assert isinstance(call, cst.Call)
            return (
                f"oslo.db wrap_db_retry (built by `{name}` for the functions it is given) "
                "retries the database transaction on deadlock or disconnect, deciding per "
                "exception inside oslo.db",
                self.policy_of(call),
            )
        if "celery" not in self.source_module.code:
            return None
        for call in m.findall(node.body, m.Call(func=m.MatchIfTrue(_is_task_retry))):
            assert isinstance(call, cst.Call)
            if not any(a.keyword and a.keyword.value in _TASK_RETRY_OPTIONS for a in call.args):
                continue
            return (
                f"broker-managed retries (celery): `{name}` calls `{self.code(call.func)}(...)`, "
                "the broker re-queues the task; a task-to-workflow migration, not a step",
                self.policy_of(call),
            )
        return None

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.functions.append(node)
        return True

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.classes += 1
        return True

    def leave_ClassDef(
        self, original_node: cst.ClassDef, updated_node: cst.ClassDef
    ) -> cst.ClassDef:
        self.classes -= 1
        if self.classes or self.functions:
            return updated_node
        found = self.built_retry(original_node)
        if found is None or self.reported_within(original_node):
            return updated_node
        reason, policy = found
        self.record(original_node, "skipped", reason, policy=policy)
        return self.annotated(updated_node, reason, policy)

    def reported_within(self, node: cst.CSTNode) -> bool:
        """A site of this codemod already lies inside ``node`` (a celery task in a class)."""
        position = self.get_metadata(PositionProvider, node)
        start, end = position.start.line, position.end.line
        return any(start <= site.line <= end for site in sites_of(self.context))

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        self.functions.pop()
        for index, decorator in enumerate(original_node.decorators):
            rewritten = self.retry_decorator(decorator, original_node)
            if rewritten is not None:
                policy, notes = rewritten
                returned = unserializable_return(original_node.body, self.code)
                self.record(
                    decorator,
                    "rewritten",
                    "oslo.service RetryDecorator replaced by a step",
                    [*notes, *([returned] if returned else [])],
                    policy.summary(),
                    original_node,
                )
                self.changed = True
                old = updated_node.decorators[index]
                new = self.decorator_for(policy).with_changes(leading_lines=old.leading_lines)
                decorators = list(updated_node.decorators)
                decorators[index] = new
                return updated_node.with_changes(decorators=decorators)
            found = self.reason_for(decorator, original_node)
            if found is not None:
                reason, read = found
                self.record(original_node, "skipped", reason, policy=read)
                return self.annotated(updated_node, reason, read)
        if not self.functions and not self.classes:
            found = self.built_retry(original_node)
            if found is not None and not self.reported_within(original_node):
                reason, read = found
                self.record(original_node, "skipped", reason, policy=read)
                return self.annotated(updated_node, reason, read)
        return updated_node

    # -- oslo.service RetryDecorator: the one construct rewritten ------------------
    def _oslo_call(self, decorator: cst.Decorator) -> cst.Call | None:
        target = decorator.decorator
        if not isinstance(target, cst.Call) or "oslo_service" not in self.source_module.code:
            return None
        if _dotted(target.func).rsplit(".", 1)[-1] != "RetryDecorator":
            return None
        return target

    def _retry_decorator_reason(self, call: cst.Call, function: cst.FunctionDef) -> str:
        try:
            self._oslo_policy(call, function)
        except _Refused as refused:
            return f"oslo.service loopingcall.RetryDecorator: {refused}"
        return "oslo.service loopingcall.RetryDecorator"  # not reached: it was rewritten

    def retry_decorator(
        self, decorator: cst.Decorator, function: cst.FunctionDef
    ) -> tuple[Policy, list[str]] | None:
        """The policy of ``@loopingcall.RetryDecorator(...)`` when it can be rewritten."""
        call = self._oslo_call(decorator)
        if call is None:
            return None
        try:
            return self._oslo_policy(call, function)
        except _Refused:
            return None  # reported by reason_for

    def _oslo_number(self, expr: cst.BaseExpression, name: str) -> float | None:
        if isinstance(expr, cst.Name) and expr.value == "None":
            return None
        try:
            value = ev.evaluate(ev.parse(self.source_module.code_for_node(expr)), self.constants)
        except (ev.Unknown, SyntaxError):
            raise _Refused(f"{name}={self.code(expr)} is known only at run time") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Refused(f"{name}={self.code(expr)} is not a number")
        return float(value)

    def _oslo_policy(self, call: cst.Call, function: cst.FunctionDef) -> tuple[Policy, list[str]]:
        """oslo.service (``RetryDecorator.__call__``): after a failure in ``exceptions`` the
        retry count ``r`` goes up by one and the loop sleeps ``min(r * inc_sleep_time,
        max_sleep_time)``, until ``r`` reaches ``max_retry_count`` (-1: never); then the
        exception is raised. So ``max_retry_count + 1`` attempts, ``increment`` delays."""
        if function.asynchronous is not None:
            raise _Refused("on an async function (oslo.service runs it in a looping call)")
        args: dict[str, cst.BaseExpression] = {}
        for index, arg in enumerate(call.args):
            if arg.star:
                raise _Refused("it gets *args or **kwargs")
            if arg.keyword is None:
                if index >= len(_OSLO_ARGS):
                    raise _Refused("it has an unexpected argument")
                args[_OSLO_ARGS[index]] = arg.value
            elif arg.keyword.value in _OSLO_ARGS:
                args[arg.keyword.value] = arg.value
            else:
                raise _Refused(f"option `{arg.keyword.value}=` is not RetryDecorator's")
        if "exceptions" not in args:
            raise _Refused("no `exceptions=`: it retries nothing (every exception is raised)")
        exceptions = args["exceptions"]
        types = (
            [self.code(e.value) for e in exceptions.elements]
            if isinstance(exceptions, cst.Tuple | cst.List)
            else [self.code(exceptions)]
        )
        if not types:
            raise _Refused("exceptions=() retries nothing")
        try:
            check_types(types)
        except AmbiguousTypes as ambiguous:
            raise _Refused(str(ambiguous)) from None
        read = {
            name: self._oslo_number(args[name], name) if name in args else default
            for name, default in (
                ("max_retry_count", -1.0),
                ("inc_sleep_time", 10.0),
                ("max_sleep_time", 60.0),
            )
        }
        count, inc, cap = read["max_retry_count"], read["inc_sleep_time"], read["max_sleep_time"]
        if count is None or inc is None or not float(count).is_integer():
            raise _Refused("max_retry_count and inc_sleep_time must be numbers")
        if inc < 0 or (cap is not None and cap < 0):
            raise _Refused("a negative sleep time")
        policy = Policy(retry_on=types)
        if count == -1:
            policy.max_attempts = None
        else:
            policy.max_attempts = max(int(count), 0) + 1
        if inc == 0 or cap == 0:
            policy.initial_delay, policy.backoff = 0.0, 1.0
        elif cap is not None and cap <= inc:
            policy.initial_delay, policy.backoff = cap, 1.0
        else:
            policy.initial_delay, policy.backoff, policy.increment = inc, 1.0, inc
            policy.max_delay = math.inf if cap is None else cap
        name = function.name.value
        attempts = (
            "unlimited attempts"
            if policy.max_attempts is None
            else f"{policy.max_attempts} attempt{'s' if policy.max_attempts != 1 else ''}"
        )
        notes = [
            f"oslo.service counted the retries on the decorator object, shared by every call"
            f" of `{name}` through it and never reset: once earlier calls had retried, later"
            f" calls got fewer retries and longer delays; the step gives each call"
            f" {attempts}, its delays starting again from the first",
            f"oslo.service ran `{name}` in a new (green) thread and waited for it; the step"
            " runs it in the caller's thread (thread-local state is the caller's)",
            "oslo.service's log lines are dropped (the step logs its retries)",
        ]
        if policy.max_attempts is None:
            notes.append("retries forever, as before")
        return policy, notes

    def visit_Arg(self, node: cst.Arg) -> bool:
        """A client configured with ``retry_decorator=AWSRetry.<backoff>(...)``."""
        if node.keyword is None or node.keyword.value != "retry_decorator":
            return True
        value = node.value
        call = value if isinstance(value, cst.Call) else None
        name = _dotted(call.func if call else value)
        if "AWSRetry" in name and name.rsplit(".", 1)[-1] in _AWS_METHODS:
            policy = self.policy_of(call) if call else "AWSRetry's defaults"
            self.record(
                node,
                "skipped",
                f"a client configured with retry_decorator={name}(...): AWSRetry retries "
                "on AWS error codes read from the response, inside the client",
                policy=policy,
            )
        return True


__all__ = ["FrameworkRetryCodemod"]
