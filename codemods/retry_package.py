"""Codemod ``retry``: ``@retry(...)`` of the ``retry`` package becomes a step.

``retry(exceptions=Exception, tries=-1, delay=0, max_delay=None, backoff=1,
jitter=0, logger=...)``: the wait starts at ``delay``, is multiplied by
``backoff`` and grows by ``jitter`` after each wait, capped by ``max_delay``.
Mapped: ``exceptions`` (``retry_on``), ``tries`` (``-1``: no limit),
``delay``, ``backoff``, ``max_delay``, a number ``jitter`` with ``backoff=1``
(``increment``); the warning it logs between attempts is dropped (noted).
A random ``jitter=(a, b)``, a number ``jitter`` with a ``backoff`` and
``tries=0`` keep the decorator (``kept``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import libcst as cst

from ._decorators import DecoratorCodemod, Kept, Rewrite
from ._policy import Policy

LIB = "retry"
_PARAMS = ("exceptions", "tries", "delay", "max_delay", "backoff", "jitter", "logger")


class RetryPackageCodemod(DecoratorCodemod):
    """Rewrite ``retry.retry`` decorators into durable steps."""

    SELECTOR = "retry"
    LIBRARY = LIB
    DESCRIPTION = "Rewrite @retry of the retry package into durable steps."

    def match(self, decorator: cst.Decorator) -> Callable[[], Rewrite] | None:
        target = decorator.decorator
        if self.call_name(target, LIB) != "retry" or not isinstance(target, cst.Call):
            return None
        return lambda: self.policy(target)

    def policy(self, call: cst.Call) -> Rewrite:
        """Map the arguments of ``retry.retry(...)`` to a policy."""
        args = self.bound_args(call, _PARAMS, "retry(...)")
        notes: list[str] = []
        policy = Policy(max_attempts=None)
        if "exceptions" in args:
            policy.retry_on = self.exception_types(args["exceptions"])
        if "tries" in args:
            tries = int(self.number(args["tries"], "tries"))
            if tries == 0:
                raise Kept("tries=0 never calls the function")
            policy.max_attempts = None if tries < 0 else tries
            if tries > 0 and self.constant_name(args["tries"]):
                policy.sources["max_attempts"] = self.code(args["tries"])
        policy.initial_delay = self.number(args["delay"], "delay") if "delay" in args else 0.0
        policy.backoff = self.number(args["backoff"], "backoff") if "backoff" in args else 1.0
        if "max_delay" in args and not _is_none(args["max_delay"]):
            policy.max_delay = self.number(args["max_delay"], "max_delay")
        elif policy.backoff > 1 and policy.initial_delay > 0:
            policy.max_delay = math.inf  # retry grows without a cap
        if "jitter" in args:
            jitter = args["jitter"]
            if isinstance(jitter, cst.Tuple):
                raise Kept(f"jitter={self.code(jitter)} adds a random amount to every later wait")
            step = self.number(jitter, "jitter")
            if step and policy.backoff != 1:
                raise Kept("jitter with backoff: a wait that grows both ways has no equivalent")
            policy.increment = step
        if "logger" not in args or not _is_none(args["logger"]):
            notes.append("the warning logged between attempts is dropped")
        if policy.max_attempts is None:
            notes.append("retries forever, as before")
        return policy, notes


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


__all__ = ["RetryPackageCodemod"]
