"""Codemod ``stamina``: ``@stamina.retry(on=..., ...)`` becomes a step.

stamina waits ``min(wait_max, wait_initial * wait_exp_base ** (n - 1) +
uniform(0, wait_jitter))``. Mapped: ``on`` (exception classes), ``attempts``
(``None``: no limit), ``timeout`` (``max_elapsed``), ``wait_initial``,
``wait_exp_base``, ``wait_max`` and ``wait_jitter`` (``random_delay``, added
after the cap: noted), with stamina's defaults (10 attempts, 45 s, 0.1 s
doubling to 5 s, 1 s of jitter) written out. stamina's instrumentation (logs,
metrics) and its global switches (``set_active``, testing mode) no longer
apply (noted). ``on=`` a predicate or backoff hook and ``timedelta`` values keep
the decorator (``kept``).

``for attempt in stamina.retry_context(...): with attempt: ...`` (``async for`` in an
async function) that is the whole body of its function makes the function a step with
the same policy; a block elsewhere in a function is reported, not rewritten.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from ._attempt_blocks import BlockRead, attempt_block, block_to_step
from ._decorators import DecoratorCodemod, Kept, Rewrite
from ._policy import Policy, looks_like_class

LIB = "stamina"
_OPTIONS = ("on", "attempts", "timeout", "wait_initial", "wait_max", "wait_jitter", "wait_exp_base")


class StaminaCodemod(DecoratorCodemod):
    """Rewrite ``stamina.retry`` decorators into durable steps."""

    SELECTOR = "stamina"
    LIBRARY = LIB
    DESCRIPTION = "Rewrite @stamina.retry decorators into durable steps."

    def match(self, decorator: cst.Decorator) -> Callable[[], Rewrite] | None:
        target = decorator.decorator
        if self.call_name(target, LIB) != "retry" or not isinstance(target, cst.Call):
            return None
        return lambda: self.policy(target)

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        updated_node = super().leave_FunctionDef(original_node, updated_node)
        top = list(original_node.body.body)
        for index, stmt in enumerate(top):
            if not self._is_context_loop(stmt):
                continue
            assert isinstance(stmt, cst.For) and isinstance(stmt.iter, cst.Call)
            call = stmt.iter

            def read(stmt: cst.For = stmt, call: cst.Call = call, index: int = index) -> BlockRead:
                rewrite = attempt_block(
                    original_node,
                    stmt,
                    index,
                    self.code,
                    "retry_context",
                    "`async for` over retry_context in a sync function, or `for` in an async one",
                )
                return (rewrite, *self.policy(call))

            made = block_to_step(self, stmt, updated_node, index, read, "retry_context")
            if made is not None:
                return made
        codemod = self

        class Nested(cst.CSTVisitor):
            def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
                return node is original_node

            def visit_For(self, node: cst.For) -> None:
                if codemod._is_context_loop(node) and not any(node is t for t in top):
                    codemod.record(
                        node,
                        "skipped",
                        "the retry_context block is inside a branch or block of the function",
                    )

        original_node.visit(Nested())
        return updated_node

    def _is_context_loop(self, stmt: cst.CSTNode) -> bool:
        return (
            isinstance(stmt, cst.For)
            and isinstance(stmt.iter, cst.Call)
            and self.call_name(stmt.iter, LIB) == "retry_context"
        )

    def policy(self, call: cst.Call) -> Rewrite:
        """Map the arguments of ``stamina.retry(...)`` or ``stamina.retry_context(...)``."""
        args: dict[str, cst.BaseExpression] = {}
        for arg in call.args:
            if arg.keyword is None or arg.star:
                raise Kept("stamina.retry(...) gets positional arguments")
            if arg.keyword.value not in _OPTIONS:
                raise Kept(f"option `{arg.keyword.value}=` has no equivalent")
            args[arg.keyword.value] = arg.value
        if "on" not in args:
            raise Kept("stamina.retry(...) without on=")
        on = args["on"]
        if not (isinstance(on, cst.Tuple) or looks_like_class(self.code(on))):
            raise Kept(f"on={self.code(on)} may be a predicate or a backoff hook")

        def seconds(name: str, default: float) -> float:
            return self.number(args[name], name) if name in args else default

        policy = Policy(retry_on=self.exception_types(on))
        attempts = args.get("attempts")
        if attempts is not None and isinstance(attempts, cst.Name) and attempts.value == "None":
            policy.max_attempts = None
        else:
            policy.max_attempts = int(seconds("attempts", 10))
        timeout = args.get("timeout")
        if not (isinstance(timeout, cst.Name) and timeout.value == "None"):
            policy.max_elapsed = seconds("timeout", 45.0)
        policy.initial_delay = seconds("wait_initial", 0.1)
        policy.backoff = seconds("wait_exp_base", 2.0)
        policy.max_delay = seconds("wait_max", 5.0)
        policy.random_delay = seconds("wait_jitter", 1.0)
        notes = [
            "stamina's logs, metrics and global switches (set_active, testing) no longer apply"
        ]
        if policy.random_delay:
            notes.append("the random part of a wait is added after the cap (stamina caps it too)")
        return policy, notes


__all__ = ["StaminaCodemod"]
