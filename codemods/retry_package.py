"""Codemod ``retry``: ``@retry(...)`` of the ``retry`` package becomes a step.

``retry(exceptions=Exception, tries=-1, delay=0, max_delay=None, backoff=1,
jitter=0, logger=...)``: the wait starts at ``delay``, is multiplied by
``backoff`` and grows by ``jitter`` after each wait, capped by ``max_delay``.
Mapped: ``exceptions`` (``retry_on``), ``tries`` (``-1``: no limit),
``delay``, ``backoff``, ``max_delay``, a number ``jitter`` with ``backoff=1``
(``increment``); the warning it logs between attempts is dropped (noted).
A random ``jitter=(a, b)``, a number ``jitter`` with a ``backoff`` and
``tries=0`` keep the decorator (``kept``).

``retry_call(f, fargs, fkwargs, ...)``, the call form, becomes
``step(retry=RetryPolicy(...))(f)(*fargs, **fkwargs)`` with the same policy; an ``f``
that the enclosing function's callers pass in is a retry engine (skipped).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import libcst as cst

from ._decorators import DecoratorCodemod, Kept, Rewrite
from ._policy import Policy

LIB = "retry"
_PARAMS = ("exceptions", "tries", "delay", "max_delay", "backoff", "jitter", "logger")
_CALL_PARAMS = ("f", "fargs", "fkwargs", *_PARAMS)


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

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.functions.append(node)
        return True

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        try:
            return super().leave_FunctionDef(original_node, updated_node)
        finally:
            self.functions.pop()

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        """``retry_call(f, fargs, fkwargs, ...)``: the step made of ``f``, called."""
        if self.call_name(original_node, LIB) != "retry_call":
            return updated_node
        try:
            args = self.bound_args(original_node, _CALL_PARAMS, "retry_call(...)")
        except Kept as kept:
            self.record(original_node, "kept", str(kept))
            return updated_node
        function = args.get("f")
        if function is None:
            self.record(original_node, "kept", "retry_call(...) without the function")
            return updated_node
        engine = self.engine_reason("retry_call", function)
        if engine is not None:
            self.record(original_node, "skipped", engine)
            return updated_node
        policy_args = [
            a for a in original_node.args if a.keyword is not None and a.keyword.value in _PARAMS
        ]
        positional = [a for a in original_node.args if a.keyword is None][3:]
        policy_call = original_node.with_changes(args=[*positional, *policy_args])
        made = self.step_call(original_node, lambda: self.policy(policy_call), "retry_call(f, ...)")
        if made is None:
            return updated_node
        return cst.Call(
            func=cst.Call(func=made, args=[cst.Arg(function)]),
            args=_call_args(args.get("fargs"), args.get("fkwargs")),
        )

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


def _call_args(
    fargs: cst.BaseExpression | None, fkwargs: cst.BaseExpression | None
) -> list[cst.Arg]:
    """The arguments ``retry_call`` passed: a literal list or tuple spread, a literal
    dict with string keys as keywords, else ``*fargs`` and ``**fkwargs``."""
    out: list[cst.Arg] = []
    if fargs is not None and not _is_none(fargs):
        if isinstance(fargs, cst.Tuple | cst.List) and all(
            isinstance(e, cst.Element) for e in fargs.elements
        ):
            out.extend(cst.Arg(e.value) for e in fargs.elements)
        else:
            out.append(cst.Arg(fargs, star="*"))
    if fkwargs is not None and not _is_none(fkwargs):
        keys = [
            e.key.evaluated_value
            if isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString)
            else None
            for e in (fkwargs.elements if isinstance(fkwargs, cst.Dict) else [])
        ]
        if isinstance(fkwargs, cst.Dict) and all(
            isinstance(k, str) and k.isidentifier() for k in keys
        ):
            for key, element in zip(keys, fkwargs.elements, strict=True):
                assert isinstance(element, cst.DictElement) and isinstance(key, str)
                tight = cst.AssignEqual(
                    whitespace_before=cst.SimpleWhitespace(""),
                    whitespace_after=cst.SimpleWhitespace(""),
                )
                out.append(cst.Arg(element.value, keyword=cst.Name(key), equal=tight))
        else:
            out.append(cst.Arg(fkwargs, star="**"))
    return out


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


__all__ = ["RetryPackageCodemod"]
