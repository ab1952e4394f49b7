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
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NoReturn

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import (
    CodeRange,
    FunctionScope,
    GlobalScope,
    ParentNodeProvider,
    PositionProvider,
    QualifiedNameProvider,
    Scope,
    ScopeProvider,
)

from . import _evaluate as ev
from ._base import DurableCodemod, is_docstring, module_constants
from ._effects import unserializable_return
from ._handlers import (
    Predicate,
    PredicateRefused,
    gives_up,
    negation_of,
    predicate_of,
    split_predicate,
    substitute,
)
from ._loop_shapes import (
    _accesses_within,
    _as_name,
    _assigned_names,
    _ast_recursive_retry,
    _ast_retry_like,
    _attempt_body,
    _BodyFinder,
    _candidate_loops,
    _contains_return,
    _declared_global,
    _exits,
    _first_line,
    _flow_reason,
    _following,
    _function_scopes,
    _is_counter_bump,
    _is_local,
    _is_none,
    _last_small_is,
    _names_read_in,
    _nested_try_reason,
    _private_name,
    _read_in,
    _recursive_retry,
    _reraises_only,
    _reraises_saved,
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
    _within,
    _without_final_break,
    loop_header,
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
    NotABackoff,
    Policy,
    check_types,
    fit_delays,
    fit_linear,
    looks_like_class,
)
from ._recursion import ast_recursive_wrapper, recursive_wrapper
from ._small_values import check_small_values

#: the values a run-time symbol takes in the simulation: a baseline and two variations
_PROBE, _PROBES = 6, (7, 12)
_NAME_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

_LOG_METHODS = {
    "debug",
    "info",
    "warning",
    "warn",
    "error",
    "exception",
    "critical",
    "log",
    "msg",
}
_SLEEPS = {"time.sleep", "asyncio.sleep"}
#: functions and methods whose name says they only report (``report_warning``, ``log_retry``)
_LOG_FUNCTION = re.compile(
    r"^_?(log|report|warn|notify_user|to_screen|to_stderr|write_debug)(_\w+)?$|_log$"
)
_RETRY_DECORATOR_PREFIXES = ("tenacity.", "backoff.", "retrying.", "retry.", "toolkit.")
_RETRY_DECORATOR = re.compile(r"retr(y|ies)|backoff")
#: clock reads that make a time budget (``time.time()``, ``datetime.now()``)
_CLOCKS = frozenset({"time", "monotonic", "perf_counter", "now", "utcnow", "monotonic_ns"})
#: context managers that re-raise the handled exception unless told not to (oslo)
_RERAISER = re.compile(r"save_and_reraise")
#: a sleep statement as one line of a handler's work (its delay masked to compare clauses)
_SLEEP_LINE = re.compile(r"^(await )?[\w.]*sleep\(.*\)$")
#: the name of a helper that waits (``_backoff``, ``wait_before_retry``, ``jitter_sleep``)
_WAITS = re.compile(r"backoff|sleep|wait|delay|pause", re.I)


@dataclass
class _Plan:
    """What to do with one loop (keyed by the original loop node)."""

    reason: str | None = None  # set: skipped
    summary: str = ""  # the policy read, also when skipped after reading it
    counter: tuple[str, int] | None = None  # the loop counter the attempt reads, its start
    bumps: int = 0  # counter updates that open the try: dropped from the step's body
    whole_function: bool = False
    policy: Policy | None = None
    notes: list[str] = field(default_factory=list)
    style: Literal["return", "break"] = "return"
    params: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    step_name: str = ""
    is_async: bool = False
    wrapper_as: str | None = None
    wrapper_body: Sequence[cst.BaseStatement] = ()
    needs_wrapper: bool = False
    give_up: list[str] = field(default_factory=list)
    retry_types: list[str] = field(default_factory=list)
    top_level: cst.CSTNode | None = None
    machinery: str = ""  # source of the loop code that disappears (header, handlers)
    nested: bool = False  # the step is defined in the function, before the loop
    #: ``success = True`` ending the attempt (a success flag the ``while`` test reads), and
    #: whether the code after the loop reads it (then it is set after the step)
    success_flag: str | None = None
    flag_read_after: bool = False
    #: the call site's except clauses (types, as-name, body) when handlers give up their
    #: own way (``raise Domain(e)``, ``return ""``): the legacy handlers' order, kept
    clauses: list[tuple[str | None, str | None, list[Any]]] = field(default_factory=list)


class RetryLoopCodemod(DurableCodemod):
    """Rewrite hand-rolled retry loops into ``@step(retry=RetryPolicy(...))``."""

    SELECTOR = "retry-loop"
    DESCRIPTION = "Rewrite hand-rolled retry loops into durable steps with a RetryPolicy."
    METADATA_DEPENDENCIES: ClassVar[tuple[Any, ...]] = (
        PositionProvider,
        ScopeProvider,
        QualifiedNameProvider,
        ParentNodeProvider,
    )

    @classmethod
    def might_apply(cls, source: str) -> bool:
        """Cheap pre-check with :mod:`ast`: is there a loop around a ``try`` at all?"""
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return True  # let libcst report it
        for node in ast.walk(tree):
            if isinstance(node, ast.For | ast.AsyncFor | ast.While) and _ast_retry_like(node):
                return True
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                _ast_recursive_retry(node) or ast_recursive_wrapper(node)
            ):
                return True
        return False

    def __init__(self, context: Any, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.source_module: cst.Module = cst.Module(body=[])
        self.constants: dict[str, ev.Number] = {}
        self.plans: dict[cst.CSTNode, _Plan] = {}
        self.function_plans: dict[cst.FunctionDef, _Plan] = {}
        self.recursions: dict[cst.FunctionDef, str] = {}  # retries by calling itself
        self.remove_stmts: set[cst.CSTNode] = set()
        self.new_functions: dict[cst.CSTNode, list[cst.FunctionDef]] = {}
        self.taken_names: set[str] = set()
        self._last_summary = ""
        self.sleep_like: set[str] = set()

    # ------------------------------------------------------------------ visit
    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.source_module = node
        scope = self.get_metadata(ScopeProvider, node, None)
        if isinstance(scope, GlobalScope):
            self.taken_names = {a.name for a in scope.assignments}
            self.constants = module_constants(node, scope)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        recursion = _recursive_retry(node, self.source_module.code_for_node)
        if recursion is None and node.params.star_kwarg is not None:
            engine_of = self._called_parameter(node, node.body.body)
            recursion = recursive_wrapper(node, self.source_module.code_for_node, engine_of)
        if recursion is not None:
            self.recursions[node] = recursion
        loops = list(_candidate_loops(node.body))
        if not loops:
            return True
        decorated = self._retry_decorator(node)
        for loop in loops:
            if not self._retry_like(loop):
                continue  # a search or polling loop: not a retry, nothing to report
            if decorated:
                plan = _Plan(reason=f"nested retries: the function already has @{decorated}")
            else:
                try:
                    plan = self._analyse(node, loop)
                except Skip as skip:
                    plan = _Plan(reason=str(skip), summary=self._last_summary)
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
        attempt_body = _attempt_body(updated, plan.style, plan.bumps, bool(plan.success_flag))
        func = self._step_function(plan, attempt_body)
        replacement = self._call_site(plan, updated)
        if plan.nested:
            func = func.with_changes(leading_lines=updated.leading_lines)
            first = replacement[0].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            return cst.FlattenSentinel([func, first, *replacement[1:]])
        assert plan.top_level is not None
        self.new_functions.setdefault(plan.top_level, []).append(func)
        first = replacement[0].with_changes(leading_lines=updated.leading_lines)
        return cst.FlattenSentinel([first, *replacement[1:]])

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        if original_node in self.remove_stmts:
            return cst.RemoveFromParent()
        return updated_node

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
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
        attempt = [*self._counter_stmt(plan), *_attempt_body(loop, "return", plan.bumps)]
        # comments above the loop now stand above the attempt's first statement
        above = [line for line in loop.leading_lines if line.comment is not None]
        first = attempt[0]
        keep.append(first.with_changes(leading_lines=[*above, *first.leading_lines]))
        keep.extend(attempt[1:])
        decorators = [*updated_node.decorators, self.decorator_for(plan.policy)]
        self._drop_imports(plan.machinery)
        return updated_node.with_changes(
            decorators=decorators, body=updated_node.body.with_changes(body=keep)
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
    def _step_function(self, plan: _Plan, attempt_body: list[cst.BaseStatement]) -> cst.FunctionDef:
        assert plan.policy is not None
        body = [*self._counter_stmt(plan), *attempt_body]
        if plan.style == "break" and plan.outputs:
            value = ", ".join(plan.outputs)
            body.append(cst.parse_statement(f"return {value}\n"))
        params = cst.Parameters(params=[cst.Param(cst.Name(p)) for p in plan.params])
        self._drop_imports(plan.machinery)
        return cst.FunctionDef(
            name=cst.Name(plan.step_name),
            params=params,
            body=cst.IndentedBlock(body=body),
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
        as_part = f" as {plan.wrapper_as}" if plan.wrapper_as else ""
        handlers.append(f"except {_types_src(plan.retry_types)}{as_part}:\n    pass\n")
        template = cst.parse_statement(f"try:\n    {inner}" + "".join(handlers))
        assert isinstance(template, cst.Try)
        last = template.handlers[-1]
        body = list(plan.wrapper_body) or [cst.SimpleStatementLine([cst.Pass()])]
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
        self._counter_read: tuple[str, int] | None = None
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
            raise Skip(_nested_try_reason(body.body, code))
        if len(tries) != 1:
            raise Skip("the loop body has more than one try")
        index = tries[0]
        try_ = body.body[index]
        if isinstance(try_, cst.TryStar):
            raise Skip("except* is not supported")
        assert isinstance(try_, cst.Try)
        pre, post = list(body.body[:index]), list(body.body[index + 1 :])
        if try_.finalbody is not None:
            raise Skip("the try has a finally block that runs after every attempt")
        style = _success_style(try_)
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
        bumps = 0  # `attempts += 1` first in the try: loop machinery, not attempt work
        while len(attempt_stmts) > 1 and _is_counter_bump(attempt_stmts[0]):
            pre = [*pre, attempt_stmts.pop(0)]
            bumps += 1
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
        self._per_type_delays: list[tuple[str, float]] = []
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

        attempt_node = try_.body
        self._check_attempt_body(attempt_node, attempt_stmts, style, state, loop_var)
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
                if (
                    need.what in symbols
                    or len(symbols) >= 4
                    or not self._runtime_value(need.what, scope, machinery_names, stored)
                ):
                    called = self._called_parameter(func, attempt_stmts)
                    called = called or self._wrapped_parameter(func, attempt_stmts)
                    if called is None:
                        raise Skip(str(need)) from None
                    reason = self._engine_reason(func, attempt_stmts, called, str(need))
                    raise Skip(reason) from None
                symbols[need.what] = _PROBE
            except Skip as skip:
                self._engine_or(skip, func, attempt_stmts)
        self._check_small_counts(simulate, symbols, outcome)
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
        logged = [s for s in _small_statements(machinery) if self._is_log(s)]
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
        if logged:
            notes.append("log calls between attempts were dropped")
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
            # a message built in the block (`msg = _("...")`) is not a counter
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
            set_by_attempt = sorted(exhaustion_reads & stored - state)
            if set_by_attempt:
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

        # Data flow between the attempt body and the rest of the function.
        read_outside = self._read_outside(scope, loop, stored)
        if tail:
            read_outside |= stored & _names_read_in(tail)  # handed from the step to the else
        params = self._free_locals(scope, attempt_node, stored)
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
        if _uses_zero_arg_super(attempt_node):
            raise Skip("the attempt body calls super() without arguments")
        mangled = None if nested else _private_name(attempt_node)
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
        plan.params = [] if nested else params  # a nested step reads them from its closure
        plan.outputs = sorted(read_outside, key=lambda n: self._first_store(scope, n, attempt_node))
        plan.step_name = self._step_name(attempt_node, func, scope if nested else None)
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

    def _budget(
        self,
        outcome: _Outcome,
        policy: Policy,
        loop: cst.For | cst.While,
        scope: Scope,
        run_time: bool,
    ) -> list[str]:
        """``start = clock()`` before the loop and ``if clock() - start > B: raise`` before a
        constant wait ``W``: the legacy loop retries while ``elapsed <= B``, RetryPolicy while
        ``elapsed + W <= max_elapsed``, so ``max_elapsed = B + W`` is the same budget."""
        if outcome.budget is None:
            return []
        limit, start, clock, waited = outcome.budget
        shown = f"`{clock} - {start} > {limit:g}`"
        if run_time:
            raise Skip(f"the time budget {shown} comes with run-time values")
        if (
            policy.backoff != 1
            or policy.increment
            or policy.random_delay
            or policy.jitter
            or policy.full_jitter
            or policy.delay_from
            or policy.initial_delay <= 0
        ):
            raise Skip(
                f"the time budget {shown} is checked before waits that change:"
                " max_elapsed counts the wait, the legacy test did not"
            )
        if start in _assigned_names(list(loop.body.children)):
            raise Skip(
                f"the time budget restarts (`{start}` is set in the loop):"
                " a budget reset by progress"
            )
        setter = None
        for stmt in self._block_of(loop):
            if stmt is loop:
                break
            if (
                isinstance(stmt, cst.SimpleStatementLine)
                and len(stmt.body) == 1
                and isinstance(stmt.body[0], cst.Assign)
                and len(stmt.body[0].targets) == 1
                and isinstance(stmt.body[0].targets[0].target, cst.Name)
                and stmt.body[0].targets[0].target.value == start
            ):
                same = self.source_module.code_for_node(stmt.body[0].value) == clock
                setter = stmt if same else None
        if setter is None:
            raise Skip(
                f"the time budget {shown} starts at `{start}`, not set by `{clock}` before the loop"
            )
        if not self._read_outside(scope, loop, {start}):
            self.remove_stmts.add(setter)  # only the budget read it
        wait = policy.initial_delay
        if waited:
            # tested after the wait: the legacy loop retried while elapsed + W <= B, as
            # max_elapsed=B does, but it waited once more before giving up
            policy.max_elapsed = limit
            return [
                f"the time budget {shown} became max_elapsed={limit:g}, counted from the first"
                f" attempt; the legacy code waited {wait:g}s more before giving up, the step"
                " gives up at once"
            ]
        policy.max_elapsed = limit + wait
        return [
            f"the time budget {shown} became max_elapsed={limit + wait:g} (the budget plus"
            f" the {wait:g}s wait: RetryPolicy stops before a wait that would pass it), counted"
            " from the first attempt"
        ]

    def _engine_reason(
        self,
        func: cst.FunctionDef,
        attempt: Sequence[cst.CSTNode],
        called: str,
        why: str,
        symbols: Sequence[str] = (),
    ) -> str:
        """Why a retry engine is refused: the function it retries and the policy (counts,
        delays, a time budget) come from its callers, so the policy is not in the code."""
        code = self.source_module.code_for_node
        params: list[str] = []
        node: cst.CSTNode | None = func
        while node is not None:
            if isinstance(node, cst.FunctionDef):
                p = node.params
                params += [q.name.value for q in (*p.posonly_params, *p.params, *p.kwonly_params)]
            node = self.get_metadata(ParentNodeProvider, node, None)
        skipped = {id(s) for s in attempt}
        in_attempt = {
            n.value for s in attempt for n in [s, *_walk_own(s)] if isinstance(n, cst.Name)
        }
        knobs: list[str] = list(symbols)
        clocks: list[str] = []
        stack: list[cst.CSTNode] = [s for s in func.body.body if id(s) not in skipped]
        while stack:
            sub = stack.pop(0)
            if id(sub) in skipped:
                continue
            if (
                isinstance(sub, cst.Attribute)
                and isinstance(sub.value, cst.Name)
                and sub.value.value in ("self", "cls")
                and sub.value.value in params
            ):
                if code(sub) not in knobs:
                    knobs.append(code(sub))
                continue
            if (
                isinstance(sub, cst.Name)
                and sub.value in params
                and sub.value not in (called, "self", "cls", *knobs, *in_attempt)
            ):
                knobs.append(sub.value)
            if isinstance(sub, cst.Call) and not sub.args:
                name = code(sub.func).rsplit(".", 1)[-1]
                if name in _CLOCKS and code(sub) not in clocks:
                    clocks.append(code(sub))
            if not isinstance(sub, cst.FunctionDef | cst.ClassDef | cst.Lambda):
                stack.extend(sub.children)
        chosen = ", ".join(f"`{k}`" for k in knobs[:6])
        reason = f"a retry engine: it retries `{called}`, which its callers pass in"
        if chosen:
            reason += f", with a policy they choose ({chosen})"
        if clocks:
            reason += f" and a time budget read from `{clocks[0]}`"
        reason += ": make the functions they pass steps instead"
        if why and not clocks:
            reason += f" ({why})"
        return reason

    def _wrapped_parameter(self, func: cst.FunctionDef, stmts: Sequence[cst.CSTNode]) -> str | None:
        """A decorator's wrapper that hands the decorated function on (``call(func, *args)``):
        a parameter of a function *around* ``func`` passed as an argument in the attempt."""
        outer: set[str] = set()
        node = self.get_metadata(ParentNodeProvider, func, None)
        while node is not None:
            if isinstance(node, cst.FunctionDef):
                p = node.params
                outer |= {q.name.value for q in (*p.posonly_params, *p.params)}
            node = self.get_metadata(ParentNodeProvider, node, None)
        outer -= {"self", "cls"}
        for stmt in stmts:
            for sub in _walk_own(stmt):
                if isinstance(sub, cst.Call):
                    for arg in sub.args:
                        if isinstance(arg.value, cst.Name) and arg.value.value in outer:
                            return arg.value.value
        return None

    def _called_parameter(self, func: cst.FunctionDef, stmts: Sequence[cst.CSTNode]) -> str | None:
        """A parameter of ``func`` or of a function around it that the attempt calls:
        ``func(*args, **kwargs)`` in a decorator's wrapper, ``do()`` in a retry helper."""
        params: set[str] = set()
        node: cst.CSTNode | None = func
        while node is not None:
            if isinstance(node, cst.FunctionDef):
                p = node.params
                every = [*p.posonly_params, *p.params, *p.kwonly_params]
                params |= {param.name.value for param in every}
                for star in (p.star_arg, p.star_kwarg):
                    if isinstance(star, cst.Param):
                        params.add(star.name.value)
            node = self.get_metadata(ParentNodeProvider, node, None)
        for stmt in stmts:
            for sub in _walk_own(stmt):
                called = sub.func if isinstance(sub, cst.Call) else None
                if isinstance(called, cst.Name) and called.value in params:
                    return called.value
        return None

    def _before_retry(
        self,
        outcome: _Outcome,
        policy: Policy,
        scope: Scope,
        state: set[str],
        stored: set[str],
        as_name: str | None,
        saved: str | None,
    ) -> list[str]:
        """The work the handler does before each retry (calls, ``del self.conn``, an ``if``
        of those) becomes ``before_retry``: the exception it reads is ``state.exception``,
        a counter ``state.attempt`` plus a constant. The same work done after the last
        failed attempt moves to the call site (``self._last_repairs``)."""
        self._last_repairs: list[cst.BaseStatement] = []
        if not outcome.repairs and not outcome.last_repairs:
            return []
        code = self.source_module.code_for_node
        for node in outcome.last_repairs:
            text = code(node)
            read = _names_read_in([node])
            if read & state:
                raise Skip(
                    f"the handler runs `{_first_line(text)}` once attempts run out, reading"
                    f" the counter `{sorted(read & state)[0]}`"
                )
            if read & stored:
                raise Skip(
                    f"the handler runs `{_first_line(text)}` once attempts run out, reading"
                    f" `{sorted(read & stored)[0]}`, set by the attempt"
                )
            if isinstance(node, cst.BaseSmallStatement):
                node = cst.SimpleStatementLine(
                    body=[node.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)]
                )
            self._last_repairs.append(node)
        if not outcome.repairs:
            return []
        notes: list[str] = []
        rendered: list[str] = []
        uses_state = False
        for node in outcome.repairs:
            text = code(node)
            self._delay_helper(node)
            if any(isinstance(n, cst.Await) for n in _walk_all(node)) or "await " in text:
                raise Skip(f"the handler awaits `{_first_line(text)}` between attempts")
            expression = self._repair_expression(node)
            names = ev.names(ev.parse(expression))
            values: dict[str, str] = {}
            for name in sorted(names):
                if name in (as_name, saved):
                    values[name] = "state.exception"
                elif name in state:
                    values[name] = self._counter_from_attempt(outcome, node, name, text)
                elif name in stored:
                    raise Skip(
                        f"the handler runs `{_first_line(text)}`, which reads `{name}`,"
                        " set by the attempt"
                    )
                elif _is_local(scope, name):
                    self._local_types = True  # the hook reads the function's values
            uses_state = uses_state or bool(values)
            rendered.append(" ".join(substitute(expression, values).split()))
        body = rendered[0] if len(rendered) == 1 else f"({', '.join(rendered)})"
        policy.before_retry = f"lambda {'state' if uses_state else '_state'}: {body}"
        shown = ", ".join(f"`{_first_line(code(n))}`" for n in outcome.repairs)
        notes.append(f"{shown} runs between attempts as before_retry")
        return notes

    def _delay_from(
        self,
        outcome: _Outcome,
        policy: Policy,
        scope: Scope,
        state: set[str],
        stored: set[str],
        as_name: str | None,
        saved: str | None,
    ) -> list[str]:
        """``sleep(e.retry_after)``: the failure supplies the delay, ``delay_from`` (uncapped,
        as the legacy sleep was)."""
        if outcome.supplied is None:
            return []
        code = self.source_module.code_for_node
        text = " ".join(code(outcome.supplied).split())
        if not outcome.supplied_every:
            raise Skip(f"the handler sleeps `{text}`, read from the failure, before some retries")
        if policy.initial_delay or policy.increment or policy.random_delay or policy.jitter:
            raise Skip(f"the handler sleeps `{text}`, read from the failure, and another delay")
        param = as_name or "exc"
        for name in sorted(ev.names(ev.parse(text))):
            if name in state:
                raise Skip(f"the delay `{text}`, read from the failure, reads the counter `{name}`")
            if name in stored:
                raise Skip(f"the delay `{text}` reads `{name}`, set by the attempt")
            if name not in (as_name, saved) and _is_local(scope, name):
                self._local_types = True
        if saved and saved != param:
            text = substitute(text, {saved: param})
        policy.delay_from = f"lambda {param}: {text}"
        policy.max_delay = math.inf  # the legacy sleep had no cap
        notes = [
            f"the delay `{text}` comes from the failure: delay_from, without a cap",
            # time.sleep(None) raises TypeError, time.sleep(-1) ValueError: the legacy handler
            # ended there, where RetryPolicy reads None as "no delay supplied" and clamps at 0
            f"where `{text}` is None or below 0 the legacy sleep raised (TypeError,"
            " ValueError) and ended the loop; the step waits 0s and tries again",
        ]
        if outcome.supplied_last and outcome.attempts is not None:
            notes.append(
                f"the legacy code slept `{text}` after its last failed attempt;"
                " the step gives up at once"
            )
        return notes

    def _type_delays(self, outcome: _Outcome, policy: Policy, as_name: str | None) -> list[str]:
        """Clauses that wait different constant delays: ``delay_from`` picks the delay of
        the clause the failure would have met."""
        if not self._per_type_delays:
            return []
        if outcome.supplied is not None or policy.delay_from is not None:
            raise Skip("the handlers wait a delay read from the failure and constant ones")
        if (
            policy.backoff != 1
            or policy.increment
            or policy.random_delay
            or policy.jitter
            or policy.sources.get("initial_delay")
        ):
            raise Skip("the handlers retry differently: delays that change with the attempt")
        param = as_name or "exc"
        *firsts, (_, last) = self._per_type_delays
        text = f"{_num_text(last)}"
        for types, delay in reversed(firsts):
            text = f"{_num_text(delay)} if isinstance({param}, {types}) else {text}"
        policy.delay_from = f"lambda {param}: {text}"
        policy.initial_delay = 0.0
        policy.max_delay = math.inf
        shown = ", ".join(f"{_num_text(d)}s after `{t}`" for t, d in self._per_type_delays)
        notes = [f"the clauses wait different delays ({shown}): delay_from picks it"]
        if outcome.last_sleep > 0 and outcome.attempts is not None:
            notes.append(
                "the legacy code slept once more after its last failed attempt;"
                " the step gives up at once"
            )
            outcome.last_sleep = 0.0  # said here, with the delay of the clause that met it
        return notes

    def _check_small_counts(
        self, simulate: Any, symbols: dict[str, ev.Number], outcome: _Outcome
    ) -> None:
        """A run-time count of 0 or 1 must end the loop the way larger ones do: ``if attempt
        == 0: raise`` else ``raise MaxRetries(...)`` is not one policy."""
        code = self.source_module.code_for_node
        for name, value in symbols.items():
            if isinstance(value, bool):
                continue
            for small in (0, 1):
                try:
                    probe = simulate({**symbols, name: small})
                except (Skip, ArithmeticError, ValueError, TypeError):
                    continue  # a loop that never runs: the count-below-1 note says it
                same = probe.exit.kind == outcome.exit.kind and [
                    id(s) for s in probe.exit.block
                ] == [id(s) for s in outcome.exit.block]
                if same:
                    continue

                def said(exit_: _Exit) -> str:
                    if exit_.kind == "reraise":
                        return "re-raises the exception"
                    if exit_.kind == "fallthrough":
                        return "falls through to the code after the loop"
                    last = exit_.block[-1] if exit_.block else None
                    return f"runs `{_first_line(code(last))}`" if last is not None else "ends"

                raise Skip(
                    f"what happens when attempts run out depends on `{name}`: when it is"
                    f" {small} the loop {said(probe.exit)}, else it {said(outcome.exit)}"
                )

    def _repair_expression(self, node: cst.CSTNode) -> str:
        """A repair as one expression: the call; ``delattr(obj, "name")`` for ``del
        obj.name``; ``(a() if test else b())`` for an if statement."""
        code = self.source_module.code_for_node
        if isinstance(node, cst.Expr):
            return code(node.value)
        if isinstance(node, cst.Del):
            target = node.target
            elements = target.elements if isinstance(target, cst.Tuple) else [cst.Element(target)]
            parts = []
            for element in elements:
                attr = element.value
                assert isinstance(attr, cst.Attribute)
                parts.append(f"delattr({code(attr.value)}, {attr.attr.value!r})")
            return parts[0] if len(parts) == 1 else f"({', '.join(parts)})"
        if isinstance(node, cst.If):

            def calls_of(suite: cst.BaseSuite) -> str:
                calls = [
                    code(small.value)
                    for inner in suite.body
                    if isinstance(inner, cst.SimpleStatementLine)
                    for small in inner.body
                    if isinstance(small, cst.Expr)
                ]
                return calls[0] if len(calls) == 1 else f"({', '.join(calls)})"

            then = calls_of(node.body)
            orelse = "None"
            if isinstance(node.orelse, cst.If):
                orelse = self._repair_expression(node.orelse)
            elif isinstance(node.orelse, cst.Else):
                orelse = calls_of(node.orelse.body)
            return f"({then} if {code(node.test)} else {orelse})"
        raise Skip(f"the handler runs `{_first_line(code(node))}` between attempts")

    def _counter_from_attempt(
        self, outcome: _Outcome, node: cst.CSTNode, name: str, text: str
    ) -> str:
        """``attempt`` read by a repair: ``state.attempt + c`` when it was the failed
        attempt's number plus a constant every time."""
        seen = [v.get(name) for v in outcome.repair_values.get(id(node), [])]
        numbers = [v for v in seen if v is not None]
        offsets = {v - n for n, v in enumerate(numbers, start=1)}
        if len(seen) < 2 or len(numbers) != len(seen) or len(offsets) != 1:
            raise Skip(f"the handler runs `{_first_line(text)}`, which reads `{name}`")
        offset = offsets.pop()
        if not float(offset).is_integer():
            raise Skip(f"the handler runs `{_first_line(text)}`, which reads `{name}`")
        c = int(offset)
        return "state.attempt" + (f" + {c}" if c > 0 else f" - {-c}" if c < 0 else "")

    def _check_predicate(
        self, predicate: Predicate, scope: Scope, state: set[str], stored: set[str]
    ) -> None:
        """The predicate reads only the exception, constants and values the loop never
        changes; a local value makes the step be defined in place (its closure)."""
        for name in sorted(predicate.reads):
            if name in state:
                raise Skip(f"the retry decision reads both the exception and `{name}`")
            if name in stored:
                raise Skip(f"the retry decision reads `{name}`, set by the attempt")
            if _is_local(scope, name):
                self._local_types = True

    # ------------------------------------------------------------- handlers
    def _handler_rules(
        self, try_: cst.Try, loop: cst.For | cst.While, scope: Scope
    ) -> list[tuple[cst.ExceptHandler, str]]:
        """Each handler with what it does: ``reraise`` (only ``raise``), ``give_up`` (always
        ends the call its own way: ``raise Domain(e)``, ``return ""``) or ``retry``."""
        code = self.source_module.code_for_node
        self._check_retry_object(try_, loop)
        if isinstance(loop, cst.For):
            self._range_header(loop, scope)  # `for retry in (False, True)`: said first
        rules: list[tuple[cst.ExceptHandler, str]] = []
        for h in try_.handlers:
            shown = code(h.type) if h.type is not None else "a bare except"
            finder = _BodyFinder()
            h.body.visit(finder)
            if finder.asks_user:
                raise Skip(
                    f"the handler for `{shown}` asks for user input between attempts"
                    " (never a durable step)"
                )
            for node in _walk_all(h.body):
                if isinstance(node, cst.With) and any(
                    isinstance(item.item, cst.Call) and _RERAISER.search(code(item.item.func))
                    for item in node.items
                ):
                    shown_with = _first_line(code(node.items[0].item))
                    raise Skip(
                        f"the handler for `{shown}` decides inside `with {shown_with}`"
                        " (setting `reraise = False` retries, else it re-raises on leaving)"
                    )
            if _reraises_only(h):
                rules.append((h, "reraise"))
            elif gives_up(h.body.body, self._is_log):
                rules.append((h, "give_up"))
            else:
                rules.append((h, "retry"))
        return rules

    def _check_retry_object(self, try_: cst.Try, loop: cst.For | cst.While) -> None:
        """``for retry in RetryManager(...)``: handlers that report to the loop's object
        (``retry.error = err``) leave the policy to it."""
        if not isinstance(loop, cst.For) or not isinstance(loop.target, cst.Name):
            return
        name = loop.target.value
        code = self.source_module.code_for_node
        told: list[str] = []
        gives_back = False
        for h in try_.handlers:
            for node in _walk_all(h.body):
                target = getattr(node, "target", None)
                if (
                    isinstance(node, cst.AssignTarget | cst.AugAssign)
                    and isinstance(target, cst.Attribute)
                    and isinstance(target.value, cst.Name)
                    and target.value.value == name
                ):
                    told.append(code(target))
                    gives_back = gives_back or (
                        isinstance(node, cst.AugAssign)
                        and isinstance(node.operator, cst.SubtractAssign)
                    )
        if not told:
            return
        reason = (
            f"a retry object drives the loop (`for {name} in {_first_line(code(loop.iter))}`):"
            f" the handlers report to it (`{told[0]} = ...`) and it decides attempts and delays"
        )
        if gives_back:
            reason += (
                f"; `{name}.attempt -= 1` gives an attempt back when work progressed"
                " (a budget reset by progress)"
            )
        raise Skip(reason)

    def _engine_or(
        self, skip: Skip, func: cst.FunctionDef, attempt_stmts: Sequence[cst.CSTNode]
    ) -> NoReturn:
        """Re-raise ``skip``, said as a retry engine's when the attempt calls a callable
        its callers pass in (``func(*args)``): that is the first thing to know."""
        called = self._called_parameter(func, attempt_stmts)
        if called is None or str(skip).startswith("a retry engine"):
            raise skip
        raise Skip(self._engine_reason(func, attempt_stmts, called, str(skip))) from None

    def _kept_from_failure(
        self,
        handler: cst.ExceptHandler,
        as_name: str | None,
        saved: str | None,
        state: set[str],
        attempt_stmts: Sequence[cst.CSTNode],
    ) -> list[cst.SimpleStatementLine]:
        """``error = str(err)`` in the handler: a value of the failure, read after the loop
        only (not by the attempt, nor earlier in the handler). When attempts run out the
        call site computes it from the exception the step raises."""
        if as_name is None:
            return []
        code = self.source_module.code_for_node
        stmts = list(handler.body.body)
        attempt_reads = _names_read_in(list(attempt_stmts))
        found: list[cst.SimpleStatementLine] = []
        for index, stmt in enumerate(stmts):
            if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
                continue
            small = stmt.body[0]
            if not isinstance(small, cst.Assign) or len(small.targets) != 1:
                continue
            target = small.targets[0].target
            if not isinstance(target, cst.Name) or target.value in (as_name, saved):
                continue
            try:
                read = ev.names(ev.parse(code(small.value)))
            except SyntaxError:
                continue
            name = target.value
            if as_name not in read or read & (state - {name}) or name in read:
                continue
            if name in attempt_reads or name in _names_read_in(stmts[:index]):
                continue
            if sum(1 for s in stmts if name in _assigned_names([s])) != 1:
                continue
            found.append(stmt)
        return found

    def _check_carried(
        self,
        handlers: list[cst.ExceptHandler],
        attempt_stmts: Sequence[cst.CSTNode],
        state: set[str],
        as_name: str | None,
    ) -> None:
        """A handler that sets a name the attempt reads (``filename = sanitize(filename)``)
        hands state to the next attempt: a step's attempts are all the same call."""
        code = self.source_module.code_for_node
        read: set[str] = set()
        for stmt in attempt_stmts:
            try:
                tree = ast.parse(textwrap.dedent(code(stmt)))
            except SyntaxError:
                return
            read |= {
                n.id
                for n in ast.walk(tree)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            }
        for h in handlers:
            for node in _walk_all(h.body):
                if not isinstance(node, cst.AssignTarget | cst.AugAssign | cst.AnnAssign):
                    continue
                target = node.target
                targets = (
                    [e.value for e in target.elements]
                    if isinstance(target, cst.Tuple | cst.List)
                    else [target]
                )
                for t in targets:
                    if not isinstance(t, cst.Name) or t.value in state or t.value == as_name:
                        continue
                    if t.value in read:
                        raise Skip(
                            f"the handler changes `{t.value}`, which the next attempt reads"
                            " (state carried into the next attempt)"
                        )

    def _delay_helper(self, node: cst.CSTNode) -> None:
        """A call that waits in a helper (``_backoff(attempt, retry_after)``): its delay
        law is not in the loop, and as a hook it would sleep outside a durable timer."""
        code = self.source_module.code_for_node
        for sub in _walk_all(node):
            if not isinstance(sub, cst.Call):
                continue
            func = sub.func
            name = func.attr.value if isinstance(func, cst.Attribute) else None
            if isinstance(func, cst.Name):
                name = func.value
            if name is None or not _WAITS.search(name):
                continue
            origin = sorted(self.qualified(func))
            where = ""
            if origin and "." in origin[0] and not origin[0].startswith("<"):
                where = f" (from `{origin[0].rsplit('.', 1)[0]}`)"
            raise Skip(
                f"the handler waits in `{_first_line(code(sub))}`{where}, whose delay law is"
                " not in the loop: as a hook it would sleep outside the durable timer"
            )

    def _split_handlers(
        self,
        rules: list[tuple[cst.ExceptHandler, str]],
        state: set[str],
        as_name: str | None,
    ) -> tuple[Predicate | None, list[Any], dict[cst.ExceptHandler, Predicate]]:
        """The retrying handlers' tests on the exception, joined in the handlers' order into
        one ``retry_if`` (a give-up handler between them rejects its exceptions); the rest
        of the first retrying handler, which every other must repeat (log calls aside)."""
        code = self.source_module.code_for_node
        predicates: dict[cst.ExceptHandler, Predicate] = {}
        rests: dict[cst.ExceptHandler, list[Any]] = {}
        for h, kind in rules:
            if kind != "retry":
                continue
            try:
                found, rest = split_predicate(
                    h.body.body, _as_name(h), code, self._is_log, frozenset(state)
                )
            except PredicateRefused as refused:
                raise Skip(str(refused)) from None
            if found is not None:
                predicates[h] = found
            rests[h] = rest
        retrying = [h for h, kind in rules if kind == "retry"]
        first = retrying[0]

        def work(h: cst.ExceptHandler) -> list[str]:
            return [
                " ".join(code(s.with_changes(leading_lines=[])).split())
                for s in rests[h]
                if not (
                    isinstance(s, cst.SimpleStatementLine) and all(self._is_log(x) for x in s.body)
                )
            ]

        self._per_type_delays = self._delays_by_type(retrying, rests, work)
        for other in retrying[1:]:
            mine, theirs = work(first), work(other)
            if self._per_type_delays:
                mine, theirs = self._masked(mine), self._masked(theirs)
            named = _as_name(other) != _as_name(first) and any(
                n in _names_read_in(rests[h])
                for h, n in ((first, _as_name(first)), (other, _as_name(other)))
                if n
            )
            if mine == theirs and not named:
                continue
            index = next(
                (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                min(len(mine), len(theirs)),
            )

            def shown(stmts: list[str], index: int = index) -> str:
                return f"`{_first_line(stmts[index])}`" if index < len(stmts) else "nothing"

            pair = [code(h.type) if h.type is not None else "a bare except" for h in (first, other)]
            for h in (first, other):
                last = rests[h][-1] if rests[h] else None
                small = last.body[-1] if isinstance(last, cst.SimpleStatementLine) else None
                if (
                    isinstance(small, cst.Expr)
                    and isinstance(small.value, cst.Call)
                    and not self._is_log(small)
                    and self.is_sleep(small.value) is None
                ):
                    shown_type = code(h.type) if h.type is not None else "a bare except"
                    raise Skip(
                        f"the handler for `{shown_type}` calls"
                        f" `{_first_line(code(small.value.func))}(...)` and then tries again at"
                        " once: if that call ends the program it gives up, which the codemod"
                        " cannot tell"
                    )
            if named and mine == theirs:
                raise Skip(
                    f"the handlers for `{pair[0]}` and `{pair[1]}` name the exception"
                    " differently and use it"
                )
            raise Skip(
                f"the handlers for `{pair[0]}` and `{pair[1]}` retry differently:"
                f" {shown(mine)} / {shown(theirs)}"
            )
        param = as_name or next(
            (p.source.split(":", 1)[0][len("lambda ") :] for p in predicates.values()), "exc"
        )
        terms: list[tuple[str | None, str, bool]] = []  # (types, decision, retrying)
        started = False
        for h, kind in rules:
            started = started or kind == "retry"
            if not started:
                continue  # give_up_on
            types = code(h.type) if h.type is not None else None
            if kind != "retry":
                decision = "False"
            elif h in predicates:
                own = _as_name(h)
                decision = predicates[h].test
                if own and own != param:
                    decision = substitute(decision, {own: param})
            else:
                decision = "True"
            terms.append((types, decision, kind == "retry"))
        while terms and not terms[-1][2]:
            terms.pop()  # give-up handlers after the last retrying one: not in retry_on
        popped = False
        while terms and terms[-1][1] == "True":
            terms.pop()
            popped = True
        if not terms:
            return None, rests[first], predicates

        def paren(text: str) -> str:
            return (
                text if re.fullmatch(r"[\w.]+(\(.*\))?", text) and "," not in text else f"({text})"
            )

        acc: str | None = None
        for index in range(len(terms) - 1, -1, -1):
            types, decision, _ = terms[index]
            if acc is None and not popped:
                acc = decision  # the last retrying handler: whatever reaches it is its type
                continue
            guard = f"isinstance({param}, {types})" if types is not None else "True"
            if acc is None or acc == "True":
                acc = {"True": "True", "False": f"not {guard}"}.get(
                    decision, f"not {guard} or {paren(decision)}"
                )
            elif decision == "True":
                acc = f"{guard} or {paren(acc)}"
            elif decision == "False":
                acc = f"not {guard} and {paren(acc)}"
            else:
                acc = f"{paren(decision)} if {guard} else {paren(acc)}"
        if acc is None or acc == "True":
            return None, rests[first], predicates
        try:
            combined = predicate_of(acc, param)
        except PredicateRefused as refused:
            raise Skip(str(refused)) from None
        combined.calls = any(p.calls for p in predicates.values()) or combined.calls
        return combined, rests[first], predicates

    @staticmethod
    def _masked(lines: list[str]) -> list[str]:
        return [_SLEEP_LINE.sub("<sleep>", line) for line in lines]

    def _delays_by_type(
        self,
        retrying: list[cst.ExceptHandler],
        rests: dict[cst.ExceptHandler, list[Any]],
        work: Any,
    ) -> list[tuple[str, float]]:
        """Retrying clauses that differ only in a constant sleep (``except Busy:
        sleep(5)``, ``except ConnectionError: sleep(1)``): each type's delay, in order."""
        if len(retrying) < 2 or any(h.type is None for h in retrying):
            return []
        code = self.source_module.code_for_node
        delays: list[tuple[str, float]] = []
        for h in retrying:
            found: list[float] = []
            for stmt in rests[h]:
                if not isinstance(stmt, cst.SimpleStatementLine):
                    continue
                for small in stmt.body:
                    if not isinstance(small, cst.Expr):
                        continue
                    call = self.is_sleep(small.value)
                    if call is None or len(call.args) != 1:
                        continue
                    try:
                        value = ev.evaluate(ev.parse(code(call.args[0].value)), self.constants)
                    except (ev.Unknown, SyntaxError):
                        return []
                    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                        return []
                    found.append(float(value))
            if len(found) != 1:
                return []
            assert h.type is not None
            delays.append((code(h.type), found[0]))
        if len({d for _, d in delays}) == 1:
            return []  # the same delay: nothing to tell apart
        masked = {tuple(self._masked(work(h))) for h in retrying}
        return delays if len(masked) == 1 else []

    def _give_up_clauses(
        self,
        rules: list[tuple[cst.ExceptHandler, str]],
        predicates: dict[cst.ExceptHandler, Predicate],
        needs_wrapper: bool,
        exhaustion_as: str | None,
        exhaustion: list[Any],
    ) -> list[tuple[str | None, str | None, list[Any]]]:
        """The call site's except clauses, in the legacy order, when a handler gives up its
        own way (``raise Domain(e)``, ``return ""``): the step raises such exceptions at
        once and the clause does what the handler did. ``[]`` when none does."""
        own = any(kind == "give_up" for _, kind in rules) or any(
            p.reject is not None for p in predicates.values()
        )
        if not own:
            return []
        code = self.source_module.code_for_node
        reraise = cst.parse_statement("raise\n")
        if not needs_wrapper:
            exhaustion = [reraise]
        elif not exhaustion:
            exhaustion = [cst.SimpleStatementLine([cst.Pass()])]
        exhaustion_reads = _names_read_in(exhaustion)
        clauses: list[tuple[str | None, str | None, list[Any]]] = []
        for h, kind in rules:
            types = code(h.type) if h.type is not None else None
            own_as = _as_name(h)
            if kind == "reraise":
                body: list[Any] = [reraise]
                own_as = None
            elif kind == "give_up":
                body = list(h.body.body)
            else:
                body = []
                found = predicates.get(h)
                rendered_exhaustion = "".join(code(s) for s in exhaustion)
                if found is not None and not (
                    not found.derived
                    and found.reject is not None
                    and "".join(code(s) for s in found.reject) == rendered_exhaustion
                ):  # (a rejected exception meets the same code as attempts running out)
                    reject = found.reject if found.reject is not None else [reraise]
                    if found.reject_tests:
                        body = [*found.derived, *reject]  # `if a: raise A elif b: raise B`
                    else:
                        guard = cst.If(
                            test=cst.parse_expression(negation_of(found.raw_test)),
                            body=cst.IndentedBlock(body=reject),
                        )
                        body = [*found.derived, guard]
                if exhaustion_as and exhaustion_as in exhaustion_reads and own_as != exhaustion_as:
                    if own_as is not None:
                        raise Skip(
                            "the handlers name the exception differently"
                            " and the code run when attempts run out reads it"
                        )
                    own_as = exhaustion_as
                body = [*body, *exhaustion]
            rendered = "".join(code(s) for s in body)
            if clauses and types is not None:
                last_types, last_as, last_body = clauses[-1]
                joinable = last_types is not None and all(
                    looks_like_class(t) for t in (last_types, types)
                )
                if (
                    joinable
                    and last_types is not None
                    and last_as == own_as
                    and "".join(code(s) for s in last_body) == rendered
                ):
                    joined = last_types.strip("()") + ", " + types.strip("()")
                    clauses[-1] = (f"({joined})", own_as, last_body)
                    continue
            clauses.append((types, own_as, body))
        return clauses

    def _clause_wrapper(self, plan: _Plan, inner: str, tail: list[Any]) -> cst.Try:
        """``try: <call the step> except ...:`` with the legacy handlers' give-up code."""
        handlers = [
            cst.ExceptHandler(
                body=cst.IndentedBlock(body=body or [cst.SimpleStatementLine([cst.Pass()])]),
                type=cst.parse_expression(types) if types is not None else None,
                name=cst.AsName(name=cst.Name(as_)) if as_ else None,
            )
            for types, as_, body in plan.clauses
        ]
        wrapper = cst.Try(
            body=cst.IndentedBlock(body=[cst.parse_statement(inner)]), handlers=handlers
        )
        if tail:
            wrapper = wrapper.with_changes(orelse=cst.Else(body=cst.IndentedBlock(body=tail)))
        return wrapper

    def _types(self, expr: cst.BaseExpression, scope: Scope) -> list[str]:
        elements = (
            [e.value for e in expr.elements] if isinstance(expr, cst.Tuple | cst.List) else [expr]
        )
        out = []
        for element in elements:
            root = element
            while isinstance(root, cst.Attribute):
                root = root.value
            if not isinstance(root, cst.Name):
                raise Skip(
                    f"exception types `{self.source_module.code_for_node(expr)}` are computed"
                )
            if _is_local(scope, root.value):
                self._local_types = True  # known at run time: the step is defined in place
            out.append(self.source_module.code_for_node(element))
        return out

    def _range_header(self, loop: cst.For, scope: Scope) -> str:
        """The loop variable of ``for <name> in range(...)``; the bounds are simulated."""
        iterable = loop.iter
        is_range = (
            isinstance(iterable, cst.Call)
            and isinstance(iterable.func, cst.Name)
            and iterable.func.value == "range"
            and not _is_local(scope, "range")
            and not any(a.keyword or a.star for a in iterable.args)
            and 1 <= len(iterable.args) <= 2
        )
        is_count = (
            isinstance(iterable, cst.Call)
            and "itertools.count" in self.qualified(iterable.func)
            and not any(a.keyword or a.star for a in iterable.args)
            and len(iterable.args) <= 1
        )
        if _fixed_values(iterable) is not None:
            is_range = True  # `for is_first in (True, False)`: one attempt per value
        if not (is_range or is_count):
            code = self.source_module.code_for_node
            items = _failover_items(loop)
            if items:
                # `for cdn in cdns`: each attempt tries the next item, not the same call again
                raise Skip(
                    f"loops over `{code(iterable)}` rather than over attempts: each attempt"
                    f" uses the next `{items[0]}` (a failover: state carried into the next"
                    " attempt, not a retry of the same call)"
                )
            raise Skip(f"loops over `{code(iterable)}` rather than over attempts")
        target = loop.target
        if isinstance(target, cst.Name):
            return target.value
        raise Skip("the loop target is not a plain name")

    def _parameter_counted_in(
        self, func: cst.FunctionDef, name: str, loop: cst.CSTNode, scope: Scope
    ) -> bool:
        """``name`` is a parameter of ``func`` that only the loop assigns."""
        p = func.params
        if name not in {param.name.value for param in [*p.params, *p.kwonly_params]}:
            return False
        loop_range = self._range(loop)
        for assignment in scope.assignments[name]:
            node = getattr(assignment, "node", None)
            if isinstance(node, cst.Param):
                continue
            if node is None or not _within(self._range(node), loop_range):
                return False
        return True

    def _counter_start(self, name: str, stmts: Sequence[cst.CSTNode]) -> int | None:
        """The first value of ``for name in range(start, ...)`` when the attempt body only
        reads ``name`` (then ``name = current_step().attempt - 1 + start`` in the step)."""
        if name in _assigned_names(stmts):
            return None
        loop = self._current_loop
        if not isinstance(loop, cst.For) or not isinstance(loop.iter, cst.Call):
            return None
        if "itertools.count" in self.qualified(loop.iter.func):
            args = loop.iter.args
        elif len(loop.iter.args) == 2:
            args = loop.iter.args[:1]
        else:
            return 0
        if not args:
            return 0
        try:
            value = ev.evaluate(ev.parse(self.source_module.code_for_node(args[0].value)), {})
        except (ev.Unknown, SyntaxError):
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def _check_attempt_body(
        self,
        attempt_node: cst.BaseSuite,
        attempt_stmts: list[cst.BaseStatement],
        style: str,
        state: set[str],
        loop_var: str | None,
    ) -> None:
        finder = _BodyFinder()
        for stmt in attempt_stmts:
            stmt.visit(finder)
        if finder.yields:
            raise Skip("the attempt body yields")
        if finder.loop_exits:
            raise Skip("the attempt body uses break or continue")
        if finder.nested_retry:
            raise Skip("a retry loop inside the attempt body (nested retries)")
        used = finder.names & state
        self._counter_read = None
        if used == {loop_var} and loop_var is not None:
            start = self._counter_start(loop_var, attempt_stmts)
            if start is None:
                raise Skip(f"the attempt body uses the attempt counter `{loop_var}`")
            self._counter_read = (loop_var, start)  # read from current_step().attempt
            used = set()
        if used:
            name = sorted(used)[0]
            raise Skip(f"the attempt body reads `{name}`, which changes between attempts")
        if finder.asks_user:
            raise Skip("the attempt body asks for user input (never a durable step)")
        if finder.global_decl:
            raise Skip("the attempt body declares global or nonlocal names")

    def _initial_values(
        self, loop: cst.CSTNode, state: set[str], saved: str | None
    ) -> tuple[list[tuple[str, cst.BaseExpression]], dict[str, cst.SimpleStatementLine]]:
        """The counters' assignments before the loop, in the same block (``attempts = 0``,
        ``tries, delay = retries, base``), in order; evaluated by the simulation."""
        inits: list[tuple[str, cst.BaseExpression]] = []
        stmts: dict[str, cst.SimpleStatementLine] = {}
        for stmt in self._block_of(loop):
            if stmt is loop:
                break
            if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
                continue
            small = stmt.body[0]
            if not isinstance(small, cst.Assign) or len(small.targets) != 1:
                continue
            target, value = small.targets[0].target, small.value
            pairs: list[tuple[cst.BaseExpression, cst.BaseExpression]] = [(target, value)]
            if isinstance(target, cst.Tuple) and isinstance(value, cst.Tuple):
                if len(target.elements) != len(value.elements):
                    continue
                pairs = [
                    (t.value, v.value) for t, v in zip(target.elements, value.elements, strict=True)
                ]
            names = [t.value for t, _ in pairs if isinstance(t, cst.Name)]
            if len(names) != len(pairs):
                continue
            wanted = [n for n in names if n in state or n == saved]
            if not wanted:
                continue
            if len(wanted) != len(names):
                continue  # a statement that also sets something else stays as it is
            for (_, expr), name in zip(pairs, names, strict=True):
                if name == saved and not _is_none(expr):
                    break
                inits.append((name, expr))
                stmts[name] = stmt
        return inits, stmts

    def _fit(self, outcome: _Outcome) -> tuple[float, float, float | None, float]:
        """``(initial_delay, backoff, max_delay, increment)`` of the delays the simulation
        recorded: constant, exponential, or linear (``a + k * (n - 1)``)."""
        delays = outcome.delays
        if outcome.attempts is not None:
            delays = delays[: max(outcome.attempts - 1, 0)]
        try:
            initial, factor, cap = fit_delays(delays, unbounded=outcome.attempts is None)
            if cap is not None and not outcome.capped:
                raise NotABackoff("delays " + ", ".join(f"{d:g}" for d in delays[:5]))
        except NotABackoff as exc:
            linear = fit_linear(delays)
            if linear is None or outcome.attempts is None:
                raise Skip(f"sleep is not a backoff: {exc}") from None
            return linear[0], 1.0, None, linear[1]
        return initial, factor, cap, 0.0

    def _policy(
        self, outcome: _Outcome, retry_on: list[str], give_up: list[str], loop: cst.For | cst.While
    ) -> Policy:
        initial, factor, cap, increment = self._fit(outcome)
        sources = {}
        for name in sorted(ev.names(ev.parse(self.source_module.code_for_node(loop_header(loop))))):
            if self.constants.get(name) == outcome.attempts:
                sources["max_attempts"] = name
        return Policy(
            sources=sources,
            max_attempts=outcome.attempts,
            initial_delay=initial,
            backoff=factor,
            max_delay=cap,
            jitter=outcome.jitter,
            retry_on=retry_on,
            give_up_on=give_up,
            increment=increment,
            random_delay=outcome.random_delay,
            full_jitter=outcome.full_jitter,
            min_delay=outcome.min_delay,
        )

    def _runtime_value(
        self, what: str, scope: Scope, machinery: set[str], stored: set[str]
    ) -> bool:
        """``what`` (``retries``, ``self.max_retries``) is a value of the function that the
        loop only reads: the policy can name it when the step is defined in place."""
        if not _NAME_PATH.fullmatch(what):
            return False
        root = what.split(".", 1)[0]
        if root in machinery or root in stored:
            return False
        if not _is_local(scope, root) and not self._module_value(scope, root):
            return False
        return "." not in what or what not in self._assigned_attributes

    def _module_value(self, scope: Scope, name: str) -> bool:
        """``name`` is bound at module level (an imported setting, a configuration
        object): the step defined in place reads it when the function runs, as the
        loop did."""
        module = scope.globals
        return bool(module.assignments[name]) and name not in self.constants

    def _flag_policy(
        self,
        simulate: Any,
        symbols: dict[str, ev.Number],
        flag: str,
        retry_on: list[str],
        give_up: list[str],
    ) -> tuple[Policy, _Outcome]:
        """Retries allowed by a run-time flag: simulated with the flag true and false, the
        two policies may differ only in attempts, written ``N if flag else M``. Never
        "retry always": a flag read as a number would make every probe retry."""
        sides: dict[bool, tuple[Policy, _Outcome]] = {}
        for value in (True, False):
            values = {**symbols, flag: value}
            outcome = simulate(values)
            if any(not isinstance(v, bool) for v in values.values()):
                policy = self._symbolic_policy(simulate, values, retry_on, give_up)
            else:
                policy = self._policy(outcome, retry_on, give_up, self._current_loop)
            sides[value] = (policy, outcome)
        (on, on_outcome), (off, off_outcome) = sides[True], sides[False]
        if on_outcome.exit.kind != off_outcome.exit.kind or [
            id(s) for s in on_outcome.exit.block
        ] != [id(s) for s in off_outcome.exit.block]:
            raise Skip(f"what happens when attempts run out depends on the flag `{flag}`")
        if on.max_attempts is None or off.max_attempts is None:
            raise Skip(f"the retry depends on the flag `{flag}` and never ends on one side")
        retrying, single = (on, off) if on.max_attempts >= off.max_attempts else (off, on)
        if single.max_attempts != 1 and single.summary() != retrying.summary():
            raise Skip(f"the delays depend on the flag `{flag}`")
        attempts = {
            value: p.sources.get("max_attempts", str(p.max_attempts))
            for value, p in ((True, on), (False, off))
        }
        retrying.sources["max_attempts"] = f"{attempts[True]} if {flag} else {attempts[False]}"
        self._local_types = True  # the flag is read where the step is defined
        return retrying, (on_outcome if retrying is on else off_outcome)

    def _symbolic_policy(
        self,
        simulate: Any,
        symbols: dict[str, ev.Number],
        retry_on: list[str],
        give_up: list[str],
    ) -> Policy:
        """Simulate with each run-time value varied; each field of the policy must be a
        constant or follow one value (``retries``, ``retries + 1``, ``2 * base_delay``)."""
        base = simulate(symbols)
        fields = {"base": self._fields(base)}
        flags = {k: v for k, v in symbols.items() if isinstance(v, bool)}
        symbols = {k: v for k, v in symbols.items() if not isinstance(v, bool)}  # not flags
        for name in symbols:
            for probe in _PROBES:
                outcome = simulate({**flags, **symbols, name: probe})
                if outcome.exit.kind != base.exit.kind:
                    raise Skip(f"what happens when attempts run out depends on `{name}`")
                if (outcome.random_delay, outcome.full_jitter, outcome.min_delay) != (
                    base.random_delay,
                    base.full_jitter,
                    base.min_delay,
                ):
                    raise Skip(f"the random part of the delay depends on `{name}`")
                fields[f"{name}={probe}"] = self._fields(outcome)
        sources: dict[str, str] = {}
        followers: dict[str, str] = {}  # field -> the run-time value it follows
        for index, field_name in enumerate(
            ("max_attempts", "initial_delay", "backoff", "max_delay", "increment")
        ):
            depends = [
                name
                for name in symbols
                if any(fields[f"{name}={p}"][index] != fields["base"][index] for p in _PROBES)
            ]
            if len(depends) > 1:
                raise Skip(f"the {field_name} depends on both `{depends[0]}` and `{depends[1]}`")
            if depends:
                name = depends[0]
                values = [fields["base"][index]] + [fields[f"{name}={p}"][index] for p in _PROBES]
                sources[field_name] = _expression_of(field_name, name, values)
                followers[field_name] = name
        if check_small_values(simulate, flags, symbols, fields["base"], followers, base, _PROBE):
            sources["max_attempts"] = f"max(1, {sources['max_attempts']})"
        attempts, initial, factor, cap, increment = fields["base"]
        policy = Policy(
            sources=sources,
            max_attempts=attempts,
            initial_delay=initial or 0.0,
            backoff=factor or 1.0,
            max_delay=cap,
            jitter=base.jitter,
            retry_on=retry_on,
            give_up_on=give_up,
            increment=increment or 0.0,
            random_delay=base.random_delay,
            full_jitter=base.full_jitter,
            min_delay=base.min_delay,
        )
        if cap is None and (factor or 1.0) > 1 and sources:
            policy.max_delay = math.inf  # growth follows a run-time value: keep it uncapped
        return policy

    def _fields(self, outcome: _Outcome) -> tuple[Any, Any, Any, Any, Any]:
        initial, factor, cap, increment = self._fit(outcome)
        return outcome.attempts, initial, factor, cap, increment

    def _success_flag_shape(
        self,
        loop: cst.For | cst.While,
        try_: cst.Try,
        pre: Sequence[cst.BaseStatement],
        post: Sequence[cst.BaseStatement],
        scope: Scope,
    ) -> tuple[str, cst.BaseExpression] | None:
        """``while not success and <rest>:`` whose try ends with ``success = True``, the
        flag set nowhere else but ``success = False`` before the loop and read in the loop
        only by its test: the flag's name and ``<rest>``."""
        if not isinstance(loop, cst.While) or try_.orelse is not None:
            return None
        test = loop.test
        if not isinstance(test, cst.BooleanOperation) or not isinstance(test.operator, cst.And):
            return None
        name: str | None = None
        rest: cst.BaseExpression | None = None
        for side, other in ((test.left, test.right), (test.right, test.left)):
            if (
                isinstance(side, cst.UnaryOperation)
                and isinstance(side.operator, cst.Not)
                and isinstance(side.expression, cst.Name)
            ):
                name, rest = side.expression.value, other
                break
        if name is None or rest is None:
            return None
        stmts = list(try_.body.body)
        if len(stmts) < 2 or not m.matches(
            stmts[-1],
            m.SimpleStatementLine(
                body=[m.Assign(targets=[m.AssignTarget(target=m.Name(name))], value=m.Name("True"))]
            ),
        ):
            return None
        if name in _names_read_in([*stmts[:-1], *pre, *post, *try_.handlers]):
            return None
        if name in _names_read_in([cst.Expr(rest)]):
            return None
        loop_range = self._range(loop)
        nodes: list[cst.CSTNode] = []
        for assignment in scope.assignments[name]:
            node = getattr(assignment, "node", None)
            if not isinstance(node, cst.CSTNode):
                return None
            nodes.append(node)
        inside = [n for n in nodes if _within(self._range(n), loop_range)]
        before = [n for n in nodes if not _within(self._range(n), loop_range)]
        if len(inside) != 1 or len(before) != 1:
            return None
        init = next(
            (
                stmt
                for stmt in self._block_of(loop)
                if m.matches(
                    stmt,
                    m.SimpleStatementLine(
                        body=[
                            m.Assign(
                                targets=[m.AssignTarget(target=m.Name(name))],
                                value=m.Name("False"),
                            )
                        ]
                    ),
                )
            ),
            None,
        )
        if init is None or not _within(self._range(before[0]), self._range(init)):
            return None
        return name, rest

    def _flag_read_after(self, name: str, scope: Scope, loop: cst.CSTNode) -> bool:
        """The code after the loop reads the success flag (else its ``= False`` goes)."""
        loop_range = self._range(loop)
        read = any(not _within(self._range(a.node), loop_range) for a in scope.accesses[name])
        if not read:
            for stmt in self._block_of(loop):
                if m.matches(
                    stmt,
                    m.SimpleStatementLine(
                        body=[m.Assign(targets=[m.AssignTarget(target=m.Name(name))])]
                    ),
                ):
                    self.remove_stmts.add(stmt)
        return read

    def _local_constants(
        self,
        loop: cst.For | cst.While,
        state: set[str],
        scope: Scope,
        attempt_node: cst.CSTNode,
        inits: list[tuple[str, cst.BaseExpression]],
    ) -> list[cst.SimpleStatementLine]:
        """``retries = 4`` before the loop, in its block, never assigned again and read only
        by the loop's machinery (its header, its handler): a number, like a module
        constant (added to ``inits``); the statements, which go with the loop."""
        out: list[cst.SimpleStatementLine] = []
        loop_range, attempt_range = self._range(loop), self._range(attempt_node)
        for stmt in self._block_of(loop):
            if stmt is loop:
                break
            if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
                continue
            small = stmt.body[0]
            if not (
                isinstance(small, cst.Assign)
                and len(small.targets) == 1
                and isinstance(small.targets[0].target, cst.Name)
                and isinstance(small.value, cst.Integer | cst.Float)
            ):
                continue
            name = small.targets[0].target.value
            if name in state or len(scope.assignments[name]) != 1:
                continue
            readers = [self._range(a.node) for a in scope.accesses[name]]
            if not readers or not all(
                _within(r, loop_range) and not _within(r, attempt_range) for r in readers
            ):
                continue
            inits.append((name, small.value))
            out.append(stmt)
        return out

    def _is_final_attempt(self, stmt: cst.BaseStatement, attempt: Sequence[cst.CSTNode]) -> bool:
        """``return <call>`` after the loop, the same code as the attempt's only statement."""
        code = self.source_module.code_for_node
        if len(attempt) != 1 or not _last_small_is(stmt, cst.Return):
            return False
        only = attempt[0]
        if not isinstance(only, cst.SimpleStatementLine) or not isinstance(
            stmt, cst.SimpleStatementLine
        ):
            return False
        if len(only.body) != 1 or len(stmt.body) != 1:
            return False
        mine, theirs = only.body[0], stmt.body[0]
        return (
            isinstance(mine, cst.Return)
            and isinstance(theirs, cst.Return)
            and mine.value is not None
            and theirs.value is not None
            and code(mine.value) == code(theirs.value)
        )

    def _final_attempt(self, policy: Policy, outcome: _Outcome, notes: list[str]) -> None:
        """The attempt after the loop is one more attempt of the step: the wait before it
        must be the policy's next delay."""
        if outcome.attempts is None or policy.max_attempts is None:
            raise Skip("a final attempt after a loop without end")
        if outcome.repairs or self._last_repairs or outcome.jitter or outcome.random_delay:
            raise Skip("the final attempt after the loop follows work the policy cannot repeat")
        n = outcome.attempts
        expected = policy.initial_delay * policy.backoff ** (n - 1) + policy.increment * (n - 1)
        if policy.max_delay is not None:
            expected = min(expected, policy.max_delay)
        if n > 1 and policy.initial_delay == 0:
            expected = 0.0
        if abs(outcome.last_sleep - expected) > 1e-9 and not (n == 1 and outcome.last_sleep >= 0):
            raise Skip(
                f"the wait before the final attempt after the loop ({outcome.last_sleep:g}s)"
                " is not the policy's next delay"
            )
        if n == 1 and outcome.last_sleep > 0:
            policy.initial_delay = outcome.last_sleep
        policy.max_attempts += 1
        if "max_attempts" in policy.sources:
            policy.sources["max_attempts"] = f"{policy.sources['max_attempts']} + 1"
        notes[:] = [n for n in notes if not n.startswith("the legacy code slept")]
        notes.append("the unguarded attempt after the loop is the step's last attempt")
        self._last_summary = policy.summary()

    def _whole_function(
        self,
        func: cst.FunctionDef,
        loop: cst.CSTNode,
        init_stmts: dict[str, cst.SimpleStatementLine],
        saved: str | None,
        const_stmts: Sequence[cst.SimpleStatementLine] = (),
    ) -> bool:
        body = list(func.body.body)
        if loop not in body:
            return False
        if any(isinstance(n, cst.Yield) for n in _walk_own(func.body)):
            return False
        index = body.index(loop)
        before = body[:index]
        if before and is_docstring(before[0]):
            before = before[1:]
        inits = set(init_stmts.values()) | set(const_stmts)
        return all(stmt in inits for stmt in before)

    def _remove_inits(
        self,
        init_stmts: dict[str, cst.SimpleStatementLine],
        state: set[str],
        saved: str | None,
        scope: Scope,
        loop: cst.CSTNode,
        keep_saved: bool,
    ) -> None:
        """Drop the counters' initial assignments that nothing but the loop reads."""
        loop_range = self._range(loop)
        by_stmt: dict[cst.SimpleStatementLine, list[str]] = {}
        for name, stmt in init_stmts.items():
            by_stmt.setdefault(stmt, []).append(name)
        for stmt, names in by_stmt.items():
            stmt_range = self._range(stmt)

            def unused(name: str, stmt_range: CodeRange = stmt_range) -> bool:
                if name not in state and not (name == saved and not keep_saved):
                    return False
                return not any(
                    not _within(self._range(a.node), loop_range)
                    and not _within(self._range(a.node), stmt_range)
                    for a in scope.accesses[name]
                )

            if all(unused(name) for name in names):
                self.remove_stmts.add(stmt)

    # ----------------------------------------------------------- data flow
    def _range(self, node: cst.CSTNode) -> CodeRange:
        return self.get_metadata(PositionProvider, node)

    def _bound_before(self, scope: Scope, name: str, loop: cst.CSTNode) -> bool:
        """Whether ``name`` is a parameter or is assigned before ``loop`` starts."""
        start = self._range(loop).start
        for a in scope.assignments[name]:
            node = getattr(a, "node", None)
            if isinstance(node, cst.CSTNode):
                where = self._range(node).start
                if (where.line, where.column) < (start.line, start.column):
                    return True
        return False

    def _stored_in(self, scope: Scope, region: cst.CSTNode) -> set[str]:
        region_range = self._range(region)
        return {
            a.name
            for a in scope.assignments
            if isinstance(node := getattr(a, "node", None), cst.CSTNode)
            and _within(self._range(node), region_range)
        }

    def _read_outside(self, scope: Scope, loop: cst.CSTNode, stored: set[str]) -> set[str]:
        loop_range = self._range(loop)
        out = set()
        for name in stored:
            for access in scope.accesses[name]:
                if not _within(self._range(access.node), loop_range):
                    out.add(name)
        return out

    def _first_store(self, scope: Scope, name: str, region: cst.CSTNode) -> tuple[int, int]:
        region_range = self._range(region)
        positions = [
            (r.start.line, r.start.column)
            for a in scope.assignments[name]
            if isinstance(node := getattr(a, "node", None), cst.CSTNode)
            and _within(r := self._range(node), region_range)
        ]
        return min(positions) if positions else (0, 0)

    def _free_locals(self, scope: Scope, region: cst.BaseSuite, stored: set[str]) -> list[str]:
        """Names the attempt body reads from the enclosing function(s): the step's parameters.
        Refuses a name read before the attempt assigns it (carried to the next attempt)."""
        region_range = self._range(region)
        enclosing = _function_scopes(scope)
        found: dict[str, tuple[int, int]] = {}
        for access in _accesses_within(self, region, region_range):
            if not any(r.scope in enclosing for r in access.referents):
                continue
            name = access.node.value
            start = self._range(access.node).start
            position = (start.line, start.column)
            if name in stored:
                if position < self._store_statement_end(scope, name, region):
                    raise Skip(f"the attempt body updates `{name}`, read by the next attempt")
                continue
            found.setdefault(name, position)
        return sorted(found, key=lambda n: found[n])

    def _store_statement_end(self, scope: Scope, name: str, region: cst.CSTNode) -> tuple[int, int]:
        """Where the first assignment of ``name`` in ``region`` takes effect."""
        region_range = self._range(region)
        best: tuple[int, int] | None = None
        for a in scope.assignments[name]:
            node = getattr(a, "node", None)
            if not isinstance(node, cst.CSTNode):
                continue
            node_range = self._range(node)
            if not _within(node_range, region_range):
                continue
            holder = self._small_statement_of(node)
            end = self._range(holder).end if holder is not None else node_range.start
            point = (end.line, end.column)
            if best is None or point < best:
                best = point
        return best or (0, 0)

    def _small_statement_of(self, node: cst.CSTNode) -> cst.CSTNode | None:
        current: cst.CSTNode | None = node
        while current is not None:
            if isinstance(current, cst.Assign | cst.AugAssign | cst.AnnAssign):
                return current
            if isinstance(current, cst.BaseStatement):
                return None
            current = self.get_metadata(ParentNodeProvider, current, None)
        return None

    def _block_of(self, node: cst.CSTNode) -> Sequence[cst.BaseStatement]:
        parent = self.get_metadata(ParentNodeProvider, node, None)
        if isinstance(parent, cst.IndentedBlock | cst.Module):
            return list(parent.body)
        return []

    def _top_level(self, node: cst.CSTNode) -> cst.CSTNode:
        current = node
        while True:
            parent = self.get_metadata(ParentNodeProvider, current, None)
            if parent is None or isinstance(parent, cst.Module):
                return current
            current = parent

    def _step_name(
        self, region: cst.CSTNode, func: cst.FunctionDef, scope: Scope | None = None
    ) -> str:
        callee = None
        for node in _walk_own(region):
            if isinstance(node, cst.Call):
                target = node.func
                if isinstance(target, cst.Name):
                    callee = target.value
                elif isinstance(target, cst.Attribute):
                    callee = target.attr.value
                if callee:
                    break
        base = f"_{(callee or func.name.value).strip('_')}_step"
        name, n = base, 2
        while name in self.taken_names or (scope is not None and scope.assignments[name]):
            name = f"{base}_{n}"
            n += 1
        self.taken_names.add(name)
        return name

    # ------------------------------------------------------------- helpers
    def _retry_like(self, loop: cst.For | cst.While) -> bool:
        """Does the loop retry at all (a counted header, retry words, a sleep between tries)?
        The same test as the file pre-check, on the loop's own source."""
        source = self.source_module.code_for_node(loop.with_changes(leading_lines=[]))
        is_async = getattr(loop, "asynchronous", None) is not None or "await" in source
        prefix = "async def _():\n" if is_async else ""
        body = textwrap.indent(source, "    ") if prefix else source
        try:
            tree = ast.parse(prefix + body)
        except SyntaxError:
            return True
        node = tree.body[0]
        if isinstance(node, ast.AsyncFunctionDef):
            node = node.body[0]
        return isinstance(node, ast.For | ast.AsyncFor | ast.While) and _ast_retry_like(node)

    @staticmethod
    def handler_stmts(handler: cst.ExceptHandler) -> list[Any]:
        """The statements of an except handler."""
        return list(handler.body.body)

    def qualified(self, node: cst.CSTNode) -> set[str]:
        return {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}

    def is_sleep(self, node: cst.BaseExpression) -> cst.Call | None:
        """``time.sleep(d)``, ``await asyncio.sleep(d)``, and sleep-like helpers
        (``self._sleep(d, ...)``, ``eventlet.sleep(d)``): the delay is the first argument."""
        call = node.expression if isinstance(node, cst.Await) else node
        if not isinstance(call, cst.Call):
            return None
        if self.qualified(call.func) & _SLEEPS:
            return call
        func = call.func
        last = func.attr.value if isinstance(func, cst.Attribute) else None
        if isinstance(func, cst.Name):
            last = func.value
        if last in ("sleep", "_sleep") and call.args and call.args[0].keyword is None:
            self.sleep_like.add(self.source_module.code_for_node(func))
            return call
        return None

    def _is_log(self, node: cst.BaseSmallStatement) -> bool:
        """A call that only reports: ``print``, ``log.warning``, ``module.warn``,
        ``self.report_warning``, ``warnings.warn``."""
        if not isinstance(node, cst.Expr) or not isinstance(node.value, cst.Call):
            return False
        func = node.value.func
        if isinstance(func, cst.Name):
            return func.value == "print" or bool(_LOG_FUNCTION.match(func.value))
        if isinstance(func, cst.Attribute):
            owner = self.source_module.code_for_node(func.value).lower()
            if func.attr.value in _LOG_METHODS and "log" in owner:
                return True
            if func.attr.value in ("warn", "warning") and owner in ("warnings", "module"):
                return True
            return bool(_LOG_FUNCTION.match(func.attr.value))
        return False


def _plain_names_read(node: cst.CSTNode) -> set[str]:
    """The variables ``node`` reads: its names, without attribute names (``log.warning``)
    and keyword names (``exc_info=``)."""
    nodes = [node, *_walk_all(node)]
    skip = {id(n.attr) for n in nodes if isinstance(n, cst.Attribute)}
    skip |= {id(n.keyword) for n in nodes if isinstance(n, cst.Arg) and n.keyword is not None}
    return {n.value for n in nodes if isinstance(n, cst.Name) and id(n) not in skip}


def _failover_items(loop: cst.For) -> list[str]:
    """The loop targets (``cdn_id`` of ``for n, cdn_id in enumerate(cdns)``) that the loop
    body reads outside its except handlers; an ``enumerate`` index alone is a counter."""
    targets = loop.target.elements if isinstance(loop.target, cst.Tuple) else [loop.target]
    names = [t.value if isinstance(t, cst.Element) else t for t in targets]
    wanted = [n.value for n in names if isinstance(n, cst.Name)]
    iterable = loop.iter
    if (
        isinstance(iterable, cst.Call)
        and isinstance(iterable.func, cst.Name)
        and iterable.func.value == "enumerate"
        and len(wanted) == 2
    ):
        wanted = wanted[1:]
    read: set[str] = set()
    stack: list[cst.CSTNode] = list(loop.body.children)
    while stack:
        node = stack.pop()
        if isinstance(node, cst.ExceptHandler):
            continue
        if isinstance(node, cst.Name):
            read.add(node.value)
        stack.extend(node.children)
    return [n for n in wanted if n in read]


def _fixed_values(iterable: cst.BaseExpression) -> list[ev.Number] | None:
    """The values of a literal tuple or list of numbers or booleans (``(True, False)``),
    the loop running one attempt for each; None for anything else."""
    if not isinstance(iterable, cst.Tuple | cst.List) or not iterable.elements:
        return None
    values: list[ev.Number] = []
    for element in iterable.elements:
        value = element.value
        if isinstance(element, cst.StarredElement):
            return None
        if isinstance(value, cst.Name) and value.value in ("True", "False"):
            values.append(value.value == "True")
        elif isinstance(value, cst.Integer):
            values.append(int(value.evaluated_value))
        else:
            return None
    return values


def _num_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _expression_of(field_name: str, name: str, values: list[Any]) -> str:
    """The source of a field that follows run-time value ``name``: its values at the
    probes (``_PROBE``, then ``_PROBES``) must be ``name + c`` (attempts) or ``k * name``."""
    xs = [_PROBE, *_PROBES]
    if any(v is None for v in values):
        raise Skip(f"the {field_name} depends on `{name}` in a way a policy cannot express")
    offsets = {v - x for v, x in zip(values, xs, strict=True)}
    if field_name == "max_attempts" and len(offsets) == 1:
        c = int(offsets.pop())
        return name if c == 0 else f"{name} {'+' if c > 0 else '-'} {abs(c)}"
    ratios = {round(v / x, 9) for v, x in zip(values, xs, strict=True)}
    if field_name != "max_attempts" and len(ratios) == 1:
        k = ratios.pop()
        return name if k == 1 else f"{k:g} * {name}"
    raise Skip(f"the {field_name} depends on `{name}` in a way a policy cannot express")


__all__ = ["RetryLoopCodemod"]
