"""Codemod ``tenacity``: ``@retry(...)``, ``for attempt in Retrying(...)``, ``retry(...)(fn)``,
``Retrying(...)(fn, ...)`` and a module-level ``name = retry(...)`` become steps.

Mapped: ``stop_after_attempt``, ``stop_after_delay`` (and ``|`` of both),
``stop_never``; ``wait_fixed``, ``wait_none``, ``wait_exponential``,
``wait_incrementing`` (``increment=``), ``wait_random`` and ``wait_fixed +
wait_random`` (``random_delay=``, exact), ``wait_exponential(min=...)``
(``min_delay=``, exact), ``wait_random_exponential`` (``full_jitter=True``, exact),
``wait_exponential_jitter`` (approximated by ``jitter=True``, noted), ``wait_chain`` of
``wait_fixed`` waits (``delays=``, exact);
``retry_if_exception_type`` (and ``|``), ``retry_if_not_exception_type``,
``retry_if_exception(pred)`` (``retry_if=``), ``retry_if_result(pred)``
(``retry_on_result=``); ``reraise``; tenacity's own ``before_log``,
``after_log`` and ``before_sleep_log`` (dropped, noted); a
``retry_error_callback`` lambda that ignores its argument (``on_give_up=``,
the fallback value). Anything else keeps the decorator, reported as ``kept``
with the option named.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import PositionProvider

from ._attempt_blocks import BlockRead, attempt_block, block_to_step
from ._decorators import Kept, Rewrite, name_uses
from ._policy import Policy
from ._tenacity_hooks import TenacityHooks

LIB = "tenacity"
#: the options of ``retry(...)`` that have an equivalent in ``RetryPolicy``
_MAPPED_OPTIONS = (
    "stop",
    "wait",
    "retry",
    "reraise",
    "before",
    "after",
    "before_sleep",
    "retry_error_callback",
)
#: tenacity's logging hooks: dropped (the step retries silently)
_LOG_HOOKS = ("before_log", "after_log", "before_sleep_log")


class _CatchExhausted(cst.CSTTransformer):
    """``except tenacity.RetryError`` -> ``except RetriesExhausted`` (also in a tuple)."""

    def leave_ExceptHandler(
        self, original_node: cst.ExceptHandler, updated_node: cst.ExceptHandler
    ) -> cst.ExceptHandler:
        kind = updated_node.type
        if kind is None:
            return updated_node
        if isinstance(kind, cst.Tuple):
            elements = [
                e.with_changes(value=cst.Name("RetriesExhausted"))
                if _is_retry_error(e.value)
                else e
                for e in kind.elements
            ]
            return updated_node.with_changes(type=kind.with_changes(elements=elements))
        if _is_retry_error(kind):
            return updated_node.with_changes(type=cst.Name("RetriesExhausted"))
        return updated_node


def _is_retry_error(node: cst.BaseExpression) -> bool:
    return (isinstance(node, cst.Name) and node.value == "RetryError") or (
        isinstance(node, cst.Attribute) and node.attr.value == "RetryError"
    )


@dataclass
class _Wait:
    initial: float = 0.0
    factor: float = 1.0
    cap: float | None = None
    jitter: bool = False
    notes: list[str] = field(default_factory=list)
    deterministic: bool = True
    increment: float = 0.0
    random: float = 0.0  # uniform(0, random) added (exact, no jitter)
    floor: float = 0.0  # min_delay
    full_jitter: bool = False
    schedule: tuple[float, ...] = ()  # wait_chain(wait_fixed(a), ...): delays=(a, ...)


class TenacityCodemod(TenacityHooks):
    """Rewrite tenacity's ``@retry`` and ``Retrying`` blocks into durable steps."""

    SELECTOR = "tenacity"
    LIBRARY = LIB
    DESCRIPTION = "Rewrite tenacity @retry decorators and Retrying blocks into durable steps."

    def __init__(self, context: Any, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.catches_retry_error = False
        self.retry_error_lines: list[str] = []
        self.runtime_notes: list[str] = []
        #: ``except tenacity.RetryError`` handlers: made ``except RetriesExhausted`` when
        #: every tenacity site of the module is rewritten (``adapt_handlers``); why not, else
        self.handlers: list[cst.ExceptHandler] = []
        self.handlers_blocked = ""
        self.adapt_handlers = True
        self.exhausted_candidate = False
        self.exhausted_sites = 0
        self.sites_left = 0

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        """One pass; a second, handlers left alone, when the first rewrote sites for the
        module's ``except RetryError`` handlers and then had to keep another site (the
        handlers could then not change, so neither can those sites)."""
        scratch = self.context.scratch
        saved = {key: copy.copy(value) for key, value in scratch.items()}
        self.adapt_handlers, self.handlers_blocked = True, ""
        result = super().transform_module_impl(tree)
        if not (self.exhausted_sites and self.sites_left):
            return result
        scratch.clear()
        scratch.update(saved)
        self.adapt_handlers = False
        self.changed = self._imports_scheduled = False
        self.hook_rewrites, self.hook_candidates = [], []
        self.handlers_blocked = (
            f"{self.sites_left} other tenacity site(s) of the module stay, so the handler"
            " cannot change"
        )
        return super().transform_module_impl(tree)

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.catches_retry_error = False
        self.retry_error_lines = [
            str(number)
            for number, line in enumerate(node.code.splitlines(), 1)
            if re.match(r"\s*except\b.*\bRetryError\b", line)
        ]
        self.exhausted_sites = self.sites_left = 0
        if "RetryError" in node.code:
            # read as a name, not only in a docstring or a comment
            self.handlers, blocked, self.catches_retry_error = self._retry_error_handlers(node)
            if self.adapt_handlers and blocked:
                self.handlers_blocked, self.adapt_handlers = blocked, False
        return True

    def _retry_error_handlers(
        self, module: cst.Module
    ) -> tuple[list[cst.ExceptHandler], str, bool]:
        """The handlers of ``tenacity.RetryError``, why they cannot catch
        ``RetriesExhausted`` instead ("" when they can): every mention of ``RetryError``
        must be such a handler's type, which neither reads the error nor re-raises it;
        and whether the code reads ``RetryError`` at all (outside its imports)."""
        codemod = self
        handlers: list[cst.ExceptHandler] = []
        mentions: list[cst.CSTNode] = []
        in_types: set[int] = set()
        problems: list[str] = []

        class Finder(cst.CSTVisitor):
            def visit_Import(self, node: cst.Import) -> bool:
                return False

            def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
                return False

            def visit_Name(self, node: cst.Name) -> None:
                if node.value == "RetryError":
                    mentions.append(node)

            def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
                if node.type is None:
                    return
                parts = (
                    [e.value for e in node.type.elements]
                    if isinstance(node.type, cst.Tuple)
                    else [node.type]
                )
                mine = [part for part in parts if "tenacity.RetryError" in codemod.qualified(part)]
                if not mine:
                    return
                handlers.append(node)
                for part in mine:
                    target = part.attr if isinstance(part, cst.Attribute) else part
                    in_types.add(id(target))
                line = codemod.line_of(node)
                name = node.name.name if node.name is not None else None
                if isinstance(name, cst.Name) and name_uses(node.body, name.value):
                    problems.append(
                        f"the handler at line {line} reads the error `{name.value}`"
                        " (RetriesExhausted has no `last_attempt`)"
                    )
                if m.findall(node.body, m.Raise(exc=None)):
                    problems.append(
                        f"the handler at line {line} re-raises it, so its callers would get"
                        " RetriesExhausted"
                    )

        module.visit(Finder())
        others = [n for n in mentions if id(n) not in in_types]
        if others:
            problems.append(f"RetryError is read at line {self.line_of(others[0])}")
        if "RetriesExhausted" in module.code:
            problems.append("the module already uses the name RetriesExhausted")
        return handlers, "; ".join(problems[:1]), bool(mentions)

    def match(self, decorator: cst.Decorator) -> Callable[[], Rewrite] | None:
        target = decorator.decorator
        if self.call_name(target, LIB) != "retry":
            return None
        if isinstance(target, cst.Call):
            return lambda: self.policy(target, "@retry")
        return lambda: (Policy(max_attempts=None), ["bare @retry: retries forever"])

    # -- call forms: retry(...)(fn), Retrying(...)(fn, *args), deco = retry(...) ------
    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        inner = original_node.func
        if not isinstance(inner, cst.Call) or isinstance(inner.func, cst.Call):
            return updated_node  # `retry(...)(f)(x)`: the site is `retry(...)(f)`
        name = self.call_name(inner, LIB)
        if name not in ("retry", "Retrying"):
            return updated_node
        if name == "Retrying" and (
            not original_node.args
            or original_node.args[0].star
            or original_node.args[0].keyword is not None
        ):
            self.record(original_node, "kept", "Retrying(...)(...) without the function first")
            return updated_node
        made = self._make_step(original_node, inner, f"{name}(...)(fn)")
        if made is None:
            return updated_node
        if name == "retry":
            return updated_node.with_changes(func=made)
        first, *rest = updated_node.args
        wrapped = cst.Call(func=made, args=[first.with_changes(comma=cst.MaybeSentinel.DEFAULT)])
        if rest:
            rest[-1] = rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return cst.Call(func=wrapped, args=rest)

    def leave_Assign(self, original_node: cst.Assign, updated_node: cst.Assign) -> cst.Assign:
        value = original_node.value
        name = self.call_name(value, LIB) if isinstance(value, cst.Call) else None
        if name in ("Retrying", "AsyncRetrying"):
            self.record(original_node, "kept", self._bound_reason(name, value))
            return updated_node
        if not isinstance(value, cst.Call) or name != "retry":
            return updated_node
        made = self._make_step(original_node, value, "name = retry(...)")
        return updated_node if made is None else updated_node.with_changes(value=made)

    def leave_Return(self, original_node: cst.Return, updated_node: cst.Return) -> cst.Return:
        """``return retry(...)``: a factory handing out tenacity's decorator (langchain's
        ``_create_retry_decorator(llm)``) hands out the step decorator instead."""
        value = original_node.value
        if not isinstance(value, cst.Call) or isinstance(value.func, cst.Call):
            return updated_node  # `return retry(...)(f)(x)` is a call form, one site
        if self.call_name(value, LIB) != "retry":
            return updated_node
        made = self._make_step(original_node, value, "return retry(...)")
        return updated_node if made is None else updated_node.with_changes(value=made)

    def _bound_reason(self, name: str, call: cst.BaseExpression) -> str:
        """Why ``r = Retrying(...)`` stays: a retry engine when it runs a function its
        callers pass in (``r(f, ...)``, ``f`` a parameter), else the uses are not followed."""
        params: list[str] = []
        for function in self.functions:
            every = [*function.params.params, *function.params.kwonly_params]
            params.extend(p.name.value for p in every)
            for star in (function.params.star_arg, function.params.star_kwarg):
                if isinstance(star, cst.Param):
                    params.append(star.name.value)
        if self.functions:
            inner = self.code(self.functions[-1])
            called = re.search(r"\b\w+\(\s*(\w+)\s*,\s*\*\w+", inner)
            if called and called.group(1) in params:
                return (
                    f"a retry engine: a {name} object runs `{called.group(1)}`, which its"
                    " callers pass in, with a policy from the enclosing function's parameters:"
                    " make the functions they pass steps instead"
                )
        return f"a {name} object bound to a name: the calls that use it are not followed"

    def _make_step(self, node: cst.CSTNode, call: cst.Call, what: str) -> cst.Call | None:
        """``step(retry=RetryPolicy(...))`` for tenacity's ``call``, recorded on ``node``."""
        return self.step_call(node, lambda: self.policy(call, what), what)

    # -- Retrying blocks -----------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.depth += 1
        self.functions.append(node)
        return True

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        try:
            updated_node = self._leave_function(original_node, updated_node)
            if any(h.scope is original_node for h in self.hook_rewrites):
                body = self.adapt_hooks(original_node, updated_node.body.body)
                updated_node = updated_node.with_changes(
                    body=updated_node.body.with_changes(body=body)
                )
            return updated_node
        finally:
            self.depth -= 1
            self.functions.pop()

    def _leave_function(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        updated_node = super().leave_FunctionDef(original_node, updated_node)
        body = list(original_node.body.body)
        for index, stmt in enumerate(body):
            if not isinstance(stmt, cst.For) or self.call_name(stmt.iter, LIB) not in (
                "Retrying",
                "AsyncRetrying",
            ):
                continue
            assert isinstance(stmt.iter, cst.Call)
            call = stmt.iter

            def read(stmt: cst.For = stmt, call: cst.Call = call, index: int = index) -> BlockRead:
                rewrite = self._retrying_block(original_node, stmt, index)
                return (rewrite, *self.policy(call, "Retrying(...)"))

            made = block_to_step(self, stmt, updated_node, index, read, "Retrying")
            if made is not None:
                return made
        self._report_nested_blocks(original_node)
        return updated_node

    def _report_nested_blocks(self, function: cst.FunctionDef) -> None:
        """``for attempt in Retrying(...)`` inside an ``if``/``try``/``with`` of the
        function (not in a nested function): reported, never rewritten."""
        found: list[cst.For] = []
        codemod = self

        class Finder(cst.CSTVisitor):
            def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
                return node is function

            def visit_For(self, node: cst.For) -> None:
                if codemod.call_name(node.iter, LIB) in ("Retrying", "AsyncRetrying"):
                    found.append(node)

        function.visit(Finder())
        top = [stmt for stmt in function.body.body if isinstance(stmt, cst.For)]
        params: list[str] = []
        for enclosing in self.functions:
            every = [*enclosing.params.params, *enclosing.params.kwonly_params]
            params.extend(p.name.value for p in every if p.name.value not in ("self", "cls"))
        for loop in found:
            if any(loop is stmt for stmt in top):
                continue
            called = [
                name for name in re.findall(r"\b(\w+)\s*\(", self.code(loop.body)) if name in params
            ]
            if called:
                reason = (
                    f"a retry engine: the Retrying block runs `{called[0]}`, which its callers"
                    " pass in: make the functions they pass steps instead"
                )
            else:
                reason = "the Retrying block is inside a branch or block of the function"
            self.record(loop, "kept", reason)

    def _retrying_block(
        self, func: cst.FunctionDef, loop: cst.For, index: int
    ) -> Callable[[cst.FunctionDef], list[Any]]:
        return attempt_block(
            func,
            loop,
            index,
            self.code,
            "Retrying",
            "AsyncRetrying in a sync function or Retrying in an async one",
        )

    # -- the policy ----------------------------------------------------------------
    def policy(self, call: cst.Call, what: str) -> Rewrite:
        """Map the arguments of ``retry(...)`` / ``Retrying(...)`` to a policy."""
        self.block_form = what == "Retrying(...)"
        args: dict[str, cst.BaseExpression] = {}
        for arg in call.args:
            if arg.star:
                raise Kept(
                    f"{what} gets its options from `{arg.star}{self.code(arg.value)}`,"
                    " known only at run time (a policy its callers choose): adapt it by hand"
                )
            if arg.keyword is None:
                raise Kept(f"{what} gets positional arguments")
            args[arg.keyword.value] = arg.value
        for name in args:
            if name not in _MAPPED_OPTIONS:
                raise Kept(f"option `{name}=` has no equivalent")
        notes: list[str] = []
        self.runtime_notes = []
        self.hook_candidates, self.exhausted_candidate = [], False
        policy = Policy(max_attempts=None)
        if "stop" in args:
            self._stop(args["stop"], policy)
        wait = self._wait(args["wait"], policy) if "wait" in args else _Wait()
        policy.initial_delay, policy.backoff, policy.max_delay = wait.initial, wait.factor, wait.cap
        policy.jitter = wait.jitter
        policy.increment, policy.random_delay = wait.increment, wait.random
        policy.min_delay, policy.full_jitter = wait.floor, wait.full_jitter
        policy.delays = wait.schedule
        notes.extend(wait.notes)
        if "retry" in args:
            policy.retry_on, policy.give_up_on = self._retry(args["retry"], policy)
            if policy.retry_if is not None and policy.retry_on != ["Exception"]:
                raise Kept(f"retry={self.code(args['retry'])} joins a predicate with types")
        for hook in ("before", "after", "before_sleep"):
            if hook in args:
                if self.call_name(args[hook], LIB) not in _LOG_HOOKS:
                    if hook == "before":
                        policy.before_retry, note = self.before_hook(args[hook])
                        notes.append(note)
                        continue
                    if hook == "before_sleep":
                        policy.before_retry, note = self.before_sleep_hook(args[hook])
                        notes.append(note)
                        continue
                    raise Kept(
                        f"option `{hook}=` runs {self.code(args[hook])} with tenacity's"
                        " RetryCallState (before_retry gets a toolkit.RetryState: adapt it by hand)"
                    )
                notes.append(f"logging hook `{hook}=` dropped (the step retries silently)")
        if "retry_error_callback" in args:
            policy.on_give_up = self.fallback(args["retry_error_callback"], policy, notes)
            notes.append("retry_error_callback's value is the step's result when attempts run out")
        finite = policy.max_attempts is not None or policy.max_elapsed is not None
        if policy.retry_on_result is not None and policy.on_give_up is None and finite:
            note = (
                "a result still rejected after the last attempt raises toolkit.RetriesExhausted"
                " instead of tenacity.RetryError"
            )
            if self.catches_retry_error and not self.adapt_handlers:
                raise Kept(
                    self._retry_error_reason("toolkit.RetriesExhausted (a result still rejected)")
                )
            if self.catches_retry_error:
                lines = ", ".join(str(self.line_of(h)) for h in self.handlers)
                note += (
                    f": the `except RetryError` at line {lines} catches RetriesExhausted instead"
                    " (a tenacity.RetryError raised by other code in its try block is no"
                    " longer caught there)"
                )
                self.exhausted_candidate = True
            notes.append(note)
        reraise = args.get("reraise")
        finite = policy.max_attempts is not None or policy.max_elapsed is not None
        if reraise is not None and not (
            isinstance(reraise, cst.Name) and reraise.value in ("True", "False")
        ):
            raise Kept(f"reraise={self.code(reraise)} is known only at run time")
        reraises = isinstance(reraise, cst.Name) and reraise.value == "True"
        if finite and not reraises and policy.on_give_up is None and policy.retry_on:
            if self.catches_retry_error:
                raise Kept(self._retry_error_reason("the last attempt's exception"))
            notes.append("raises the last exception instead of tenacity.RetryError")
        if not finite:
            notes.append("retries forever, as before")
        if policy.max_elapsed is not None:
            notes.append(
                "stop_after_delay stopped once the time since the first attempt reached it;"
                " max_elapsed also counts the next delay, so an attempt that would start"
                " after it is not made"
            )
        if self.runtime_notes:
            notes.extend(self.runtime_notes)
            notes.append(
                "the step is defined in the function: its policy uses run-time values,"
                " read each time the function runs, as tenacity's decorator did"
            )
        return policy, notes

    def record(
        self,
        node: cst.CSTNode,
        action: Any,
        reason: str,
        notes: tuple[str, ...] | list[str] = (),
        policy: str = "",
        end: cst.CSTNode | None = None,
    ) -> None:
        super().record(node, action, reason, notes, policy, end)
        if action == "rewritten":
            self.hook_rewrites.extend(self.hook_candidates)
        if action == "rewritten" and self.exhausted_candidate:
            self.exhausted_sites += 1
        if action != "rewritten":
            self.sites_left += 1
        self.hook_candidates, self.exhausted_candidate = [], False

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if any(h.scope is None for h in self.hook_rewrites):
            updated_node = updated_node.with_changes(body=self.adapt_hooks(None, updated_node.body))
        if self.exhausted_sites and not self.sites_left:
            updated_node = cast(cst.Module, updated_node.visit(_CatchExhausted()))
            AddImportsVisitor.add_needed_import(self.context, "toolkit", "RetriesExhausted")
        return super().leave_Module(original_node, updated_node)

    def _retry_error_reason(self, what: str) -> str:
        where = (
            f"`except ... RetryError` at line {', '.join(self.retry_error_lines)}"
            if self.retry_error_lines
            else "code that reads RetryError"
        )
        why = f" ({self.handlers_blocked})" if self.handlers_blocked else ""
        return (
            "the module handles tenacity.RetryError, raised when attempts run out:"
            f" {where} would not catch {what}, which the step raises instead{why};"
            " change that handler, then rerun"
        )

    def runtime(
        self, expr: cst.BaseExpression, option: str, policy: Policy, field_name: str
    ) -> float | None:
        """The constant value of ``expr``, or ``None`` once its source is kept in
        ``policy.sources[field_name]``: allowed for a decorator inside a function, where
        the policy is built each time that function runs (tenacity's was too)."""
        try:
            return self.number(expr, option)
        except Kept as exc:
            if self.depth < 2 or "known only at run time" not in str(exc):
                raise
            if field_name in policy.sources:
                raise Kept(f"{option}={self.code(expr)} joins two run-time values") from None
        text = self.code(expr)
        self._not_a_factory(option, text)
        policy.sources[field_name] = f"({text})" if "\n" in text or " if " in text else text
        policy.runtime.add(field_name)
        if field_name == "max_attempts":
            self.runtime_notes.append(
                f"a count below 1 at run time (`{text}` < 1) made one attempt under tenacity;"
                " RetryPolicy raises ValueError for it"
            )
        else:
            self.runtime_notes.append(
                f"a negative `{text}` at run time: RetryPolicy raises ValueError for it"
            )
        return None

    def _not_a_factory(self, option: str, text: str) -> None:
        """:class:`Kept` when the enclosing function returns the decorated one: a retry
        factory whose policy comes from its callers."""
        outer, inner = self.functions[-2], self.functions[-1]
        returned = rf"\breturn\s+{re.escape(inner.name.value)}\s*(#.*)?$"
        if re.search(returned, self.code(outer), re.MULTILINE):
            raise Kept(
                f"a retry factory: `{outer.name.value}` returns `{inner.name.value}`, whose"
                f" policy comes from its callers ({option}={text})"
            )

    def _branches(
        self, name: str
    ) -> list[tuple[cst.BaseExpression | None, cst.BaseExpression]] | None:
        """``if c1: name = v1 / elif c2: name = v2 / else: name = v3`` in the enclosing
        function, every assignment of ``name`` one branch: ``[(c1, v1), (c2, v2), (None, v3)]``."""
        outer = self.functions[-2]
        code = self.code(outer)
        if len(re.findall(rf"\b{re.escape(name)}\b\s*=[^=]", code)) < 2:
            return None
        for stmt in outer.body.body:
            if not isinstance(stmt, cst.If):
                continue
            branches: list[tuple[cst.BaseExpression | None, cst.BaseExpression]] = []
            node: cst.If | cst.Else | None = stmt
            while node is not None:
                body = node.body.body if isinstance(node.body, cst.IndentedBlock) else []
                small = (
                    body[0].body
                    if len(body) == 1 and isinstance(body[0], cst.SimpleStatementLine)
                    else []
                )
                assign = small[0] if len(small) == 1 else None
                if not (
                    isinstance(assign, cst.Assign)
                    and len(assign.targets) == 1
                    and isinstance(assign.targets[0].target, cst.Name)
                    and assign.targets[0].target.value == name
                ):
                    return None
                if isinstance(node, cst.If):
                    branches.append((node.test, assign.value))
                    node = node.orelse
                else:
                    branches.append((None, assign.value))
                    node = None
            if branches[-1][0] is not None:
                return None  # no else: the name may be unbound
            if len(re.findall(rf"\b{re.escape(name)}\b\s*=[^=]", code)) != len(branches):
                return None
            return branches
        return None

    def _stop_chain(self, name: str, policy: Policy) -> bool:
        """``stop=name`` chosen by an if/elif/else among ``stop_never`` and
        ``stop_after_attempt(n)``: ``max_attempts=(None if c1 else n if c2 else m)``."""
        branches = self._branches(name)
        if branches is None:
            return False
        counts: list[str] = []
        for _test, value in branches:
            called = self.call_name(value, LIB)
            if called == "stop_never" and not isinstance(value, cst.Call):
                counts.append("None")
            elif called == "stop_after_attempt" and isinstance(value, cst.Call):
                args = self.bound_args(value, ("max_attempt_number",), called)
                counts.append(self.code(args["max_attempt_number"]).strip())
            else:
                raise Kept(
                    f"stop={name} is chosen at run time: `{self.code(value)}` has no equivalent"
                )
        text = counts[-1]
        for (test, _value), count in zip(
            reversed(branches[:-1]), reversed(counts[:-1]), strict=True
        ):
            assert test is not None
            text = f"{count} if {self.code(test).strip()} else {text}"
        self._not_a_factory("stop", name)
        if policy.max_attempts is not None or "max_attempts" in policy.sources:
            raise Kept(f"stop={name} joins a run-time count with another")
        policy.max_attempts = 3  # a stand-in: the source is written out
        policy.sources["max_attempts"] = f"({' '.join(text.split())})"
        policy.runtime.add("max_attempts")
        conditions = ", ".join(f"`{self.code(t).strip()}`" for t, _ in branches if t is not None)
        self.runtime_notes.append(
            f"stop={name} was chosen by an if/elif/else: its conditions ({conditions}) are"
            " read again where the step is defined; a count below 1 at run time made one"
            " attempt under tenacity, RetryPolicy raises ValueError for it"
        )
        return True

    def _local(self, expr: cst.BaseExpression, option: str) -> cst.BaseExpression:
        """For ``stop=name`` / ``wait=name`` on a nested function: the value of the one
        assignment to ``name`` before it in the enclosing function; :class:`Kept` naming
        the lines when the name is assigned more than once or its attributes are changed."""
        if not isinstance(expr, cst.Name) or self.depth < 2:
            return expr
        outer, name = self.functions[-2], expr.value
        assigns: list[cst.Assign] = []
        mutated: list[int] = []

        class Finder(cst.CSTVisitor):
            def visit_Assign(self, node: cst.Assign) -> None:
                for target in node.targets:
                    if isinstance(target.target, cst.Name) and target.target.value == name:
                        assigns.append(node)
                    elif (
                        isinstance(target.target, cst.Attribute)
                        and isinstance(target.target.value, cst.Name)
                        and target.target.value.value == name
                    ):
                        mutated.append(id(node))

        finder = Finder()
        outer.body.visit(finder)
        if not assigns:
            return expr
        lines = ", ".join(str(self.line_of(a)) for a in assigns)
        if len(assigns) > 1:
            raise Kept(
                f"{option}={name} is chosen at run time: `{name}` is assigned at lines {lines}"
            )
        outer_code = self.code(outer.with_changes(leading_lines=()))
        changed = re.search(rf"\b{re.escape(name)}\.(\w+)\s*=[^=]", outer_code)
        if mutated or changed:
            attr = changed.group(1) if changed else "an attribute"
            where = ""
            if changed:
                line = self.line_of(outer) + outer_code.count("\n", 0, changed.start())
                inner = self.functions[-1]
                start = self.line_of(inner)
                end = self.get_metadata(PositionProvider, inner).end.line
                inside = f", inside `{inner.name.value}`" if start <= line <= end else ""
                where = f" (line {line}{inside})"
            raise Kept(
                f"{option}={name}: `{name}` (line {lines}) has `{name}.{attr}` changed at"
                f" run time{where}, so each delay depends on state the attempts set (a"
                " RetryPolicy's delays follow a law fixed where the step is defined;"
                " delay_from reads only the exception)"
            )
        if self.line_of(assigns[0]) >= self.line_of(expr):
            return expr
        return assigns[0].value

    def _stop(self, expr: cst.BaseExpression, policy: Policy) -> None:
        if isinstance(expr, cst.Name) and self.depth >= 2 and self._stop_chain(expr.value, policy):
            return
        expr = self._local(expr, "stop")
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
            self._stop(expr.left, policy)
            self._stop(expr.right, policy)
            return
        name = self.call_name(expr, LIB)
        if name == "stop_never" and not isinstance(expr, cst.Call):
            return
        if not isinstance(expr, cst.Call) or name not in ("stop_after_attempt", "stop_after_delay"):
            raise Kept(f"stop={self.code(expr)} has no equivalent")
        if name == "stop_after_attempt":
            args = self.bound_args(expr, ("max_attempt_number",), name)
            number = self.runtime(args["max_attempt_number"], name, policy, "max_attempts")
            if (number is None and policy.max_attempts is not None) or (
                number is not None and "max_attempts" in policy.sources
            ):
                raise Kept(f"stop={self.code(expr)} joins a run-time count with another")
            if number is None:
                policy.max_attempts = 3  # a stand-in: the source is written out
                return
            value = int(number)
            policy.max_attempts = min(value, policy.max_attempts or value)
            name = self.constant_name(args["max_attempt_number"])
            if name is not None and policy.max_attempts == value:
                policy.sources["max_attempts"] = name
        else:
            args = self.bound_args(expr, ("max_delay",), name)
            seconds = self.runtime(args["max_delay"], name, policy, "max_elapsed")
            if (seconds is None and policy.max_elapsed is not None) or (
                seconds is not None and "max_elapsed" in policy.sources
            ):
                raise Kept(f"stop={self.code(expr)} joins a run-time delay with another")
            if seconds is None:
                policy.max_elapsed = 60.0  # a stand-in: the source is written out
                return
            policy.max_elapsed = min(seconds, policy.max_elapsed or seconds)

    def _wait(self, expr: cst.BaseExpression, policy: Policy | None = None) -> _Wait:
        expr = self._local(expr, "wait")
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
            left, right = self._wait(expr.left), self._wait(expr.right)
            if left.schedule or right.schedule:
                raise Kept(f"wait={self.code(expr)} adds a wait to a wait_chain")
            fixed = [w for w in (left, right) if w.deterministic]
            if len(fixed) == 2:
                raise Kept(f"wait={self.code(expr)} adds two deterministic waits")
            base = fixed[0] if fixed else left
            other = right if base is left else left
            if other.random and not other.jitter and base.deterministic and base.cap is None:
                # wait_fixed(a) + wait_random(b, c): a + b plus uniform(0, c - b), exact
                return _Wait(
                    base.initial + other.initial,
                    base.factor,
                    None,
                    False,
                    [*left.notes, *right.notes],
                    False,
                    base.increment,
                    other.random,
                )
            return _Wait(
                base.initial,
                base.factor,
                base.cap,
                True,
                [*left.notes, *right.notes, "added random wait approximated by jitter=True"],
                False,
            )
        name = self.call_name(expr, LIB)
        if not isinstance(expr, cst.Call):
            raise Kept(f"wait={self.code(expr)} has no equivalent")
        if name == "wait_none":
            return _Wait()
        if name == "wait_fixed":
            args = self.bound_args(expr, ("wait",), name)
            if policy is None:
                return _Wait(self.number(args["wait"], name))
            seconds = self.runtime(args["wait"], name, policy, "initial_delay")
            return _Wait(1.0 if seconds is None else seconds)
        if name in ("wait_exponential", "wait_random_exponential"):
            args = self.bound_args(expr, ("multiplier", "max", "exp_base", "min"), name)
            wait = self._exponential(args, name, "multiplier")
            if "min" in args:  # tenacity: max(min, min(delay, max)), as min_delay does
                wait.floor = self.number(args["min"], name)
                if wait.cap is not None and wait.floor > wait.cap:
                    raise Kept(f"{name} min={wait.floor:g} is above max={wait.cap:g}")
                if wait.cap is None and wait.floor > 60:
                    wait.cap = math.inf  # tenacity's max is unbounded
            if name == "wait_random_exponential":
                # uniform(min, delay), as full_jitter draws
                wait.full_jitter, wait.deterministic = True, False
            return wait
        if name == "wait_exponential_jitter":
            args = self.bound_args(
                expr, ("initial", "max", "exp_base", "jitter", "min", "multiplier"), name
            )
            wait = self._exponential(args, name, "initial")
            wait.jitter = True
            wait.notes.append("additive jitter approximated by jitter=True")
            return wait
        if name == "wait_random":
            args = self.bound_args(expr, ("min", "max"), name)
            low = self.number(args["min"], "wait_random") if "min" in args else 0.0
            high = self.number(args["max"], "wait_random") if "max" in args else 1.0
            return _Wait(low, 1.0, None, False, [], False, 0.0, max(high - low, 0.0))
        if name == "wait_chain":
            # tenacity waits strategy n after failed attempt n, the last one after the rest
            delays: list[float] = []
            for arg in expr.args:
                if arg.star or arg.keyword or self.call_name(arg.value, LIB) != "wait_fixed":
                    raise Kept(
                        f"wait={self.code(expr)} chains waits other than wait_fixed(seconds)"
                    )
                delays.append(self._wait(arg.value).initial)
            if not delays:
                raise Kept(f"wait={self.code(expr)} chains no wait")
            if len(set(delays)) == 1:
                return _Wait(delays[0])
            return _Wait(schedule=tuple(delays))
        if name == "wait_incrementing":
            args = self.bound_args(expr, ("start", "increment", "max"), name)
            start = self.number(args["start"], name) if "start" in args else 0.0
            step = self.number(args["increment"], name) if "increment" in args else 100.0
            cap = self.number(args["max"], name) if "max" in args else None
            return _Wait(start, 1.0, cap, False, [], True, step)
        raise Kept(f"wait={self.code(expr)} has no equivalent")

    def _exponential(self, args: dict[str, cst.BaseExpression], name: str, first: str) -> _Wait:
        initial = self.number(args[first], name) if first in args else 1.0
        if "multiplier" in args and first != "multiplier":
            initial *= self.number(args["multiplier"], name)
        factor = self.number(args["exp_base"], name) if "exp_base" in args else 2.0
        cap = self.number(args["max"], name) if "max" in args else None
        notes = []
        if "min" in args and name == "wait_exponential_jitter":
            low = self.number(args["min"], name)
            if low > initial:
                notes.append(
                    f"{name} min={low:g} approximated: first delay {low:g}, then x{factor:g}"
                )
                initial = low
        return _Wait(initial, factor, cap, False, notes)

    def _retry(
        self, expr: cst.BaseExpression, policy: Policy | None = None
    ) -> tuple[list[str], list[str]]:
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
            left, right = self._retry(expr.left, policy), self._retry(expr.right, policy)
            if left[1] or right[1]:
                raise Kept(f"retry={self.code(expr)} has no equivalent")
            return [*left[0], *right[0]], []
        name = self.call_name(expr, LIB)
        if isinstance(expr, cst.Call) and name in ("retry_if_result", "retry_if_exception"):
            if policy is None or len(expr.args) != 1 or expr.args[0].star:
                raise Kept(f"retry={self.code(expr)} has no equivalent")
            predicate = self.code(expr.args[0].value)
            if name == "retry_if_result":
                if policy.retry_on_result is not None:
                    raise Kept(f"retry={self.code(expr)} joins two result predicates")
                policy.retry_on_result = predicate
                return [], []  # no exception is retried by this part
            if policy.retry_if is not None:
                raise Kept(f"retry={self.code(expr)} joins two exception predicates")
            policy.retry_if = predicate
            return ["Exception"], []
        if not isinstance(expr, cst.Call) or name not in (
            "retry_if_exception_type",
            "retry_if_not_exception_type",
        ):
            raise Kept(f"retry={self.code(expr)} has no equivalent")
        args = self.bound_args(expr, ("exception_types",), name)
        types = self.exception_types(args["exception_types"]) if args else ["Exception"]
        if name == "retry_if_exception_type":
            return types, []
        return ["Exception"], types  # tenacity also retried BaseException; the step does not


__all__ = ["TenacityCodemod"]
