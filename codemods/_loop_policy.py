"""The retry-loop codemod's policy reading: counters, ranges, run-time values, flags and
budgets become a :class:`codemods._policy.Policy`, or the reason they cannot.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence
from typing import Any, NoReturn

import libcst as cst
import libcst.matchers as m
from libcst.metadata import (
    ParentNodeProvider,
    Scope,
    ScopeProvider,
)

from . import _evaluate as ev
from ._loop_scope import (
    _CLOCKS,
    _NAME_PATH,
    _PROBE,
    LoopScope,
    _expression_of,
    _failover_items,
    _fixed_values,
)
from ._loop_shapes import (
    _assigned_names,
    _BodyFinder,
    _first_line,
    _is_local,
    _is_none,
    _last_small_is,
    _names_read_in,
    _walk_all,
    _walk_own,
    _within,
    fixed_iterable,
    loop_header,
)
from ._loop_simulation import (
    Skip,
    _Exit,
    _Outcome,
)
from ._policy import (
    NotABackoff,
    Policy,
    fit_delays,
    fit_linear,
)
from ._result_shape import value_flag
from ._runtime_check import check_other_values, distinct_bases, probes_of
from ._small_values import check_small_values


class LoopPolicy(LoopScope):
    """How many attempts, which delays and which budget a loop's counters allow."""

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
        shown = outcome.budget_shown or f"`{clock} - {start} > {limit:g}`"
        # a limit known only at run time (`> deadline`): written as its source, in the
        # step defined in the function; a number stays a number
        text = outcome.budget_text
        limit_varies = run_time and bool(text) and not _is_number(text)
        if limit_varies and not _NAME_PATH.fullmatch(text):
            raise Skip(f"the time budget {shown} comes with run-time values")
        if run_time and any(f in policy.sources for f in ("initial_delay", "max_attempts")):
            # the wait (or the count) is a stand-in number here: max_elapsed = B + W
            # would be written with it
            raise Skip(f"the time budget {shown} comes with a wait or a count known at run time")
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
                value = ast.unparse(ev.parse(self.source_module.code_for_node(stmt.body[0].value)))
                if outcome.budget_deadline:  # `deadline = clock() + B`
                    same = value in (f"{clock} + {text}", f"{text} + {clock}")
                else:
                    same = value == clock
                setter = stmt if same else None
        if setter is None:
            wanted = f"`{clock} + {text}`" if outcome.budget_deadline else f"`{clock}`"
            raise Skip(
                f"the time budget {shown} counts from `{start}`, not set to {wanted} before"
                " the loop"
            )
        if not self._read_outside(scope, loop, {start}):
            self.remove_stmts.add(setter)  # only the budget read it
        wait = policy.initial_delay
        notes: list[str] = []
        if limit_varies:
            policy.runtime.add("max_elapsed")
            policy.sources["max_elapsed"] = text if waited else f"{text} + {wait:g}"
            if outcome.exit.kind == "fallthrough":  # `while clock() < deadline:`
                notes.append(
                    f"a `{text}` of 0 or below at run time made the legacy loop run no"
                    " attempt at all; the step runs one (RetryPolicy raises ValueError for"
                    " a max_elapsed below 0)"
                )
            else:
                notes.append(
                    f"a negative `{text}` at run time made the legacy loop give up after one"
                    " attempt; RetryPolicy raises ValueError for a max_elapsed below 0"
                )
            limit_shown = text
        else:
            limit_shown = f"{limit:g}"
        if waited:
            # tested after the wait: the legacy loop retried while elapsed + W <= B, as
            # max_elapsed=B does, but it waited once more before giving up
            policy.max_elapsed = limit
            return [
                *notes,
                f"the time budget {shown} became max_elapsed={limit_shown}, counted from the first"
                f" attempt; the legacy code waited {wait:g}s more before giving up, the step"
                " gives up at once",
            ]
        policy.max_elapsed = limit + wait
        total = policy.sources["max_elapsed"] if limit_varies else f"{limit + wait:g}"
        return [
            *notes,
            f"the time budget {shown} became max_elapsed={total} (the budget plus"
            f" the {wait:g}s wait: RetryPolicy stops before a wait that would pass it), counted"
            " from the first attempt",
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
            reason += f" ({why.split(': `', 1)[0]})"  # its own reason, without what it adds
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

    def _check_small_counts(
        self, simulate: Any, symbols: dict[str, ev.Number], outcome: _Outcome
    ) -> None:
        """A run-time count of 0 or 1 must end the loop the way larger ones do: ``if attempt
        == 0: raise`` else ``raise MaxRetries(...)`` is not one policy. One exception: the
        loop re-raises at and below a threshold ``t`` of one value and ends its usual way
        above it; then ``self._small_exit = (value, t)`` and the call site re-raises when
        ``value <= t`` before the usual ending."""
        code = self.source_module.code_for_node
        self._small_exit = None

        def exit_at(name: str, small: int) -> _Exit | None:
            try:
                return simulate({**symbols, name: small}).exit
            except (Skip, ArithmeticError, ValueError, TypeError):
                return None  # a loop that never runs: the count-below-1 note says it

        def same(exit_: _Exit) -> bool:
            return exit_.kind == outcome.exit.kind and [id(s) for s in exit_.block] == [
                id(s) for s in outcome.exit.block
            ]

        for name, value in symbols.items():
            if isinstance(value, bool):
                continue
            for small in (0, 1):
                probe = exit_at(name, small)
                if probe is None or same(probe):
                    continue
                threshold = self._reraise_threshold(name, exit_at, same)
                if threshold is not None and self._small_exit is None:
                    self._small_exit = (name, threshold)
                    break

                def said(exit_: _Exit) -> str:
                    if exit_.kind == "reraise":
                        return "re-raises the exception"
                    if exit_.kind == "fallthrough":
                        return "falls through to the code after the loop"
                    last = exit_.block[-1] if exit_.block else None
                    return f"runs `{_first_line(code(last))}`" if last is not None else "ends"

                raise Skip(
                    f"what happens when attempts run out depends on `{name}`: when it is"
                    f" {small} the loop {said(probe)}, else it {said(outcome.exit)}"
                )

    @staticmethod
    def _reraise_threshold(name: str, exit_at: Any, same: Any) -> int | None:
        """``t`` when the loop re-raises for every value of ``name`` up to ``t`` (from -1)
        and ends as usual above it (up to 3 and at the probes)."""
        kinds: list[tuple[int, _Exit]] = []
        for small in (-1, 0, 1, 2, 3, _PROBE, 7, 12):
            exit_ = exit_at(name, small)
            if exit_ is not None:
                kinds.append((small, exit_))
        low = [v for v, e in kinds if not same(e)]
        if not low or any(e.kind != "reraise" for v, e in kinds if not same(e)):
            return None
        threshold = max(low)
        if any(v <= threshold and same(e) for v, e in kinds):
            return None
        return threshold if threshold < _PROBE else None

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

    def _engine_or(
        self, skip: Skip, func: cst.FunctionDef, attempt_stmts: Sequence[cst.CSTNode]
    ) -> NoReturn:
        """Re-raise ``skip``, said as a retry engine's when the attempt calls a callable
        its callers pass in (``func(*args)``): that is the first thing to know."""
        called = self._called_parameter(func, attempt_stmts)
        if called is None or str(skip).startswith("a retry engine"):
            raise skip
        raise Skip(self._engine_reason(func, attempt_stmts, called, str(skip))) from None

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
        if _fixed_values(fixed_iterable(self, loop, scope)) is not None:
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
            reason = f"loops over `{code(iterable)}` rather than over attempts"
            if isinstance(iterable, cst.Name) and any(
                isinstance(getattr(a, "node", None), cst.Param)
                for a in scope.assignments[iterable.value]
            ):
                reason += (
                    f": `{iterable.value}` is a parameter, so the callers choose the"
                    " attempts and their delays (a retry engine's policy); give the step a"
                    " fixed `delays=(...)` by hand if the callers never pass it"
                )
            if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Name):
                helper = iterable.func.value
                origin = sorted(q for q in self.qualified(iterable.func) if q != helper)
                if origin:
                    module = origin[0].rsplit(".", 1)[0]
                    reason += (
                        f": `{helper}` comes from `{module}`, and what a helper yields is"
                        " not read across modules"
                    )
                else:
                    reason += f": what `{helper}(...)` yields is not followed"
            raise Skip(reason)
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
        if used & finder.read:
            name = sorted(used & finder.read)[0]
            raise Skip(f"the attempt body reads `{name}`, which changes between attempts")
        if used:
            # only assigned by the attempt: the loop sets it too, and the value left
            # after the loop depends on which of them ran last
            name = sorted(used)[0]
            raise Skip(
                f"the attempt body assigns `{name}`, which the loop also sets"
                f" {self._where_set(name)}: the value left after the loop comes from both"
            )
        if finder.asks_user:
            raise Skip("the attempt body asks for user input (never a durable step)")
        if finder.global_decl:
            raise Skip("the attempt body declares global or nonlocal names")

    def _where_set(self, name: str) -> str:
        """Where the loop machinery (its header, the code around the try, the handlers)
        assigns ``name``, said for a reason."""
        loop = self._current_loop
        if loop is None:
            return "between attempts"
        if isinstance(loop, cst.For) and m.matches(loop.target, m.Name(name)):
            return "as its loop variable"
        body = loop.body.body if isinstance(loop.body, cst.IndentedBlock) else ()
        for stmt in body:
            if isinstance(stmt, cst.Try):
                for handler in stmt.handlers:
                    if name in _assigned_names([handler.body]):
                        return "in its handler"
            elif name in _assigned_names([stmt]):
                return f"(`{_first_line(self.source_module.code_for_node(stmt))}`)"
        return "between attempts"

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
        try:
            initial, factor, cap, increment = self._fit(outcome)
        except Skip:
            schedule = _schedule(outcome)
            if schedule is None:
                raise
            return Policy(
                max_attempts=outcome.attempts,
                delays=schedule,
                retry_on=retry_on,
                give_up_on=give_up,
            )
        sources = {}
        for name in sorted(ev.names(ev.parse(self.source_module.code_for_node(loop_header(loop))))):
            if outcome.attempts is not None and self.constants.get(name) == outcome.attempts:
                sources["max_attempts"] = name
        fitted = {"initial_delay": initial, "max_delay": cap, "increment": increment}
        named = self._delay_constants(loop, fitted)
        sources.update(named)
        return Policy(
            sources=sources,
            constants=set(named),
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
        loop only reads: the policy can name it when the step is defined in place. A
        configuration read (``config.get('Boto', 'max_retry_delay', 60)``,
        ``os.environ.get('RETRIES', '3')``: see :func:`config_read`) counts too; it is
        read once where the step is defined (noted)."""
        read = config_read(what)
        if read is not None:
            what = read
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
                assert self._current_loop is not None  # set by _analyse before any policy
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
        constant or follow one value (``retries``, ``retries + 1``, ``2 * base_delay``).

        Fitted first with every value at one base; when values that coincide there hide
        a law (``min(max_backoff, backoff * 2 ** n)`` with both at 6), with distinct
        bases. Either way the policy written must hold with every value changed at
        once (:func:`check_other_values`)."""
        numeric = [k for k, v in symbols.items() if not isinstance(v, bool)]
        flags = {k: v for k, v in symbols.items() if isinstance(v, bool)}
        try:
            policy = self._symbolic_policy_at(simulate, symbols, retry_on, give_up, {})
        except Skip as uniform:
            text = str(uniform)
            if text.startswith("sleep is not a backoff: delays"):
                # the delays shown would be those of stand-in values: name the values instead
                shown = ", ".join(f"`{name}`" for name in sorted(numeric)) or "run-time values"
                raise Skip(
                    f"sleep is not a backoff: with {shown} known only at run time, the delays"
                    " follow no constant, exponential or linear law"
                ) from None
            if len(numeric) < 2 or not (
                "in a way a policy cannot express" in text or "depends on both" in text
            ):
                raise
            for bases in distinct_bases(numeric):
                try:
                    policy = self._symbolic_policy_at(simulate, symbols, retry_on, give_up, bases)
                    check_other_values(policy, simulate, flags, numeric, self.constants)
                except Skip:
                    continue
                return policy
            raise
        check_other_values(policy, simulate, flags, numeric, self.constants)
        for name in sorted(self._guarded_delays & set(numeric)):
            pattern = re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w.])")
            for field_name in ("initial_delay", "max_delay", "increment"):
                if field_name in policy.sources:
                    policy.sources[field_name] = pattern.sub(
                        f"({name} or 0)", policy.sources[field_name]
                    )
        return policy

    def _symbolic_policy_at(
        self,
        simulate: Any,
        symbols: dict[str, ev.Number],
        retry_on: list[str],
        give_up: list[str],
        bases: dict[str, int],
    ) -> Policy:
        """The policy fitted with each run-time value at its base (``_PROBE`` unless
        ``bases`` names another) and at two variations of it."""
        flags = {k: v for k, v in symbols.items() if isinstance(v, bool)}
        at: dict[str, int] = {
            k: bases.get(k, _PROBE) for k, v in symbols.items() if not isinstance(v, bool)
        }
        base = simulate({**flags, **at})
        outcomes = {"base": base}
        for name in at:
            for probe in probes_of(at[name]):
                outcome = simulate({**flags, **at, name: probe})
                if outcome.exit.kind != base.exit.kind:
                    raise Skip(f"what happens when attempts run out depends on `{name}`")
                if (outcome.random_delay, outcome.full_jitter, outcome.min_delay) != (
                    base.random_delay,
                    base.full_jitter,
                    base.min_delay,
                ):
                    raise Skip(f"the random part of the delay depends on `{name}`")
                outcomes[f"{name}={probe}"] = outcome
        fields = {key: list(self._fields(outcome)) for key, outcome in outcomes.items()}
        _fill_unreached_caps(fields, outcomes, at)
        sources: dict[str, str] = {}
        followers: dict[str, str] = {}  # field -> the run-time value it follows
        for index, field_name in enumerate(
            ("max_attempts", "initial_delay", "backoff", "max_delay", "increment")
        ):
            depends = [
                name
                for name in at
                if any(
                    fields[f"{name}={p}"][index] != fields["base"][index]
                    for p in probes_of(at[name])
                )
            ]
            if len(depends) > 1:
                raise Skip(f"the {field_name} depends on both `{depends[0]}` and `{depends[1]}`")
            if depends:
                name = depends[0]
                xs = [at[name], *probes_of(at[name])]
                values = [fields["base"][index]] + [
                    fields[f"{name}={p}"][index] for p in probes_of(at[name])
                ]
                sources[field_name] = _expression_of(field_name, name, values, xs)
                followers[field_name] = name
        base_fields = tuple(fields["base"])
        at_least_one, zero_unlimited = check_small_values(
            simulate, flags, at, base_fields, followers, base, at, self._small_value_notes
        )
        count = sources.get("max_attempts", "")
        if at_least_one and zero_unlimited:
            sources["max_attempts"] = f"max(1, {count}) if {count} else None"
        elif at_least_one:
            sources["max_attempts"] = f"max(1, {count})"
        elif zero_unlimited:  # `if self._retries != 0: retry = n < self._retries`
            sources["max_attempts"] = f"{count} or None"
        attempts, initial, factor, cap, increment = base_fields
        if "max_delay" in sources and (initial or "initial_delay" in sources):
            # a cap below the first delay: every delay is the cap, as RetryPolicy's
            # min(first, cap) (it refuses a first delay above the cap)
            first = sources.get("initial_delay", _num_source(initial))
            sources["initial_delay"] = f"min({first}, {sources['max_delay']})"
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

    def _delay_constants(
        self, loop: cst.For | cst.While, fitted: dict[str, float | None]
    ) -> dict[str, str]:
        """``field -> NAME`` for each delay field whose value is that of exactly one module
        constant the loop's sleeps read (``time.sleep(PAUSE)``): the policy keeps the name,
        so a later change of ``PAUSE`` still reaches the step."""
        scope = self.get_metadata(ScopeProvider, loop, None)
        read: set[str] = set()
        for node in _walk_all(loop.body):
            call = self.is_sleep(node) if isinstance(node, cst.Call | cst.Await) else None
            if call is not None:
                read |= {
                    n.value
                    for arg in call.args
                    for n in (arg.value, *_walk_all(arg.value))
                    if isinstance(n, cst.Name) and n.value in self.constants
                }
        if scope is not None:
            read = {name for name in read if name not in scope.assignments}
        out: dict[str, str] = {}
        for field_name, value in fitted.items():
            if not value:
                continue
            names = [name for name in sorted(read) if self.constants[name] == value]
            if len(names) == 1:
                out[field_name] = names[0]
        return out

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
        """``while not success and <rest>:`` (or ``while not success:``, ``<rest>`` then
        ``True``) whose try ends with ``success = True``, the
        flag set nowhere else but ``success = False`` before the loop and read in the loop
        only by its test: the flag's name and ``<rest>``."""
        if not isinstance(loop, cst.While) or try_.orelse is not None:
            return None
        test = loop.test
        name: str | None = None
        rest: cst.BaseExpression | None = None
        if (
            isinstance(test, cst.UnaryOperation)
            and isinstance(test.operator, cst.Not)
            and isinstance(test.expression, cst.Name)
        ):  # `while not sent:`, the count in the handler: `while True:` once the flag goes
            test = cst.BooleanOperation(left=test, operator=cst.And(), right=cst.Name("True"))
        if not isinstance(test, cst.BooleanOperation) or not isinstance(test.operator, cst.And):
            return None
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

    def _value_flag_shape(
        self, loop: cst.For | cst.While, try_: cst.Try
    ) -> tuple[str, cst.BaseExpression, bool] | None:
        """``while conn is None and <rest>:`` (``while not conn``) whose try ends with
        ``conn = connect()``, set nowhere else in the loop (:func:`value_flag`): the name,
        ``<rest>`` (``True`` when the test is the flag alone) and whether the test is
        ``not conn`` (any falsy value goes round again) rather than ``is None``."""
        if not isinstance(loop, cst.While) or try_.orelse is not None:
            return None
        node = self._ast_loop(loop)
        tries = [s for s in getattr(node, "body", []) if isinstance(s, ast.Try)]
        if not isinstance(node, ast.While) or len(tries) != 1:
            return None
        name = value_flag(node, tries[0])
        if name is None:
            return None
        test = loop.test
        sides = _and_sides(test)
        rest = [s for s in sides if name not in _names_read_in([cst.Expr(s)])]
        if len(rest) != len(sides) - 1:
            return None  # the flag read twice in the test, or inside another part
        flag_side = next(s for s in sides if not any(s is r for r in rest))
        falsy = isinstance(flag_side, cst.UnaryOperation)
        joined: cst.BaseExpression = cst.Name("True")
        for side in rest:
            joined = (
                side
                if isinstance(joined, cst.Name) and joined.value == "True"
                else cst.BooleanOperation(left=joined, operator=cst.And(), right=side)
            )
        return name, joined, falsy

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
        if policy.delays or (
            n > 1
            and abs(outcome.last_sleep - expected) > 1e-9
            and not (policy.sources.keys() & {"initial_delay", "max_delay", "increment"})
            and not (policy.runtime or set(policy.sources) - policy.constants)
            and not (outcome.full_jitter or outcome.min_delay)
        ):
            # `for delay in (1, 5): ... sleep(delay)` then `return call()` after a 30 s
            # wait: the delays are a schedule, the last wait its next entry
            schedule = _without_repeats([*outcome.delays[: n - 1], outcome.last_sleep])
            if len(set(schedule)) > 1:
                policy.delays = schedule
                policy.initial_delay, policy.backoff, policy.increment = 0.0, 1.0, 0.0
                policy.max_delay = None  # the schedule's longest delay (Policy.to_call)
                expected = outcome.last_sleep
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


def _num_source(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _fill_unreached_caps(
    fields: dict[str, list[Any]], outcomes: dict[str, _Outcome], symbols: dict[str, int]
) -> None:
    """A cap no delay reached at some values is not "no cap": where the other values
    show one cap ``c`` (or ``k * value`` for the value varied), and every delay there
    stays below it, that cap is filled in (index 3 of each row of ``fields``)."""
    seen = [row[3] for row in fields.values() if row[3] is not None]
    if not seen or len(seen) == len(fields):
        return
    if all(c == seen[0] for c in seen):
        laws = {key: float(seen[0]) for key in fields}
    else:
        laws = {}
        for name, base in symbols.items():
            keys = ["base", *(f"{name}={p}" for p in probes_of(base))]
            xs = [base, *probes_of(base)]
            known = [(fields[k][3], x) for k, x in zip(keys, xs, strict=True) if fields[k][3]]
            ratios = {round(c / x, 9) for c, x in known}
            if len(ratios) == 1 and len(known) >= 2:
                k = ratios.pop()
                laws.update({key: k * x for key, x in zip(keys, xs, strict=True)})
    for key, row in fields.items():
        cap = laws.get(key)
        if row[3] is not None or cap is None:
            continue
        delays = outcomes[key].delays
        if delays and max(delays) <= cap:
            row[3] = cap


#: a getter of a configuration object, called with constants only
_CONFIG_GETTERS = frozenset(
    {"get", "getint", "getfloat", "getboolean", "getbool", "get_int", "get_float", "getenv"}
)
_CONFIG_OBJECT = re.compile(r"(?i)(config|conf|cfg|settings|options|environ|env)$")


def config_read(text: str) -> str | None:
    """The object a configuration read reads from (``boto.config`` for
    ``boto.config.get('Boto', 'max_retry_delay', 60)``, ``os`` for
    ``os.getenv('N')``), or None if ``text`` is not one: a getter method of an object
    whose last name says configuration (``config``, ``conf``, ``cfg``, ``settings``,
    ``options``, ``environ``, ``env``), or ``os.getenv``, given only constants. Such a
    read does not depend on the attempts, and a program that changes its configuration
    between two waits of one call is not one the policy follows (noted)."""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _CONFIG_GETTERS
        and all(isinstance(a, ast.Constant) for a in node.args)
        and all(isinstance(k.value, ast.Constant) and k.arg for k in node.keywords)
    ):
        return None
    owner = ast.unparse(node.func.value)
    if not _NAME_PATH.fullmatch(owner):
        return None
    last = owner.rsplit(".", 1)[-1]
    if node.func.attr == "getenv":
        return owner if owner == "os" else None
    return owner if _CONFIG_OBJECT.search(last) else None


def config_notes(symbols: Sequence[str]) -> list[str]:
    """A note per configuration read the policy follows: read where the step is defined."""
    return [
        f"`{name}` is read where the step is defined, once per call; the legacy loop read"
        " it again before each wait (a configuration changed during one call is not seen)"
        for name in sorted(symbols)
        if config_read(name) is not None
    ]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _schedule(outcome: _Outcome) -> tuple[float, ...] | None:
    """Delays that follow no law but a list (``for delay in (1, 2, 5, 10)``, ``DELAYS[i]``):
    the schedule ``RetryPolicy(delays=...)`` waits, its last delay repeating. Exact delays
    only (no random part); a loop without an attempt limit must settle on its last delay."""
    if outcome.jitter or outcome.full_jitter or outcome.random_delay or outcome.min_delay:
        return None
    delays = list(outcome.delays)
    if outcome.attempts is not None:
        delays = delays[: max(outcome.attempts - 1, 0)]
    schedule = _without_repeats(delays)
    if len(set(schedule)) < 2:
        return None  # a constant delay: the law says it
    if outcome.attempts is None and len(schedule) == len(outcome.delays):
        return None  # endless, and the delays never settle
    return schedule


def _without_repeats(delays: Sequence[float]) -> tuple[float, ...]:
    """``delays`` without the repeats of its last delay (a schedule repeats it anyway)."""
    out = [float(d) for d in delays]
    while len(out) > 1 and out[-1] == out[-2]:
        out.pop()
    return tuple(out)


def _and_sides(test: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The parts of ``a and b and c`` (``[test]`` for anything else)."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return [*_and_sides(test.left), *_and_sides(test.right)]
    return [test]
