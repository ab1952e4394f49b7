"""Codemod ``backoff``: ``@backoff.on_exception(...)`` becomes a step.

Mapped: the wait generators ``backoff.expo`` (``base``, ``factor``,
``max_value``), ``backoff.constant`` (``interval``) and ``backoff.fibo``
(approximated by ``backoff=1.618``); ``max_tries``; ``max_time``;
``jitter`` (``full_jitter``, the default, and ``random_jitter`` become
``jitter=True``; ``jitter=None`` none); ``giveup=lambda e: isinstance(e, X)``;
``raise_on_giveup=True``. Logging options are dropped with a note. Hooks
(``on_backoff``, ``on_giveup``, ``on_success``), other ``giveup`` predicates and
``raise_on_giveup=False`` keep the decorator (reported as ``kept``).
``@backoff.on_predicate`` retries on a return value and is reported, never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from ._decorators import DecoratorCodemod, Kept, NotRewritten, Rewrite
from ._policy import Policy

LIB = "backoff"
_GOLDEN = 1.618
_LOGGING = ("logger", "backoff_log_level", "giveup_log_level")
_HOOKS = ("on_success", "on_backoff", "on_giveup")
_WAIT_KWARGS = {
    "expo": ("base", "factor", "max_value"),
    "constant": ("interval",),
    "fibo": ("max_value",),
}


class BackoffCodemod(DecoratorCodemod):
    """Rewrite ``@backoff.on_exception`` decorators into durable steps."""

    SELECTOR = "backoff"
    LIBRARY = LIB
    DESCRIPTION = "Rewrite backoff.on_exception decorators into durable steps."

    def match(self, decorator: cst.Decorator) -> Callable[[], Rewrite] | None:
        target = decorator.decorator
        name = self.call_name(target, LIB)
        if name == "on_predicate":
            return self._on_predicate
        if name != "on_exception" or not isinstance(target, cst.Call):
            return None
        return lambda: self.policy(target)

    @staticmethod
    def _on_predicate() -> Rewrite:
        raise NotRewritten("on_predicate retries on a return value, not an exception")

    def policy(self, call: cst.Call) -> Rewrite:
        """Map the arguments of ``backoff.on_exception(...)`` to a policy."""
        positional = [a for a in call.args if a.keyword is None]
        if any(a.star for a in call.args) or len(positional) != 2:
            raise Kept("on_exception needs its wait generator and exceptions as arguments")
        wait_gen, exceptions = positional[0].value, positional[1].value
        kwargs = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        gen = self.call_name(wait_gen, LIB)
        if gen not in _WAIT_KWARGS or isinstance(wait_gen, cst.Call):
            raise Kept(f"wait generator {self.code(wait_gen)} has no equivalent")
        notes: list[str] = []
        policy = Policy(max_attempts=None, retry_on=self.exception_types(exceptions))
        for name, value in kwargs.items():
            if name in _HOOKS:
                raise Kept(f"option `{name}=` has no equivalent")
            if name in _LOGGING:
                notes.append(f"logging option `{name}=` dropped")
            elif name == "max_tries":
                policy.max_attempts = int(self.number(value, name))
                self._keep_name(policy, "max_attempts", value)
            elif name == "max_time":
                policy.max_elapsed = self.number(value, name)
                self._keep_name(policy, "max_elapsed", value)
            elif name == "jitter":
                policy.jitter = self._jitter(value)
            elif name == "giveup":
                policy.give_up_on = self._giveup(value)
            elif name == "raise_on_giveup":
                if not (isinstance(value, cst.Name) and value.value == "True"):
                    raise Kept(f"raise_on_giveup={self.code(value)} has no equivalent")
            elif name not in _WAIT_KWARGS[gen]:
                raise Kept(f"option `{name}=` has no equivalent")
        if "jitter" not in kwargs:
            policy.jitter = True
        if policy.jitter:
            notes.append("backoff's jitter approximated by jitter=True (delays in [d/2, d])")

        def wait_arg(name: str, default: float | None) -> float | None:
            return self.number(kwargs[name], name) if name in kwargs else default

        if gen == "expo":
            policy.initial_delay = wait_arg("factor", 1.0) or 0.0
            policy.backoff = wait_arg("base", 2.0) or 2.0
            policy.max_delay = wait_arg("max_value", None)
        elif gen == "constant":
            policy.initial_delay = wait_arg("interval", 1.0) or 0.0
            policy.backoff = 1.0
        else:
            policy.initial_delay, policy.backoff = 1.0, _GOLDEN
            policy.max_delay = wait_arg("max_value", None)
            notes.append("fibonacci delays approximated by backoff=1.618")
        if policy.max_attempts is None and policy.max_elapsed is None:
            notes.append("retries forever, as before")
        return policy, notes

    def _keep_name(self, policy: Policy, field: str, value: cst.BaseExpression) -> None:
        name = self.constant_name(value)
        if name is not None:
            policy.sources[field] = name

    def _jitter(self, value: cst.BaseExpression) -> bool:
        if isinstance(value, cst.Name) and value.value == "None":
            return False
        if self.call_name(value, LIB) in ("full_jitter", "random_jitter") and not isinstance(
            value, cst.Call
        ):
            return True
        raise Kept(f"jitter={self.code(value)} has no equivalent")

    def _giveup(self, value: cst.BaseExpression) -> list[str]:
        """``lambda e: isinstance(e, X)`` gives up on ``X``; other predicates have no equivalent."""
        if (
            isinstance(value, cst.Lambda)
            and len(value.params.params) == 1
            and isinstance(value.body, cst.Call)
            and isinstance(value.body.func, cst.Name)
            and value.body.func.value == "isinstance"
            and len(value.body.args) == 2
            and isinstance(value.body.args[0].value, cst.Name)
            and value.body.args[0].value.value == value.params.params[0].name.value
        ):
            return self.exception_types(value.body.args[1].value)
        raise Kept(f"giveup={self.code(value)} has no equivalent")


__all__ = ["BackoffCodemod"]
