"""Codemod ``retrying``: ``@retry(...)`` of the ``retrying`` package becomes a step.

``retrying`` counts its waits in milliseconds; the policy in seconds. Mapped:
``stop_max_attempt_number``, ``stop_max_delay`` (``max_elapsed``); one wait law:
``wait_fixed``, ``wait_random_min``/``wait_random_max`` (``random_delay``),
``wait_incrementing_start``/``_increment``/``_max`` (``increment``),
``wait_exponential_multiplier``/``_max`` (its first wait is twice the
multiplier); ``wait_jitter_max`` (``random_delay``); ``retry_on_exception``
(exception classes, or a predicate: ``retry_if``); ``retry_on_result``
(``retry_on_result``). Bare ``@retry`` retries every ``Exception`` forever
without waiting. Its log lines are dropped (noted). ``stop_func``,
``wait_func``, ``wrap_exception=True``, ``before_attempts``/``after_attempts``
and two wait laws at once keep the decorator (``kept``).
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from ._decorators import DecoratorCodemod, Kept, Rewrite
from ._policy import Policy, looks_like_class

LIB = "retrying"
_OPTIONS = (
    "stop_max_attempt_number",
    "stop_max_delay",
    "wait_fixed",
    "wait_random_min",
    "wait_random_max",
    "wait_incrementing_start",
    "wait_incrementing_increment",
    "wait_incrementing_max",
    "wait_exponential_multiplier",
    "wait_exponential_max",
    "wait_jitter_max",
    "retry_on_exception",
    "retry_on_result",
    "wrap_exception",
    "logger",
)


class RetryingCodemod(DecoratorCodemod):
    """Rewrite ``retrying.retry`` decorators into durable steps."""

    SELECTOR = "retrying"
    LIBRARY = LIB
    DESCRIPTION = "Rewrite @retry of the retrying package into durable steps."

    def __init__(self, context: object, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.catches_retry_error = False

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.catches_retry_error = "RetryError" in node.code
        return True

    def match(self, decorator: cst.Decorator) -> Callable[[], Rewrite] | None:
        target = decorator.decorator
        if self.call_name(target, LIB) != "retry":
            return None
        if isinstance(target, cst.Call):
            return lambda: self.policy(target)
        return lambda: (
            Policy(max_attempts=None),
            ["bare @retry: retries every Exception forever without waiting, as before"],
        )

    def seconds(self, args: dict[str, cst.BaseExpression], name: str, default: float) -> float:
        """An option in milliseconds, in seconds."""
        return (self.number(args[name], name) if name in args else default) / 1000.0

    def policy(self, call: cst.Call) -> Rewrite:
        """Map the arguments of ``retrying.retry(...)`` to a policy."""
        args: dict[str, cst.BaseExpression] = {}
        for arg in call.args:
            if arg.keyword is None or arg.star:
                raise Kept("retry(...) gets positional arguments")
            if arg.keyword.value not in _OPTIONS:
                raise Kept(f"option `{arg.keyword.value}=` has no equivalent")
            args[arg.keyword.value] = arg.value
        notes = ["retrying's log lines between attempts are dropped"]
        policy = Policy(max_attempts=None)
        if "stop_max_attempt_number" in args:
            value = args["stop_max_attempt_number"]
            policy.max_attempts = int(self.number(value, "stop_max_attempt_number"))
            if self.constant_name(value):
                policy.sources["max_attempts"] = self.code(value)
        if "stop_max_delay" in args:
            policy.max_elapsed = self.seconds(args, "stop_max_delay", 100)
        laws = {
            "fixed": [n for n in args if n == "wait_fixed"],
            "random": [n for n in args if n.startswith("wait_random")],
            "incrementing": [n for n in args if n.startswith("wait_incrementing")],
            "exponential": [n for n in args if n.startswith("wait_exponential")],
        }
        used = [law for law, names in laws.items() if names]
        if len(used) > 1:
            raise Kept(f"waits {' and '.join(used)} at once (retrying takes the longest)")
        law = used[0] if used else None
        if law == "fixed":
            policy.initial_delay = self.seconds(args, "wait_fixed", 1000)
        elif law == "random":
            low = self.seconds(args, "wait_random_min", 0)
            high = self.seconds(args, "wait_random_max", 1000)
            policy.initial_delay, policy.random_delay = low, max(high - low, 0.0)
            notes.append("random waits drawn from a continuous range (retrying: whole ms)")
        elif law == "incrementing":
            policy.initial_delay = self.seconds(args, "wait_incrementing_start", 0)
            policy.increment = self.seconds(args, "wait_incrementing_increment", 100)
            if "wait_incrementing_max" in args:
                policy.max_delay = self.seconds(args, "wait_incrementing_max", 0)
        elif law == "exponential":
            policy.initial_delay = 2 * self.seconds(args, "wait_exponential_multiplier", 1)
            policy.backoff = 2.0
            if "wait_exponential_max" in args:
                policy.max_delay = self.seconds(args, "wait_exponential_max", 0)
        if "wait_jitter_max" in args:
            policy.random_delay += self.seconds(args, "wait_jitter_max", 0)
        if "retry_on_exception" in args:
            value = args["retry_on_exception"]
            types = self.exception_types(value)
            if isinstance(value, cst.Tuple) or looks_like_class(self.code(value)):
                policy.retry_on = types
            else:
                policy.retry_if = self.code(value)
        if "retry_on_result" in args:
            policy.retry_on_result = self.code(args["retry_on_result"])
            if policy.max_attempts is not None or policy.max_elapsed is not None:
                if self.catches_retry_error:
                    raise Kept(
                        "the module handles retrying.RetryError, raised when a result"
                        " is still rejected after the last attempt"
                    )
                notes.append(
                    "a result still rejected after the last attempt raises"
                    " toolkit.RetriesExhausted instead of retrying.RetryError"
                )
        wrap = args.get("wrap_exception")
        if wrap is not None and not (isinstance(wrap, cst.Name) and wrap.value == "False"):
            raise Kept(f"wrap_exception={self.code(wrap)} has no equivalent")
        if policy.max_attempts is None and policy.max_elapsed is None:
            notes.append("retries forever, as before")
        return policy, notes


__all__ = ["RetryingCodemod"]
