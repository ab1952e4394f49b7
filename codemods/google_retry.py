"""Codemod ``google-retry``: a ``@google.api_core.retry.Retry(...)`` decorator becomes a step.

``Retry(predicate=if_exception_type(...), initial=1.0, maximum=60.0,
multiplier=2.0, timeout=120.0)`` (``deadline=`` in older versions) retries
until the time budget is spent, with randomised exponential waits. Mapped:
``predicate`` (``if_exception_type(...)`` -> ``retry_on``, another predicate
such as ``if_transient_error`` -> ``retry_if``), ``initial``, ``maximum``,
``multiplier``, ``timeout``/``deadline`` (``max_elapsed``); the random waits
become ``jitter=True`` (noted). A ``Retry`` object passed to a client call
(``retry=Retry(...)``) is not a decorator and is left alone. ``on_error`` keeps
the decorator (``kept``).
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from ._decorators import DecoratorCodemod, Kept, Rewrite
from ._policy import Policy

LIB = "google.api_core"
_OPTIONS = ("predicate", "initial", "maximum", "multiplier", "timeout", "deadline")


class GoogleRetryCodemod(DecoratorCodemod):
    """Rewrite ``google.api_core.retry.Retry`` decorators into durable steps."""

    SELECTOR = "google-retry"
    LIBRARY = LIB
    DESCRIPTION = "Rewrite @google.api_core.retry.Retry decorators into durable steps."

    def __init__(self, context: object, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.catches_retry_error = False

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.catches_retry_error = "RetryError" in node.code
        return True

    def match(self, decorator: cst.Decorator) -> Callable[[], Rewrite] | None:
        target = decorator.decorator
        name = self.call_name(target, LIB)
        if name != "Retry" or not isinstance(target, cst.Call):
            return None
        return lambda: self.policy(target)

    def policy(self, call: cst.Call) -> Rewrite:
        """Map the arguments of ``Retry(...)`` to a policy."""
        args = self.bound_args(call, _OPTIONS, "Retry(...)")

        def number(name: str, default: float) -> float:
            return self.number(args[name], name) if name in args else default

        policy = Policy(max_attempts=None, jitter=True)
        predicate = args.get("predicate")
        if predicate is None:
            func = self.code(call.func)
            if "." not in func:
                raise Kept("Retry() with its default predicate, imported without its module")
            policy.retry_if = func.rsplit(".", 1)[0] + ".if_transient_error"
        elif isinstance(predicate, cst.Call) and self.call_name(predicate, LIB) in (
            "if_exception_type",
        ):
            if any(a.keyword is not None or a.star for a in predicate.args):
                raise Kept(f"predicate={self.code(predicate)} has no equivalent")
            policy.retry_on = [self.code(a.value) for a in predicate.args]
        else:
            policy.retry_if = self.code(predicate)
        policy.initial_delay = number("initial", 1.0)
        policy.max_delay = number("maximum", 60.0)
        policy.backoff = number("multiplier", 2.0)
        budget = "timeout" if "timeout" in args else "deadline"
        policy.max_elapsed = number(budget, 120.0)
        if self.catches_retry_error:
            raise Kept("the module handles RetryError, raised when the time budget runs out")
        notes = [
            "random waits approximated by jitter=True (delays in [d/2, d])",
            "raises the last exception instead of google.api_core.exceptions.RetryError",
        ]
        if predicate is None:
            notes.append("the default predicate if_transient_error is written out as retry_if")
        return policy, notes


__all__ = ["GoogleRetryCodemod"]
