"""Codemod ``retry-loop``: hand-rolled retry loops become durable steps.

A loop is rewritten only when it is proven to be a retry of the same attempt:

* its body is one ``try`` whose success path leaves the loop (``return`` or
  ``break``), and whose handler decides, from counters alone, whether to try
  again, how long to sleep and when to give up;
* the attempt body neither reads the counter nor carries a variable from one
  attempt to the next, does not ``yield`` and holds no second retry loop.

The handler is *run*, not matched: :class:`_Simulation` executes its
statements for attempt 1, 2, ... with the counters as plain numbers, which
yields the number of attempts, the delay before each retry (fitted to a
constant or exponential backoff) and what happens when attempts run out.

When the loop is the whole body of a function, the function gets
``@step(retry=RetryPolicy(...))`` and the loop disappears. Otherwise the
attempt body becomes a module-level step function, its free variables passed
in and the values read after the loop returned; the loop becomes one call.
Everything else is left alone and reported with its reason.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import libcst as cst
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import (
    FunctionScope,
    GlobalScope,
    ParentNodeProvider,
    PositionProvider,
    QualifiedNameProvider,
    ScopeProvider,
)

from . import _evaluate as ev
from ._base import LOGGED_NOTE, SILENT_NOTE, is_docstring, module_constants, module_sequences
from ._effects import unserializable_return
from ._handlers import (
    gives_up,
    negation_of,
)
from ._loop_policy import config_notes
from ._loop_results import LoopResults
from ._loop_scope import (
    _PROBE,
    _RETRY_DECORATOR,
    _RETRY_DECORATOR_PREFIXES,
    _fixed_values,
    _Plan,
)
from ._loop_setup import (
    check_cleanup,
    cleanup_notes,
    message_prelude,
    setup_note,
    span_or_node,
    split_setup,
)
from ._loop_shapes import (
    _as_name,
    _assigned_names,
    _ast_recursive_retry,
    _ast_retry_like,
    _ast_supervised,
    _attempt_body,
    _attempt_footer,
    _BodyFinder,
    _candidate_loops,
    _contains_return,
    _declared_global,
    _exits,
    _first_line,
    _flow_reason,
    _following,
    _is_counter_bump,
    _last_small_is,
    _names_read_in,
    _nested_try_reason,
    _private_name,
    _read_in,
    _recursive_retry,
    _reraises_only,
    _reraises_saved,
    _result_shape,
    _saved_exception,
    _set_only_by_last,
    _small_statements,
    _spacing,
    _success_style,
    _success_tail,
    _types_src,
    _uses_zero_arg_super,
    _walk_all,
    _walk_own,
    _without_final_break,
    tidy_handler,
)
from ._loop_simulation import (
    Skip,
    _Exit,
    _FlagNeeded,
    _NeedsValue,
    _Outcome,
    _Simulation,
)
from ._policy import (
    AmbiguousTypes,
    check_types,
)
from ._recursion import (
    apply_recursion,
    ast_recursive_wrapper,
    ast_retries_by_recursion,
    find_recursion,
    recursive_wrapper,
)


class _ExplicitSuper(cst.CSTTransformer):
    """``super()`` -> ``super(Cls, self)``, outside nested functions and classes."""

    def __init__(self, cls: str, first: str) -> None:
        super().__init__()
        self.cls, self.first = cls, first

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        func = updated_node.func
        if isinstance(func, cst.Name) and func.value == "super" and not updated_node.args:
            return updated_node.with_changes(
                args=[
                    cst.Arg(
                        cst.Name(self.cls),
                        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
                    ),
                    cst.Arg(cst.Name(self.first)),
                ]
            )
        return updated_node


def _is_local_name(scope: FunctionScope, name: str, func: cst.FunctionDef) -> bool:
    """``name`` is assigned in the function besides being its parameter."""
    return any(not isinstance(getattr(a, "node", None), cst.Param) for a in scope.assignments[name])


class RetryLoopCodemod(LoopResults):
    """Rewrite hand-rolled retry loops into ``@step(retry=RetryPolicy(...))``."""

    SELECTOR = "retry-loop"
    DESCRIPTION = "Rewrite hand-rolled retry loops into durable steps with a RetryPolicy."
    METADATA_DEPENDENCIES: ClassVar[tuple[Any, ...]] = (
        PositionProvider,
        ScopeProvider,
        QualifiedNameProvider,
        ParentNodeProvider,
    )

    def __init__(self, context: Any, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        #: True on the in-memory run of a recursion's loop form (codemods/_recursion.py)
        self.in_recursion = False
        self.recursion_rewrites: dict[cst.FunctionDef, Any] = {}

    @classmethod
    def might_apply(cls, source: str) -> bool:
        """Cheap pre-check with :mod:`ast`: is there a loop around a ``try`` at all?"""
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return True  # let libcst report it
        for node in ast.walk(tree):
            if isinstance(node, ast.For | ast.AsyncFor | ast.While) and (
                _ast_retry_like(node) or _ast_supervised(node) is not None
            ):
                return True
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                _ast_recursive_retry(node)
                or ast_recursive_wrapper(node)
                or ast_retries_by_recursion(node)
            ):
                return True
        return False

    # ------------------------------------------------------------------ visit
    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.source_module = node
        scope = self.get_metadata(ScopeProvider, node, None)
        if isinstance(scope, GlobalScope):
            self.taken_names = {a.name for a in scope.assignments}
            self.constants = module_constants(node, scope)
            self.sequences = module_sequences(node, scope)
            self.sequence_values = {
                name: tuple(_fixed_values(value) or ()) for name, value in self.sequences.items()
            }
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        recursion = _recursive_retry(node, self.source_module.code_for_node)
        loops = list(_candidate_loops(node.body))
        wrapper = None
        if recursion is None and node.params.star_kwarg is not None:
            engine_of = self._called_parameter(node, node.body.body)
            wrapper = recursive_wrapper(node, self.source_module.code_for_node, engine_of)
        rewrite = None if loops or wrapper else find_recursion(self, node, recursion is not None)
        if rewrite is not None:  # retries by recursion: read as a loop (codemods/_recursion.py)
            self.recursion_rewrites[node] = rewrite
            return True
        recursion = recursion or wrapper
        if recursion is not None:
            self.recursions[node] = recursion
        if not loops:
            return True
        decorated = self._retry_decorator(node)
        for loop in loops:
            if not self._retry_like(loop):
                supervisor = self._supervisor(loop)
                if supervisor is not None:  # listed with its reason, never rewritten
                    self.plans[loop] = _Plan(reason=supervisor)
                continue  # a search or polling loop: not a retry, nothing to report
            if decorated:
                plan = _Plan(reason=f"nested retries: the function already has @{decorated}")
            else:
                removed = set(self.remove_stmts)
                try:
                    plan = self._analyse(node, loop)
                except Skip as skip:
                    plan = _Plan(reason=str(skip), summary=self._last_summary)
                    self.remove_stmts = removed  # a refused loop's setup stays as it was
            self.plans[loop] = plan
            if plan.reason is None and plan.whole_function:
                self.function_plans[node] = plan
        return True

    # ------------------------------------------------------------------ leave
    def leave_For(
        self, original_node: cst.For, updated_node: cst.For
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        return self._leave_loop(original_node, updated_node)

    def leave_While(
        self, original_node: cst.While, updated_node: cst.While
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        return self._leave_loop(original_node, updated_node)

    def _leave_loop(
        self, original: cst.For | cst.While, updated: cst.For | cst.While
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        plan = self.plans.get(original)
        if plan is None:
            return updated
        if plan.reason is not None:
            self.record(original, "skipped", plan.reason, policy=plan.summary)
            return self.annotated(updated, plan.reason, plan.summary)
        if plan.whole_function:
            return updated  # the enclosing function is rewritten in leave_FunctionDef
        assert plan.policy is not None
        self.record(
            original,
            "rewritten",
            f"attempt body extracted into {plan.step_name}()",
            plan.notes,
            plan.policy.summary(),
        )
        if plan.result is not None:  # a retry decided by a returned value
            func = self._step_function(plan, plan.result.step_body)
            replacement = self._result_call_site(plan)
        else:
            attempt_body = _attempt_body(
                updated, plan.style, plan.bumps, bool(plan.success_flag), plan.setup
            )
            if plan.super_of is not None:
                explicit = _ExplicitSuper(*plan.super_of)
                attempt_body = [s.visit(explicit) for s in attempt_body]
            footer = _attempt_footer(updated, plan.style, bool(plan.success_flag))
            func = self._step_function(plan, attempt_body, footer)
            replacement = self._call_site(plan, updated)
        # the comments of a setup line removed just before the loop (`deadline = ...`)
        above = [*self.carried_comments.pop(original, []), *updated.leading_lines]
        # and those of the loop's machinery (the handler, the header): the author's
        # knowledge ("happens when the ports are in use") stays, above the step
        above += [
            cst.EmptyLine(comment=cst.Comment(text))
            for text in _lost_comments(updated, [func, *replacement], above)
        ]
        if plan.nested:
            func = func.with_changes(leading_lines=above)
            first = replacement[0].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            return cst.FlattenSentinel([func, first, *replacement[1:]])
        assert plan.top_level is not None
        self.new_functions.setdefault(plan.top_level, []).append(func)
        first = replacement[0].with_changes(leading_lines=above)
        return cst.FlattenSentinel([first, *replacement[1:]])

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        if original_node in self.remove_stmts and any(
            line.comment is not None for line in original_node.leading_lines
        ):
            # its comments go above the loop it sets up; elsewhere the line stays
            block = list(self._block_of(original_node))
            index = next((i for i, s in enumerate(block) if s is original_node), -1)
            following = block[index + 1] if 0 <= index < len(block) - 1 else None
            plan = self.plans.get(following) if following is not None else None
            if plan is None or plan.reason is not None or plan.whole_function:
                return updated_node
            assert following is not None
            self.carried_comments[following] = list(original_node.leading_lines)
            return cst.RemoveFromParent()
        if original_node in self.remove_stmts:
            return cst.RemoveFromParent()
        return updated_node

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        rewrite = self.recursion_rewrites.get(original_node)
        if rewrite is not None:
            return apply_recursion(self, original_node, updated_node, rewrite)
        plan = self.function_plans.get(original_node)
        recursion = self.recursions.get(original_node)
        if recursion is not None and plan is None:
            self.record(original_node, "skipped", recursion)
            return self.annotated(updated_node, recursion)
        if plan is None:
            return updated_node
        assert plan.policy is not None
        self.record(
            original_node,
            "rewritten",
            "the function became a step",
            plan.notes,
            plan.policy.summary(),
        )
        body = list(updated_node.body.body)
        keep: list[Any] = []
        if body and is_docstring(body[0]):
            keep.append(body[0])
        loop = next(s for s in body if isinstance(s, cst.For | cst.While))
        attempt = [
            *self._counter_stmt(plan),
            *_attempt_body(loop, "return", plan.bumps, setup=plan.setup),
        ]
        # comments above the loop now stand above the attempt's first statement
        above = [line for line in loop.leading_lines if line.comment is not None]
        first = attempt[0]
        keep.append(first.with_changes(leading_lines=[*above, *first.leading_lines]))
        keep.extend(attempt[1:])
        decorators = [*updated_node.decorators, self.decorator_for(plan.policy)]
        self._drop_imports(plan.machinery)
        own = updated_node.body.footer if isinstance(updated_node.body, cst.IndentedBlock) else []
        footer = [*_attempt_footer(loop, "return"), *own]
        return updated_node.with_changes(
            decorators=decorators,
            body=updated_node.body.with_changes(body=keep, footer=footer),
        )

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if not self.new_functions:
            return updated_node
        # Top-level statements are never added or removed here, so they pair up one to one.
        body: list[cst.BaseStatement] = []
        for original, updated in zip(original_node.body, updated_node.body, strict=True):
            body.extend(self.new_functions.get(original, []))
            body.append(updated)
        return updated_node.with_changes(body=body)

    # --------------------------------------------------------------- building
    def _step_function(
        self,
        plan: _Plan,
        attempt_body: list[cst.BaseStatement],
        footer: list[cst.EmptyLine] | None = None,
    ) -> cst.FunctionDef:
        assert plan.policy is not None
        body = [*self._counter_stmt(plan), *attempt_body]
        footer = list(footer or [])
        if plan.style == "break" and plan.outputs:
            value = ", ".join(plan.outputs)
            returned = cst.parse_statement(f"return {value}\n")
            body.append(returned.with_changes(leading_lines=footer))  # above the return
            footer = []
        params = cst.Parameters(params=[cst.Param(cst.Name(p)) for p in plan.params])
        self._drop_imports(plan.machinery)
        return cst.FunctionDef(
            name=cst.Name(plan.step_name),
            params=params,
            body=cst.IndentedBlock(body=body, footer=footer),
            decorators=[self.decorator_for(plan.policy)],
            asynchronous=cst.Asynchronous() if plan.is_async else None,
            leading_lines=_spacing(plan.top_level),
        )

    def _counter_stmt(self, plan: _Plan) -> list[cst.BaseStatement]:
        """``attempt = current_step().attempt - 1`` when the attempt body reads the counter."""
        if plan.counter is None:
            return []
        name, start = plan.counter
        offset = start - 1
        value = "current_step().attempt" + (
            f" + {offset}" if offset > 0 else f" - {-offset}" if offset < 0 else ""
        )
        AddImportsVisitor.add_needed_import(self.context, "toolkit", "current_step")
        return [cst.parse_statement(f"{name} = {value}\n")]

    def _call_site(self, plan: _Plan, loop: cst.For | cst.While) -> list[cst.BaseStatement]:
        call = f"{plan.step_name}({', '.join(plan.params)})"
        if plan.is_async:
            call = f"await {call}"
        if plan.style == "return":
            inner = f"return {call}\n"
        elif plan.outputs:
            inner = f"{', '.join(plan.outputs)} = {call}\n"
        else:
            inner = f"{call}\n"
        try_ = next(s for s in loop.body.body if isinstance(s, cst.Try))
        tail = _success_tail(try_)  # the else block's work: after the step, not retried
        if plan.flag_read_after:  # the success flag, for the code after the loop
            tail = [cst.parse_statement(f"{plan.success_flag} = True\n"), *tail]
        if not plan.needs_wrapper:
            return [cst.parse_statement(inner), *tail]
        if plan.clauses:
            return [self._clause_wrapper(plan, inner, tail)]
        handlers = []
        if plan.give_up:
            handlers.append(f"except {_types_src(plan.give_up)}:\n    raise\n")
        body, as_name = tidy_handler(list(plan.wrapper_body), plan.wrapper_as)
        as_part = f" as {as_name}" if as_name else ""
        handlers.append(f"except {_types_src(plan.retry_types)}{as_part}:\n    pass\n")
        template = cst.parse_statement(f"try:\n    {inner}" + "".join(handlers))
        assert isinstance(template, cst.Try)
        last = template.handlers[-1]
        last = last.with_changes(body=last.body.with_changes(body=body))
        wrapper = template.with_changes(handlers=[*template.handlers[:-1], last])
        if tail:
            wrapper = wrapper.with_changes(orelse=cst.Else(body=cst.IndentedBlock(body=tail)))
        return [wrapper]

    def _drop_imports(self, machinery: str) -> None:
        """Drop ``time`` once unused; ``random``, ``asyncio``, ``itertools`` only if the loop
        used them."""
        self.drop_if_unused("time")
        self.drop_if_unused("time", "sleep")
        for module in ("random", "asyncio", "itertools"):
            if f"{module}." in machinery:
                self.drop_if_unused(module)
        if "count(" in machinery:
            self.drop_if_unused("itertools", "count")

    # --------------------------------------------------------------- analysis
    def _several_tries_reason(self, stmts: Sequence[cst.BaseStatement], tries: list[int]) -> str:
        """Why a loop body with several tries is no one attempt: which try retries, and
        what its retry decision reads that an earlier part of the body set."""
        code = self.source_module.code_for_node
        lines = ", ".join(str(self._range(stmts[i]).start.line) for i in tries)
        reason = f"the loop body has {len(tries)} tries (lines {lines})"
        retrying = [
            (i, h)
            for i in tries
            for h in getattr(stmts[i], "handlers", ())
            if not (_reraises_only(h) or gives_up(h.body.body, self._is_log))
        ]
        if len(retrying) != 1:
            return reason + ": which failure retries is decided in more than one place"
        index, handler = retrying[0]
        earlier = _assigned_names(list(stmts[:index]))
        for node in _walk_all(handler.body):
            if isinstance(node, cst.If):
                read = sorted(_names_read_in([cst.Expr(node.test)]) & earlier)
                if read:
                    return (
                        f"{reason}: the attempt is the whole body, and the retry decision"
                        f" `{_first_line(code(node.test))}` reads `{read[0]}`, set by the attempt"
                        " before the try that fails (not a retry on the exception alone)"
                    )
        shown = code(handler.type) if handler.type is not None else "a bare except"
        return (
            f"{reason}: the attempt is the whole body, retried on `{shown}` from the try at"
            f" line {self._range(stmts[index]).start.line} only"
        )

    def _super_arguments(self, func: cst.FunctionDef) -> tuple[str, str]:
        """``(class, first parameter)`` for ``super()`` in a method of a module-level
        class, written out when the attempt leaves the method."""
        block = self.get_metadata(ParentNodeProvider, func, None)
        cls = self.get_metadata(ParentNodeProvider, block, None) if block is not None else None
        outer = self.get_metadata(ParentNodeProvider, cls, None) if cls is not None else None
        params = [*func.params.posonly_params, *func.params.params]
        static = any(
            isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod"
            for d in func.decorators
        )
        if not isinstance(cls, cst.ClassDef) or not isinstance(outer, cst.Module):
            raise Skip("the attempt body calls super() without arguments outside a method")
        if not params or static:
            raise Skip("the attempt body calls super() without arguments in a static method")
        first = params[0].name.value
        scope = self.get_metadata(ScopeProvider, func.body, None)
        if isinstance(scope, FunctionScope) and _is_local_name(scope, first, func):
            raise Skip(f"the attempt body calls super() and the method rebinds `{first}`")
        return cls.name.value, first

    def _retry_decorator(self, func: cst.FunctionDef) -> str | None:
        for decorator in func.decorators:
            target = decorator.decorator
            if isinstance(target, cst.Call):
                target = target.func
            names = {q.name for q in self.get_metadata(QualifiedNameProvider, target, set())}
            names.add(self.source_module.code_for_node(target))
            for name in names:
                last = name.rsplit(".", 1)[-1].lower()
                if name.startswith(_RETRY_DECORATOR_PREFIXES) or _RETRY_DECORATOR.search(last):
                    return self.source_module.code_for_node(target)
        return None

    def _analyse(self, func: cst.FunctionDef, loop: cst.For | cst.While) -> _Plan:
        self._last_summary = ""
        self._current_loop = loop
        self._guarded_delays = set()
        self._counter_read = None
        code = self.source_module.code_for_node
        body = loop.body
        if not isinstance(body, cst.IndentedBlock):
            raise Skip("the loop body is on one line")
        tries = [i for i, s in enumerate(body.body) if isinstance(s, cst.Try | cst.TryStar)]
        if any(isinstance(n, cst.Yield) for n in _walk_own(body)):
            first = body.body[tries[0]] if len(tries) == 1 else None
            in_attempt = isinstance(first, cst.Try | cst.TryStar) and any(
                isinstance(n, cst.Yield) for n in _walk_own(first.body)
            )
            if in_attempt:
                raise Skip("the attempt body yields")
            raise Skip("the loop yields (a generator): its retries cannot become a step")
        if not tries:
            if _result_shape(body.body):  # a retry decided by a returned value
                return self._analyse_result(func, loop)
            raise Skip(_nested_try_reason(body.body, code))
        if len(tries) != 1:
            raise Skip(self._several_tries_reason(body.body, tries))
        index = tries[0]
        try_ = body.body[index]
        if isinstance(try_, cst.TryStar):
            raise Skip("except* is not supported")
        assert isinstance(try_, cst.Try)
        pre, post = list(body.body[:index]), list(body.body[index + 1 :])
        # `finally: cleanup` after every attempt: it closes the step's body
        final: list[Any] = list(try_.finalbody.body.body) if try_.finalbody else []
        style = _success_style(try_)
        if style is None and _break_after(try_, post):
            # `try: x = call() / except E: ...; continue` then `break`: the break is the
            # attempt's success, as `else: break` would be
            style, post = "break", []
        sim_loop: cst.For | cst.While = loop
        func_scope = self.get_metadata(ScopeProvider, func.body, None)
        success_flag = (
            self._success_flag_shape(loop, try_, pre, post, func_scope)
            if isinstance(func_scope, FunctionScope)
            else None
        )
        if style is None and success_flag is not None:
            # `while not success and n < N:` whose attempt ends with `success = True`: a
            # `break` there, the loop test without the flag
            style = "break"
            assert isinstance(loop, cst.While)
            sim_loop = loop.with_changes(test=success_flag[1])
        value_flag = None
        if style is None and success_flag is None:
            value_flag = self._value_flag_shape(loop, try_)
        if style is None and value_flag is not None:
            # `while conn is None:` whose attempt ends with `conn = connect()`: a `break`
            # there, the loop test without the flag
            style = "break"
            assert isinstance(loop, cst.While)
            sim_loop = loop.with_changes(test=value_flag[1])
        if style is None and (
            self._decided_after_try(list(body.body), index)
            or self._decided_in_try(list(body.body)) is not None
        ):
            return self._analyse_result(func, loop)  # a value decides, exceptions retry too
        if style is None:
            engine = self._called_parameter(func, list(try_.body.body))
            if engine is not None:
                raise Skip(
                    f"a retry engine: it retries `{engine}`, which its callers pass in:"
                    " make the functions they pass steps instead"
                )
            raise Skip(_flow_reason(loop, body.body, index, code))
        if style == "return" and try_.orelse is not None:
            raise Skip("the try has an else block")
        attempt_stmts: list[Any] = list(try_.body.body)
        if style == "break" and try_.orelse is None:
            attempt_stmts = _without_final_break(attempt_stmts)
        if success_flag is not None:
            attempt_stmts = attempt_stmts[:-1] or [cst.SimpleStatementLine([cst.Pass()])]
        # statements before the try that each attempt recomputes: the step's first lines
        pre, setup = split_setup(self, loop, pre, try_.handlers, post, try_.body.body)
        bumps = 0  # `attempts += 1` first in the try: loop machinery, not attempt work
        while len(attempt_stmts) > 1 and _is_counter_bump(attempt_stmts[0]):
            pre = [*pre, attempt_stmts.pop(0)]
            bumps += 1
        attempt_stmts = [*setup, *attempt_stmts]
        finder = _BodyFinder()
        for stmt in attempt_stmts:
            stmt.visit(finder)
        if finder.asks_user:
            raise Skip("the attempt body asks for user input (never a durable step)")
        scope = self.get_metadata(ScopeProvider, func.body, None)
        if not isinstance(scope, FunctionScope):
            raise Skip("no function scope")
        is_async = func.asynchronous is not None

        # The exception handlers, in order: which retry, which give up at once (re-raising,
        # or with code of their own that the call site keeps).
        self._local_types = False
        self._per_type_delays = []
        self._small_value_notes = []
        try:
            rules = self._handler_rules(try_, loop, scope)
        except Skip as skip:
            self._engine_or(skip, func, attempt_stmts)
        retry_handlers = [h for h, kind in rules if kind == "retry"]
        give_up: list[str] = []
        for h, kind in rules:
            if kind == "retry":
                break
            if h.type is None:
                raise Skip("a bare except re-raises everything")
            give_up.extend(self._types(h.type, scope))
        if not retry_handlers:
            raise Skip("no handler retries")
        handler = retry_handlers[0]
        retry_types: list[str] = []
        type_notes: list[str] = []
        for h in retry_handlers:
            if h.type is None:
                retry_types.append("Exception")
                type_notes.append("bare except: KeyboardInterrupt and SystemExit no longer retried")
            else:
                retry_types.extend(self._types(h.type, scope))
        as_name = _as_name(handler)
        try:
            check_types(retry_types)
            check_types(give_up)
        except AmbiguousTypes as exc:
            raise Skip(str(exc)) from None

        # The counters: every name the loop machinery (header, handler, code around the try) sets.
        machinery = [*pre, *handler.body.body, *post]
        state = _assigned_names(machinery) - ({as_name} if as_name else set())
        loop_var: str | None = None
        if isinstance(loop, cst.For):
            try:
                loop_var = self._range_header(loop, scope)
            except Skip as skip:
                self._engine_or(skip, func, attempt_stmts)
            state.add(loop_var)
        saved = _saved_exception(self.handler_stmts(handler), as_name)
        if saved:
            state.discard(saved)
        # `error = str(err)`: a value of the failure kept for the code after the loop
        kept = self._kept_from_failure(handler, as_name, saved, state, attempt_stmts)
        kept_names = _assigned_names(kept)
        state -= kept_names

        attempt_node = span_or_node(setup, try_.body)
        if final:
            try:
                check_cleanup(self, final, state, as_name, _success_tail(try_))
            except Skip as skip:
                self._engine_or(skip, func, attempt_stmts)
        self._check_attempt_body(attempt_node, [*attempt_stmts, *final], style, state, loop_var)
        # the saved exception (`result = e`) that the attempt only assigns is its result
        # when attempts run out, not state for the next attempt
        only_set = {saved} if saved and not _read_in(saved, attempt_stmts) else set()
        self._check_carried(retry_handlers, attempt_stmts, state | only_set, as_name)
        stored = self._stored_in(scope, attempt_node)
        if success_flag is not None:
            stored.discard(success_flag[0])  # set after the step, at the call site
        self._assigned_attributes = {
            code(t.target)
            for t in _walk_all(attempt_node)
            if isinstance(t, cst.AssignTarget | cst.AugAssign)
            and isinstance(t.target, cst.Attribute)
        }

        inits, init_stmts = self._initial_values(loop, state, saved)
        const_stmts = self._local_constants(loop, state, scope, attempt_node, inits)

        # A test on the caught exception becomes retry_if; the rest of the handler is run.
        try:
            predicate, handler_rest, predicates = self._split_handlers(rules, state, as_name)
        except Skip as skip:
            self._engine_or(skip, func, attempt_stmts)
        simulated = handler
        if predicate is not None:
            state -= _assigned_names([s for p in predicates.values() for s in p.derived])
            self._check_predicate(predicate, scope, state, stored)
            body_rest = handler_rest or [cst.SimpleStatementLine([cst.Pass()])]
            simulated = handler.with_changes(body=handler.body.with_changes(body=body_rest))
        if kept:
            rest = [s for s in simulated.body.body if not any(s is k for k in kept)]
            rest = rest or [cst.SimpleStatementLine([cst.Pass()])]
            simulated = simulated.with_changes(body=simulated.body.with_changes(body=rest))

        def simulate(symbols: dict[str, ev.Number]) -> _Outcome:
            sim = _Simulation(self, sim_loop, pre, simulated, post, as_name, saved, inits, symbols)
            return sim.run()

        # Values known only at run time (a parameter, ``self.retries``) become symbols.
        symbols: dict[str, ev.Number] = {}
        # a countdown from a parameter (`while attempts > 0: attempts -= 1`): its value
        # when the loop starts is the run-time value the policy follows
        for name in sorted(state - {n for n, _ in inits}):
            if self._parameter_counted_in(func, name, loop, scope):
                symbols[name] = _PROBE
        flag: str | None = None
        while True:
            try:
                outcome = simulate(symbols)
                break
            except _FlagNeeded as needed:
                if flag is not None:
                    raise Skip(
                        f"the retry depends on the flags `{flag}` and `{needed.name}`"
                    ) from None
                flag = needed.name
                symbols[flag] = True
            except _NeedsValue as need:
                machinery_names = state | {n for n in (saved, as_name) if n}
                # a name the loop itself sets (``delay = e.retry_after`` in a handler) has
                # no value where the step is defined: never a run-time value of the policy
                set_in_loop = isinstance(need.what, str) and (
                    need.what.split(".", 1)[0] in self._stored_in(scope, loop)
                )
                if (
                    need.what in symbols
                    or len(symbols) >= 4
                    or set_in_loop
                    or not self._runtime_value(need.what, scope, machinery_names, stored)
                ):
                    called = self._called_parameter(func, attempt_stmts)
                    called = called or self._wrapped_parameter(func, attempt_stmts)
                    if called is None:
                        message = str(need)
                        if set_in_loop:
                            message += ", which the loop itself sets"
                        elif isinstance(need.what, str) and "(" in need.what:
                            message += (
                                ", a call made again before each wait (a run-time value is"
                                " read from a name or an attribute only)"
                            )
                        raise Skip(message) from None
                    reason = self._engine_reason(func, attempt_stmts, called, str(need))
                    raise Skip(reason) from None
                symbols[need.what] = _PROBE
            except Skip as skip:
                self._engine_or(skip, func, attempt_stmts)
        self._check_small_counts(simulate, symbols, outcome)
        if self._small_exit is not None and outcome.exit.kind != "code":
            value, threshold = self._small_exit
            raise Skip(
                f"what happens when attempts run out depends on `{value}`: at {threshold} or"
                " below the loop re-raises the exception, above it the loop ends another way"
            )
        engine = self._called_parameter(func, attempt_stmts) if symbols else None
        if engine is not None:
            raise Skip(self._engine_reason(func, attempt_stmts, engine, "", sorted(symbols)))
        if flag is not None:
            policy, outcome = self._flag_policy(simulate, symbols, flag, retry_types, give_up)
        elif symbols:
            policy = self._symbolic_policy(simulate, symbols, retry_types, give_up)
        else:
            policy = self._policy(outcome, retry_types, give_up, loop)
        if predicate is not None:
            policy.retry_if = predicate.source
        budget_notes = self._budget(outcome, policy, loop, scope, bool(symbols or flag))
        supplied_notes = self._delay_from(outcome, policy, scope, state, stored, as_name, saved)
        supplied_notes += self._type_delays(outcome, policy, as_name)
        repair_notes = self._before_retry(outcome, policy, scope, state, stored, as_name, saved)
        repair_notes = [*supplied_notes, *repair_notes]
        self._last_summary = policy.summary()
        nested = bool(symbols) or self._local_types
        notes: list[str] = [*type_notes, *repair_notes, *budget_notes]
        notes.extend(config_notes(list(symbols)))
        if value_flag is not None:
            name, falsy = value_flag[0], value_flag[2]
            value = "a falsy value" if falsy else "None"
            notes.append(
                f"when the attempt sets `{name}` to {value}, the legacy loop tried again at"
                " once; the step returns it"
            )
        if self.sleep_like:
            shown = ", ".join(f"`{name}(...)`" for name in sorted(self.sleep_like))
            notes.append(
                f"{shown} read as a sleep of its first argument; anything else it did is dropped"
            )
        if outcome.jitter:
            notes.append("random jitter becomes jitter=True (delays drawn from [d/2, d])")
        if outcome.discrete and (outcome.random_delay or outcome.full_jitter):
            notes.append(
                f"`{outcome.discrete}` drew whole steps of the range;"
                " RetryPolicy draws any value in it"
            )
        kept_at_call_site = {id(s) for s in _small_statements(list(outcome.exit.block))}
        if predicate is not None and predicate.reject:
            kept_at_call_site |= {id(s) for s in _small_statements(predicate.reject)}
        logged = [
            s
            for s in _small_statements(machinery)
            if self._is_log(s) and id(s) not in kept_at_call_site
        ]
        for log_call in logged:
            unbound = sorted(
                name
                for name in _plain_names_read(log_call) & stored
                if not self._bound_before(scope, name, loop)
            )
            if unbound:
                # `log.warning("bad %s", fixed)` where `fixed = chain.fix()` failed: the legacy
                # handler raised UnboundLocalError and ended the loop; the step would retry
                raise Skip(
                    f"the handler logs `{_first_line(code(log_call))}`, which reads"
                    f" `{unbound[0]}`, set by the attempt: when an attempt fails before setting"
                    " it, the legacy handler raises UnboundLocalError (the step would retry)"
                )
        notes.append(LOGGED_NOTE if logged else SILENT_NOTE)
        if outcome.last_sleep > 0 and outcome.attempts is not None:
            slept = "once more" if symbols else f"{outcome.last_sleep:g}s"
            notes.append(
                f"the legacy code slept {slept} after its last failed attempt;"
                " the step gives up at once"
            )
        count = policy.sources.get("max_attempts", "")
        constant = (
            count in self.constants
            or re.fullmatch(r"\d+ if .+ else \d+", count)
            or count.startswith("max(1, ")  # at least one attempt, as the legacy loop
        )
        if count and not constant and policy.max_attempts is not None:
            notes.append(
                f"a count below 1 at run time (`{count}` < 1) ran the legacy loop zero times;"
                " RetryPolicy raises ValueError for it"
            )
        notes.extend(self._small_value_notes)
        caught = [
            t
            for h, _ in rules
            for t in (self._types(h.type, scope) if h.type else ["BaseException"])
        ]
        setup_difference = setup_note(self, setup, caught)
        if setup_difference:
            notes.append(setup_difference)
        cleanup_difference = bool(final)  # its notes once the call site's code is known
        returned = unserializable_return(try_.body, code)
        if returned:
            notes.append(returned)

        tail = _success_tail(try_)  # the else block's work, after a successful attempt
        tail_reads = _names_read_in(tail) - _assigned_names(tail) if tail else set()
        if tail_reads & state:
            name = sorted(tail_reads & state)[0]
            raise Skip(f"the work after a successful attempt reads the counter `{name}`")
        # When attempts run out: which code runs, and where.
        exit_ = outcome.exit
        wrapper_body: list[cst.BaseStatement] = []
        needs_wrapper = False
        wrapper_as: str | None = None
        exhaustion_reads: set[str] = set()
        final_attempt: cst.BaseStatement | None = None
        if exit_.kind == "fallthrough":
            else_body: list[Any] = (
                list(loop.orelse.body.body) if isinstance(loop.orelse, cst.Else) else []
            )
            if else_body and _reraises_saved(else_body[0], saved):
                exit_ = _Exit("reraise")
            elif not else_body and (style == "return" or (tail and _exits(tail[-1]))):
                # success leaves the function: the code after the loop runs only when
                # attempts ran out
                following = _following(func, loop)
                half_done = _names_read_in(following) & stored
                if half_done:
                    name = sorted(half_done)[0]
                    raise Skip(f"when attempts run out the code after the loop reads `{name}`")
                if following and _reraises_saved(following[0], saved):
                    exit_ = _Exit("reraise")
                elif following and self._is_final_attempt(following[0], attempt_stmts):
                    # `return call()` once more after the loop: one more attempt
                    self._final_attempt(policy, outcome, notes)
                    exit_ = _Exit("reraise")
                    final_attempt = following[0]
                else:
                    needs_wrapper = True
                    exhaustion_reads = _names_read_in(following)
            elif else_body and _exits(else_body[-1]):
                needs_wrapper = True
                wrapper_body = else_body
                exhaustion_reads = _names_read_in(else_body)
            elif not else_body and style == "break":
                # the code after the loop runs after a success and when attempts ran out,
                # with the values the attempts left: the step's last error is caught where
                # the loop was, so it runs the same (`created = None` before the loop is
                # the fallback value)
                left = self._read_outside(scope, loop, stored) - {saved}
                for name in sorted(left):
                    if not _set_only_by_last(name, attempt_stmts):
                        raise Skip(
                            "when attempts run out the code after the loop reads"
                            f" `{name}`, which a failed attempt may have set"
                        )
                needs_wrapper = True
            else:
                raise Skip("when attempts run out the loop falls through to the code after it")
            if needs_wrapper and saved:
                wrapper_as = as_name or "exc"
                assign = cst.parse_statement(f"{saved} = {wrapper_as}\n")
                wrapper_body = [assign, *wrapper_body]
        elif exit_.kind == "code":
            needs_wrapper = True
            wrapper_as = as_name
            wrapper_body = list(exit_.block)
            if self._small_exit is not None:
                # `if attempt == 0: raise` reached only for a small run-time count
                value, threshold = self._small_exit
                guard = cst.parse_statement(f"if {value} <= {threshold}:\n    raise\n")
                wrapper_body = [guard, *wrapper_body]
            # a message built in the block (`msg = _("...")`) is not a counter
            exhaustion_reads = _names_read_in(wrapper_body) - _assigned_names(wrapper_body)
            # `error_msg = _("...")` set by the handler before it: kept in front of it
            prelude = message_prelude(self, handler, wrapper_body, exhaustion_reads & state, state)
            if prelude:
                wrapper_body = [*prelude, *wrapper_body]
                exhaustion_reads = _names_read_in(wrapper_body) - _assigned_names(wrapper_body)
            if saved:
                wrapper_body = [cst.parse_statement(f"{saved} = {as_name}\n"), *wrapper_body]
        # the predicate's `code = e.getcode()` read after the loop: the same as `kept`
        derived_after = [s for p in predicates.values() for s in p.derived]
        if derived_after:
            derived_names = _assigned_names(derived_after)
            following_reads = _names_read_in(_following(func, loop)) | _names_read_in(wrapper_body)
            if isinstance(loop.orelse, cst.Else):
                following_reads |= _names_read_in(list(loop.orelse.body.body))
            if following_reads & derived_names:
                own = predicates.get(handler)
                if own is None or _assigned_names(own.derived) != derived_names:
                    name = sorted(following_reads & derived_names)[0]
                    raise Skip(f"the code after the loop reads `{name}`, set by the handlers")
                kept = [*kept, *(d for d in own.derived if not any(d is k for k in kept))]
                kept_names |= derived_names
        if kept:
            after_loop = _names_read_in(_following(func, loop)) | _names_read_in(wrapper_body)
            if isinstance(loop.orelse, cst.Else):
                after_loop |= _names_read_in(list(loop.orelse.body.body))
            if after_loop & kept_names and style == "break":
                name = sorted(after_loop & kept_names)[0]
                raise Skip(
                    f"the code after the loop reads `{name}`, kept from a failure"
                    " before a later attempt succeeded"
                )
            if after_loop & kept_names and needs_wrapper:
                wrapper_as = wrapper_as or as_name
                wrapper_body = [*kept, *wrapper_body]
        if self._last_repairs:
            # the work the handler did after the last failed attempt: at the call site
            if not needs_wrapper:
                needs_wrapper = True
                wrapper_body = [cst.parse_statement("raise\n")]
            if as_name and as_name in _names_read_in(self._last_repairs):
                wrapper_as = wrapper_as or as_name
            wrapper_body = [*self._last_repairs, *wrapper_body]
            exhaustion_reads |= _names_read_in(self._last_repairs)
        clauses = self._give_up_clauses(
            rules, predicates, needs_wrapper, wrapper_as or as_name, wrapper_body
        )
        if clauses:
            needs_wrapper = True
            for h, kind in rules:
                read = _names_read_in([h.body]) & state if kind == "give_up" else set()
                if read:
                    shown = code(h.type) if h.type is not None else "a bare except"
                    raise Skip(
                        f"the handler for `{shown}` gives up reading the counter"
                        f" `{sorted(read)[0]}`"
                    )
            for _, _, clause_body in clauses:
                exhaustion_reads |= _names_read_in(clause_body) - _assigned_names(clause_body)
        # the code run at the call site when the step gives up sees the function's values,
        # never what an attempt set in the step (`return partial` after the last attempt)
        set_by_attempt = sorted(exhaustion_reads & stored - state - {saved, as_name})
        if set_by_attempt and (clauses or exit_.kind == "code"):
            raise Skip(
                f"the code run when the step gives up reads `{set_by_attempt[0]}`,"
                " set by the attempt"
            )
        if predicate is not None and needs_wrapper and predicate.calls:
            raise Skip(
                f"the retry decision `{_first_line(predicate.test)}` calls code that the"
                " code run when attempts run out would call once more"
            )
        if predicate is not None and needs_wrapper and not clauses:
            # the step raises a rejected exception at once: the wrapper lets it through
            wrapper_as = as_name
            guard = cst.parse_statement(f"if {negation_of(predicate.test)}:\n    raise\n")
            wrapper_body = [guard, *wrapper_body]
        if exhaustion_reads & state:
            name = sorted(exhaustion_reads & state)[0]
            raise Skip(f"when attempts run out the code reads the counter `{name}`")
        end = self._range(loop).end
        for name in sorted(state):
            for access in scope.accesses[name]:
                start = self._range(access.node).start
                if (start.line, start.column) >= (end.line, end.column):
                    raise Skip(f"the counter `{name}` is read after the loop")

        if cleanup_difference:
            after_code = [*wrapper_body, *(s for c in clauses for s in c[2])]
            waits = bool(outcome.delays and any(outcome.delays)) or policy.delay_from is not None
            notes.extend(
                cleanup_notes(
                    self, final, caught, waits, policy.before_retry is not None, after_code
                )
            )
        # Data flow between the attempt body and the rest of the function.
        read_outside = self._read_outside(
            scope, loop, stored, after_only=not self._in_outer_loop(loop)
        )
        if tail:
            read_outside |= stored & _names_read_in(tail)  # handed from the step to the else
        params = self._free_locals(scope, attempt_node, stored)
        if try_.finalbody is not None:
            params += [
                p for p in self._free_locals(scope, try_.finalbody.body, stored) if p not in params
            ]
        if policy.before_retry and needs_wrapper and (wrapper_body or clauses):
            notes.append(
                "an exception raised between attempts (by before_retry) of a type the code"
                " kept at the call site catches is now handled there; the legacy handler"
                " let it through"
            )
        plan = _Plan(
            machinery=code(loop.with_changes(body=body.with_changes(body=[*pre, *post])))
            + "".join(code(h) for h in try_.handlers),
            policy=policy,
            notes=notes,
            style=style,
            is_async=is_async,
            give_up=give_up,
            retry_types=retry_types,
            needs_wrapper=needs_wrapper,
            wrapper_as=wrapper_as,
            wrapper_body=wrapper_body,
            nested=nested,
            counter=self._counter_read,
            success_flag=success_flag[0] if success_flag else None,
            bumps=bumps,
            clauses=clauses,
            setup=[body.body.index(s) for s in setup],
        )
        if success_flag is not None:
            plan.flag_read_after = self._flag_read_after(success_flag[0], scope, loop)
        if self._counter_read is not None:
            plan.notes.append(
                f"`{self._counter_read[0]}` is read from toolkit.current_step().attempt"
            )
        if (
            style == "return"
            and exit_.kind == "reraise"
            and not clauses
            and not self._last_repairs
            and not nested
            and self._whole_function(func, loop, init_stmts, saved, const_stmts)
        ):
            plan.whole_function = True
            self._remove_inits(init_stmts, state, saved, scope, loop, keep_saved=False)
            return plan
        if style == "return" and read_outside:
            name = sorted(read_outside)[0]
            raise Skip(f"the attempt body assigns `{name}`, read after the loop")
        if _uses_zero_arg_super(attempt_node) or (
            try_.finalbody is not None and _uses_zero_arg_super(try_.finalbody)
        ):
            plan.super_of = self._super_arguments(func)
            cls_name, first_param = plan.super_of
            plan.notes.append(
                f"`super()` in the step became `super({cls_name}, {first_param})`: a step"
                " defined apart from the method has no implicit class (the same class unless"
                f" the module rebinds `{cls_name}`)"
            )
        mangled = None if nested else _private_name(attempt_node)
        if mangled is None and not nested and try_.finalbody is not None:
            mangled = _private_name(try_.finalbody)
        if mangled is not None:
            raise Skip(f"the attempt body uses the class-private name `{mangled}`")
        if style == "break" and _contains_return(attempt_stmts):
            raise Skip("the attempt body both returns and breaks out of the loop")
        shared = _assigned_names(attempt_stmts) & _declared_global(func)
        if shared:
            raise Skip(
                f"the attempt body assigns `{sorted(shared)[0]}`, declared global or nonlocal"
            )
        counter = self._counter_read[0] if self._counter_read else None
        params = [p for p in params if p != counter]  # read from current_step() instead
        if plan.super_of is not None and plan.super_of[1] not in params:
            params.insert(0, plan.super_of[1])  # `super(Cls, self)` reads it
        plan.params = [] if nested else params  # a nested step reads them from its closure
        plan.outputs = sorted(read_outside, key=lambda n: self._first_store(scope, n, attempt_node))
        if plan.outputs and not any("may not serialize" in n for n in plan.notes):
            handed_back = unserializable_return(try_.body, code, plan.outputs)
            if handed_back and "may not serialize" in handed_back:
                plan.notes.append(handed_back)
        plan.step_name = self._step_name(try_.body, func, scope if nested else None)
        plan.top_level = None if nested else self._top_level(func)
        if nested:
            plan.notes.append(
                "the step is defined in the function: its policy uses run-time values"
            )
        keep_saved = bool(saved) and needs_wrapper
        self._remove_inits(init_stmts, state, saved, scope, loop, keep_saved=keep_saved)
        # a constant only the loop read goes with it; one the code kept at the call site
        # reads (`f"failed after {max_retries} attempts"`) stays
        kept_reads = _names_read_in([*wrapper_body, *tail])
        for stmt in const_stmts:
            small = stmt.body[0]
            assert isinstance(small, cst.Assign) and isinstance(small.targets[0].target, cst.Name)
            if small.targets[0].target.value not in kept_reads:
                self.remove_stmts.add(stmt)
        if final_attempt is not None:
            self.remove_stmts.add(final_attempt)
        return plan


__all__ = ["RetryLoopCodemod"]


class _Comments(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_Comment(self, node: cst.Comment) -> None:
        self.found.append(node.value)


def _comments(nodes: Sequence[cst.CSTNode]) -> list[str]:
    visitor = _Comments()
    for node in nodes:
        node.visit(visitor)
    return visitor.found


def _lost_comments(
    loop: cst.CSTNode, written: Sequence[cst.CSTNode], above: Sequence[cst.EmptyLine]
) -> list[str]:
    """The comments of the loop, in order, that neither the code written nor the lines
    already above it hold."""
    kept = _comments(written) + [line.comment.value for line in above if line.comment]
    lost: list[str] = []
    for text in _comments([loop]):
        if text in kept:
            kept.remove(text)
        else:
            lost.append(text)
    return lost


def _break_after(try_: cst.Try, post: Sequence[Any]) -> bool:
    """Only ``break`` follows the try, and every handler ends with ``continue`` or
    ``raise``: the attempt's success is what reaches the ``break``."""
    if len(post) != 1 or not _last_small_is(post[0], cst.Break) or not try_.handlers:
        return False
    if len(post[0].body) != 1 or try_.finalbody is not None:
        return False
    return all(
        h.body.body
        and (
            _last_small_is(h.body.body[-1], cst.Continue)
            or _last_small_is(h.body.body[-1], cst.Raise)
        )
        for h in try_.handlers
        if isinstance(h.body, cst.IndentedBlock)
    ) and all(isinstance(h.body, cst.IndentedBlock) for h in try_.handlers)


def _plain_names_read(node: cst.CSTNode) -> set[str]:
    """The variables ``node`` reads: its names, without attribute names (``log.warning``)
    and keyword names (``exc_info=``)."""
    nodes = [node, *_walk_all(node)]
    skip = {id(n.attr) for n in nodes if isinstance(n, cst.Attribute)}
    skip |= {id(n.keyword) for n in nodes if isinstance(n, cst.Arg) and n.keyword is not None}
    return {n.value for n in nodes if isinstance(n, cst.Name) and id(n) not in skip}
