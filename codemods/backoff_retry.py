"""Codemod ``backoff``: ``@backoff.on_exception(...)`` becomes a step.

Mapped: the wait generators ``backoff.expo`` (``base``, ``factor``,
``max_value``), ``backoff.constant`` (``interval``) and ``backoff.fibo``
(approximated by ``backoff=1.618``); ``max_tries``; ``max_time``;
``jitter`` (``full_jitter``, the default, and ``random_jitter`` become
``jitter=True``; ``jitter=None`` none); ``giveup=lambda e: isinstance(e, X)``;
``raise_on_giveup=True``. Logging options are dropped with a note. Hooks
(``on_backoff``, ``on_giveup``: the reason names what it reads, ``on_success``),
other ``giveup`` predicates and ``raise_on_giveup=False`` keep the decorator (reported as ``kept``).
``@backoff.on_predicate`` retries on a return value and is reported, never rewritten.
"""

from __future__ import annotations

import re
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
            return lambda: self._on_predicate(target)
        if name != "on_exception" or not isinstance(target, cst.Call):
            return None
        return lambda: self.policy(target)

    def _on_predicate(self, call: cst.BaseExpression) -> Rewrite:
        """``on_predicate(wait_gen, predicate=operator.not_, ...)``: retry on a returned
        value; when tries run out backoff returns the last value (``on_give_up``)."""
        if not isinstance(call, cst.Call):
            raise NotRewritten("bare @on_predicate")
        positional = [a for a in call.args if a.keyword is None]
        predicate = "lambda value: not value"
        if len(positional) == 2:
            predicate = self.code(positional[1].value)
            call = call.with_changes(args=[a for a in call.args if a is not positional[1]])
        kwargs = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        if "predicate" in kwargs:
            predicate = self.code(kwargs["predicate"])
            call = call.with_changes(
                args=[a for a in call.args if a.keyword is None or a.keyword.value != "predicate"]
            )
        if predicate in ("operator.not_", "not_"):
            predicate = "lambda value: not value"
        with_types = call.with_changes(args=[call.args[0], cst.Arg(cst.Tuple([])), *call.args[1:]])
        policy, notes = self.policy(with_types)
        policy.retry_on = []
        policy.retry_on_result = predicate
        policy.on_give_up = "lambda state: state.result"
        notes.append(
            "exceptions are not retried, as before; when tries run out the last value"
            " is returned, as before (on_give_up)"
        )
        return policy, notes

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
            if name == "on_giveup":
                raise Kept(self._on_giveup_reason(value))
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
                try:
                    policy.give_up_on = self._giveup(value)
                except Kept:
                    policy.retry_if = self._not(value)
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
            if policy.jitter and _full_jitter(kwargs.get("jitter"), self):
                # full jitter of a constant wait: uniform(0, interval), exactly
                policy.random_delay, policy.initial_delay = policy.initial_delay, 0.0
                policy.jitter = False
                notes.remove("backoff's jitter approximated by jitter=True (delays in [d/2, d])")
        else:
            policy.initial_delay, policy.backoff = 1.0, _GOLDEN
            policy.max_delay = wait_arg("max_value", None)
            notes.append("fibonacci delays approximated by backoff=1.618")
        if policy.max_attempts is None and policy.max_elapsed is None:
            notes.append("retries forever, as before")
        return policy, notes

    def _on_giveup_reason(self, value: cst.BaseExpression) -> str:
        """Why ``on_giveup=handler`` stays: backoff calls it with a details dict (the
        call's ``args``/``kwargs``/``target``, ``tries``, ``elapsed``, ``exception``), also
        when ``giveup`` gives up at once, then re-raises; ``RetryPolicy.on_give_up`` gets a
        ``toolkit.RetryState`` only when the budget runs out, and its value is the result."""
        handler = self.code(value)
        source = handler
        if isinstance(value, cst.Name):
            for stmt in self.source_module.body:
                if isinstance(stmt, cst.FunctionDef) and stmt.name.value == value.value:
                    source = self.code(stmt)
        read = sorted(set(re.findall(r"\[\s*['\"](args|kwargs|target)['\"]\s*\]", source)))
        if read:
            keys = ", ".join(f"details['{key}']" for key in read)
            return (
                f"on_giveup={handler} reads {keys}, the call's arguments, which"
                " RetryPolicy.on_give_up (given a toolkit.RetryState) does not get"
            )
        return (
            f"on_giveup={handler} runs before backoff re-raises the exception;"
            " RetryPolicy.on_give_up's value would replace it: adapt it by hand"
        )

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

    def _not(self, value: cst.BaseExpression) -> str:
        """``retry_if`` for a ``giveup`` predicate: retry when it says not to give up."""
        if isinstance(value, cst.Lambda) and len(value.params.params) == 1:
            param = value.params.params[0].name.value
            return f"lambda {param}: not ({self.code(value.body)})"
        return f"lambda exc: not {self.code(value)}(exc)"

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


def _full_jitter(value: cst.BaseExpression | None, codemod: BackoffCodemod) -> bool:
    return value is None or codemod.call_name(value, LIB) == "full_jitter"


__all__ = ["BackoffCodemod"]
