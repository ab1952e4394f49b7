"""Retry loops decided by a returned value, not by an exception.

::

    for attempt in range(5):
        resp = session.get(url)
        if resp.status_code == 200:
            return resp.json()
        time.sleep(2)
    raise Unavailable(url)

becomes::

    @step(retry=RetryPolicy(max_attempts=5, initial_delay=2.0, backoff=1.0, retry_on=(),
                            retry_on_result=lambda resp: resp.status_code != 200))
    def _get_step(session, url):
        return session.get(url)

    try:
        resp = _get_step(session, url)
    except RetriesExhausted:
        pass
    else:
        return resp.json()
    raise Unavailable(url)

The attempt (the statements before the deciding ``if``) becomes the step; the test becomes
``retry_on_result`` (written from the condition, negated); the statements after the ``if``
are run by the simulation as the handler of a failed attempt (counters, sleeps: the
policy); what ran when the value was accepted runs after the step; what ran when attempts
ran out runs in ``except RetriesExhausted``. When that code reads the last value, the step
returns it (``on_give_up=lambda state: state.result``) and the test is read once more at
the call site, which is done only for a test that calls nothing (it would run once more).
Exceptions are not retried (``retry_on=()``): the legacy loop had no ``try``, an exception
left it at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import libcst as cst
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import FunctionScope, Scope, ScopeProvider

from . import _evaluate as ev
from ._base import LOGGED_NOTE, SILENT_NOTE
from ._effects import unserializable_return
from ._handlers import negation_of
from ._loop_handlers import LoopHandlers
from ._loop_policy import config_notes
from ._loop_scope import _PROBE, _Plan
from ._loop_shapes import (
    _assigned_names,
    _BodyFinder,
    _first_line,
    _is_counter_bump,
    _names_read_in,
    _nested_try_reason,
    _walk_own,
)
from ._loop_simulation import Skip, _FlagNeeded, _NeedsValue, _Outcome, _Simulation
from ._policy import AmbiguousTypes, check_types

#: calls a test may make and still be read once more at the call site (they change nothing)
_PURE_CALLS = frozenset(
    {"len", "isinstance", "getattr", "hasattr", "str", "int", "float", "bool", "any", "all"}
)
#: handler types that also catch what a test on a value may raise (``obj.x``, ``obj[k]``)
_BROAD = re.compile(
    r"\b(Exception|BaseException|AttributeError|TypeError|LookupError|KeyError|IndexError|"
    r"ValueError|ArithmeticError|StandardError)\b"
)
_PURE_METHODS = frozenset({"startswith", "endswith", "lower", "upper", "strip", "isdigit"})


@dataclass
class ResultPlan:
    """How a retry decided by a value is rewritten (the loop's :class:`_Plan` holds it)."""

    value: str | None  # the name the call site binds (None: the value is not kept)
    test: str  # the condition that accepts the value, as written
    success: list[Any]  # what ran when it was accepted (without the final ``break``)
    exhausted: list[Any]  # what ran when attempts ran out, in the loop (``for``-``else``,
    # or the block that left the loop from between attempts)
    recheck: bool  # the step returns the last value; the call site tests it again
    step_body: list[Any] = field(default_factory=list)
    style: Literal["return", "break"] = "return"


def _leaves(block: cst.BaseSuite) -> str | None:
    """``return`` / ``break`` when the block's last statement is one."""
    body = block.body if isinstance(block, cst.IndentedBlock) else []
    last = body[-1] if body else None
    if isinstance(last, cst.SimpleStatementLine):
        if isinstance(last.body[-1], cst.Return):
            return "return"
        if isinstance(last.body[-1], cst.Break):
            return "break"
    return None


def _without_break(stmts: list[Any]) -> list[Any]:
    last = stmts[-1]
    assert isinstance(last, cst.SimpleStatementLine)
    if len(last.body) == 1:
        return stmts[:-1]
    return [*stmts[:-1], last.with_changes(body=last.body[:-1])]


def _ends_in_continue(stmts: Any) -> bool:
    last = stmts[-1] if stmts else None
    return isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[-1], cst.Continue)


def _ends_in_exit(stmts: list[Any]) -> bool:
    last = stmts[-1] if stmts else None
    return isinstance(last, cst.SimpleStatementLine) and isinstance(
        last.body[-1], cst.Return | cst.Raise
    )


def _own_calls(expr: cst.BaseExpression) -> list[cst.Call]:
    return [n for n in [expr, *_walk_own(expr)] if isinstance(n, cst.Call)]


def _is_pure_call(call: cst.Call) -> bool:
    func = call.func
    if isinstance(func, cst.Name):
        return func.value in _PURE_CALLS
    return isinstance(func, cst.Attribute) and func.attr.value in _PURE_METHODS


class LoopResults(LoopHandlers):
    """The analysis and the rewrite of loops whose retry a returned value decides."""

    def _analyse_result(self, func: cst.FunctionDef, loop: cst.For | cst.While) -> _Plan:
        code = self.source_module.code_for_node
        body = loop.body
        assert isinstance(body, cst.IndentedBlock)
        stmts: list[Any] = list(body.body)
        index = next(
            (
                i
                for i, s in enumerate(stmts)
                if isinstance(s, cst.If) and _leaves(s.body) is not None
            ),
            None,
        )
        inside: cst.Try | None = None  # the decision is the try's last statement
        if index is None:
            index = self._decided_in_try(stmts)
            if index is None:
                raise Skip(_nested_try_reason(stmts, code))
            inside = stmts[index]
            assert isinstance(inside, cst.Try)
            decision = inside.body.body[-1]
        else:
            decision = stmts[index]
        assert isinstance(decision, cst.If)
        test_src = _first_line(code(decision.test))
        if isinstance(decision.orelse, cst.If):
            raise Skip(f"the retry is decided by an `if`/`elif` chain on `{test_src}`")
        style: Literal["return", "break"] = "break"
        if _leaves(decision.body) == "return":
            style = "return"
        success: list[Any] = list(decision.body.body)
        if style == "break":
            success = _without_break(success)
        between: list[Any] = list(stmts[index + 1 :])
        if isinstance(decision.orelse, cst.Else):
            between = [*decision.orelse.body.body, *between]
        finder = _BodyFinder()
        for stmt in success:
            stmt.visit(finder)
        if finder.loop_exits or finder.yields:
            raise Skip(f"the code run when `{test_src}` holds leaves the loop another way")
        scope = self.get_metadata(ScopeProvider, func.body, None)
        if not isinstance(scope, FunctionScope):
            raise Skip("no function scope")

        # machinery: counter bumps first in the body, the loop variable, the code between
        # attempts; the attempt: the rest before the decision
        setup_notes: list[str] = []
        pre: list[Any] = []
        attempt: list[Any] = list(stmts[:index])
        while attempt and _is_counter_bump(attempt[0]):
            pre.append(attempt.pop(0))
        # a try around the attempt whose handlers retry too (`except E: sleep(d); continue`)
        try_: cst.Try | None = None
        if inside is not None:
            if attempt:
                raise Skip("the loop runs code before the try that is not a counter")
            attempt = self._attempt_in_try(inside, decision, success)
        elif (
            attempt
            and isinstance(attempt[-1], cst.Try)
            and _plain_lines(attempt[:-1])
            and not any(_is_counter_bump(s) for s in attempt[:-1])
        ):
            # `future = client.submit()` then `try: result = future.result()`: the setup
            # runs first in each attempt
            try_ = attempt[-1]
            setup = attempt[:-1]
            attempt = [*setup, *self._guarded_attempt(try_)]
            if setup:
                setup_notes.append(
                    f"an error raised by `{_first_line(code(setup[0]))}` before the try, of a"
                    " type its except clauses catch, is retried like the attempt's (the legacy"
                    " loop let it through at once)"
                )
        elif any(isinstance(n, cst.Try | cst.TryStar) for s in attempt for n in [s, *_walk_own(s)]):
            raise Skip("the attempt holds a try that does not enclose it")
        guard = try_ or inside
        handler_stmts = [s for h in guard.handlers for s in h.body.body] if guard else []
        state = _assigned_names([*pre, *between, *handler_stmts])
        loop_var: str | None = None
        if isinstance(loop, cst.For):
            loop_var = self._range_header(loop, scope)
            state.add(loop_var)
        self._check_attempt_body(body, attempt, "return", state, loop_var)
        counter = self._counter_read

        # the value the decision reads
        test = decision.test
        test_names = _read_names(test)
        stored = _assigned_names(attempt)
        read_state = sorted(test_names & state)
        if read_state:
            raise Skip(
                f"the retry decision `{test_src}` reads `{read_state[0]}`, which changes"
                " between attempts"
            )
        values = sorted(test_names & _assigned_names(attempt))
        if not values:
            raise Skip(
                f"the retry is decided by `{test_src}`, which reads nothing the attempt"
                " sets (state outside the attempt)"
            )
        if len(values) > 1:
            raise Skip(
                f"the retry decision `{test_src}` reads `{values[0]}` and `{values[1]}`:"
                " a value predicate reads one returned value"
            )
        value: str = values[0]
        calls = [c for c in _own_calls(test) if not _is_pure_call(c)]
        self._check_carried_in_attempt(attempt)

        # the policy: the code between attempts, run as the handler of a failed attempt
        handler = cst.ExceptHandler(
            body=cst.IndentedBlock(body=between or [cst.SimpleStatementLine([cst.Pass()])])
        )
        inits, init_stmts = self._initial_values(loop, state, None)

        def simulate(symbols: dict[str, ev.Number]) -> _Outcome:
            sim = _Simulation(self, loop, pre, handler, [], None, None, inits, symbols)  # type: ignore[arg-type]
            return sim.run()

        symbols: dict[str, ev.Number] = {}
        for name in sorted(state - {n for n, _ in inits}):
            if self._parameter_counted_in(func, name, loop, scope):
                symbols[name] = _PROBE
        while True:
            try:
                outcome = simulate(symbols)
                break
            except _FlagNeeded as needed:
                raise Skip(str(needed)) from None
            except _NeedsValue as need:
                if (
                    need.what in symbols
                    or len(symbols) >= 4
                    or not self._runtime_value(need.what, scope, state, stored)
                ):
                    raise Skip(str(need)) from None
                symbols[need.what] = _PROBE
        if outcome.attempts is None and outcome.budget is None:
            raise Skip(
                f"polls until `{test_src}` with no count (a supervisor, not a step: make"
                " the poll a workflow)"
            )
        self._check_small_counts(simulate, symbols, outcome)
        if outcome.repairs or outcome.last_repairs:
            first = (outcome.repairs or outcome.last_repairs)[0]
            raise Skip(
                f"between attempts the loop runs `{_first_line(code(first))}` (work for the"
                " next attempt, not followed for a retry decided by a value)"
            )
        if outcome.exit.kind == "reraise":
            raise Skip("between attempts the loop re-raises, with no exception to raise")
        if symbols:
            policy = self._symbolic_policy(simulate, symbols, [], [])
        else:
            policy = self._policy(outcome, [], [], loop)
        retry_types: list[str] = []
        if try_ is not None:
            retry_types = self._same_retries(try_, pre, inits, symbols, policy, outcome, scope)
        elif inside is not None:  # failed calls fall through to the same code between attempts
            for h in inside.handlers:
                retry_types.extend(self._types(h.type, scope) if h.type else ["Exception"])
            try:
                check_types(retry_types)
            except AmbiguousTypes as exc:
                raise Skip(str(exc)) from None
        budget_notes = self._budget(outcome, policy, loop, scope, bool(symbols))

        # what runs when attempts run out
        else_body: list[Any] = (
            list(loop.orelse.body.body) if isinstance(loop.orelse, cst.Else) else []
        )
        if outcome.exit.kind == "code":
            exhausted = list(outcome.exit.block)
            if else_body:
                raise Skip("the loop leaves between attempts and also has an else block")
            after_reads = _names_read_in(exhausted) - _assigned_names(exhausted)
        else:
            exhausted = else_body
            after_reads = _names_read_in(else_body)
            if not _ends_in_exit(else_body):
                after_reads |= self._read_outside(scope, loop, stored | state)
        counters_read = sorted(after_reads & state)
        if counters_read:
            raise Skip(f"when attempts run out the code reads the counter `{counters_read[0]}`")
        outputs = (self._read_outside(scope, loop, stored) | _names_read_in(success)) & stored
        others = sorted(outputs - {value})
        if others:
            raise Skip(
                f"the code after the attempt reads `{others[0]}`, set by the attempt besides"
                f" `{value}` (the step returns the one value the retry decision reads)"
            )
        if style == "return" and self._read_outside(scope, loop, stored) - {value}:
            name = sorted(self._read_outside(scope, loop, stored))[0]
            raise Skip(f"the attempt body assigns `{name}`, read after the loop")
        last_value = value in after_reads
        recheck = False
        if last_value and retry_types:
            raise Skip(
                f"when attempts run out the code reads the last `{value}`, which a failed"
                " call did not set (exceptions are retried too)"
            )
        if last_value:
            if success or exhausted:
                if calls:
                    raise Skip(
                        f"when attempts run out the code reads the last `{value}`, and the"
                        f" retry decision `{test_src}` calls `{_first_line(code(calls[0].func))}`"
                        " (it would run once more at the call site)"
                    )
                recheck = True
            policy.on_give_up = "lambda state: state.result"

        # the predicate: written from the condition; locals make the step a nested one
        predicate_test = test
        if isinstance(predicate_test, cst.Name | cst.Attribute | cst.Call | cst.Subscript):
            rejected = f"not {code(predicate_test)}"
        else:
            rejected = negation_of(code(predicate_test))
        policy.retry_on_result = f"lambda {value}: {rejected}"
        policy.retry_on = retry_types
        free = self._closure_names(predicate_test, {value}, scope)
        nested = bool(symbols) or bool(free)

        # the step's body: the attempt, returning the value
        last = attempt[-1]
        small = last.body[0] if isinstance(last, cst.SimpleStatementLine) else None
        step_body: list[Any] = [*attempt, cst.parse_statement(f"return {value}\n")]
        if (
            isinstance(small, cst.Assign)
            and len(last.body) == 1
            and len(small.targets) == 1
            and isinstance(small.targets[0].target, cst.Name)
            and small.targets[0].target.value == value
            and value not in _names_read_in(attempt[:-1])
        ):
            step_body = [*attempt[:-1], last.with_changes(body=[cst.Return(value=small.value)])]

        notes: list[str] = [*setup_notes, *budget_notes]
        logged = any(self._is_log(s) for s in _small_of([*between, *handler_stmts]))
        notes.append(LOGGED_NOTE if logged else SILENT_NOTE)
        if outcome.last_sleep > 0 and outcome.attempts is not None:
            notes.append(
                f"the legacy code slept {outcome.last_sleep:g}s after its last rejected"
                " value; the step gives up at once"
            )
        if outcome.jitter:
            notes.append("random jitter becomes jitter=True (delays drawn from [d/2, d])")
        if recheck:
            notes.append(
                f"the step returns the last `{value}` when attempts run out"
                f" (on_give_up); `{test_src}` is read once more where the loop was"
            )
        elif (
            not last_value
            and _ends_in_exit(exhausted)
            and isinstance(exhausted[-1].body[-1], cst.Raise)  # type: ignore[attr-defined]
        ):
            notes.append(
                "the error raised when attempts run out is raised inside `except"
                " RetriesExhausted`: its traceback shows RetriesExhausted as its context"
            )
        count = policy.sources.get("max_attempts", "")
        if count and not count.startswith("max(1, ") and count not in self.constants:
            notes.append(
                f"a count below 1 at run time (`{count}` < 1) ran the legacy loop zero times;"
                " RetryPolicy raises ValueError for it"
            )
        returned = unserializable_return(cst.IndentedBlock(body=step_body), code)
        if returned:
            notes.append(returned)
        if counter is not None:
            notes.append(f"`{counter[0]}` is read from toolkit.current_step().attempt")
        notes.extend(config_notes(list(symbols)))
        if nested:
            notes.append("the step is defined in the function: its policy uses run-time values")
        self._last_summary = policy.summary()

        plan = _Plan(
            machinery=code(loop.with_changes(body=body.with_changes(body=[*pre, *between])))
            + "".join(code(h) for h in (guard.handlers if guard else ())),
            retry_types=retry_types,
            policy=policy,
            notes=notes,
            style=style,
            is_async=func.asynchronous is not None,
            nested=nested,
            counter=counter,
        )
        stored_all = self._stored_in(scope, body)
        params: list[str] = []
        for stmt in attempt:
            for name in self._free_locals(scope, stmt, stored_all):
                if name not in params and name != (counter[0] if counter else None):
                    params.append(name)
        plan.params = [] if nested else params
        plan.step_name = self._step_name(attempt[0], func, scope if nested else None)
        plan.top_level = None if nested else self._top_level(func)
        keep = value in outputs | after_reads
        plan.result = ResultPlan(
            value=value if keep else None,
            test=code(decision.test),
            success=success,
            exhausted=exhausted,
            recheck=recheck,
            step_body=step_body,
            style=style,
        )
        self._remove_inits(init_stmts, state, None, scope, loop, keep_saved=False)
        return plan

    def _decided_after_try(self, stmts: list[Any], index: int) -> bool:
        """``try: v = call() except E: ...; continue`` then ``if <test on v>: return ...``:
        a retry decided by the value, exceptions retried too (counter bumps may open the
        body)."""
        try_ = stmts[index]
        after = stmts[index + 1] if index + 1 < len(stmts) else None
        return (
            isinstance(try_, cst.Try)
            and _plain_lines(stmts[:index])
            and isinstance(after, cst.If)
            and _leaves(after.body) is not None
            and all(_ends_in_continue(h.body.body) for h in try_.handlers)
        )

    def _decided_in_try(self, stmts: list[Any]) -> int | None:
        """The index of ``try: v = call(); if <test on v>: return v`` (the test the try's
        last statement, its handlers only logging), counter bumps before it."""
        tries = [i for i, s in enumerate(stmts) if isinstance(s, cst.Try)]
        if len(tries) != 1 or not all(_is_counter_bump(s) for s in stmts[: tries[0]]):
            return None
        try_ = stmts[tries[0]]
        last = try_.body.body[-1] if try_.body.body else None
        if not isinstance(last, cst.If) or _leaves(last.body) is None:
            return None
        return tries[0]

    def _attempt_in_try(self, try_: cst.Try, decision: cst.If, success: list[Any]) -> list[Any]:
        """The attempt of a try whose last statement decides; refused unless the try's
        handlers only log (a failed call then runs the same code between attempts as a
        rejected value) and nothing the test or the accepted branch does can raise what
        the handlers caught (the step would not retry it)."""
        code = self.source_module.code_for_node
        if try_.orelse is not None or try_.finalbody is not None:
            raise Skip("the try around the attempt has an else or finally block")
        handlers = [s for h in try_.handlers for s in h.body.body]
        carried = sorted(_assigned_names(handlers) & _loads(list(try_.body.body)))
        if carried:
            raise Skip(
                f"the attempt leaves the loop only when `{_first_line(code(decision.test))}`;"
                f" the except handler changes `{carried[0]}`, which the next attempt reads"
                " (state carried into the next attempt)"
            )
        for h in try_.handlers:
            smalls = _small_of(list(h.body.body))
            shown = code(h.type) if h.type else "a bare except"
            if not all(isinstance(x, cst.Pass) or self._is_log(x) for x in smalls) or len(
                smalls
            ) != sum(
                len(s.body) if isinstance(s, cst.SimpleStatementLine) else 1 for s in h.body.body
            ):
                raise Skip(
                    f"the handler for `{shown}` does more than log, and the retry is decided"
                    " inside the try"
                )
        test = decision.test
        if decision.orelse is not None:
            raise Skip("the retry decision inside the try has an else block")
        broad = next(
            (h for h in try_.handlers if h.type is None or _BROAD.search(code(h.type))), None
        )
        if broad is not None:
            shown = code(broad.type) if broad.type else "a bare except"
            raise Skip(
                f"the retry decision `{_first_line(code(decision.test))}` is inside a try that"
                f" catches `{shown}`: an error the test raises was retried, a step would end"
            )
        risky: list[cst.CSTNode] = [c for c in _own_calls(test) if not _is_pure_call(c)]
        risky += [n for n in [test, *_walk_own(test)] if isinstance(n, cst.Subscript)]
        if risky:
            raise Skip(
                f"the retry decision `{_first_line(code(test))}` is inside the try: an error it"
                f" raises (`{_first_line(code(risky[0]))}`) was retried, a step would end"
            )
        for stmt in success:
            for small in _small_of([stmt]):
                value = small.value if isinstance(small, cst.Return) else None
                if not isinstance(small, cst.Return) or (
                    value is not None
                    and not isinstance(value, cst.Name | cst.BaseNumber)
                    and not isinstance(value, cst.SimpleString)
                ):
                    raise Skip(
                        f"the code run when `{_first_line(code(test))}` holds is inside the"
                        " try: an error it raises was retried, after the step it would not be"
                    )
        return list(try_.body.body[:-1])

    def _guarded_attempt(self, try_: cst.Try) -> list[Any]:
        """The statements of a ``try`` whose every handler retries with ``continue``."""
        if try_.orelse is not None or try_.finalbody is not None:
            raise Skip("the try around the attempt has an else or finally block")
        for h in try_.handlers:
            last = h.body.body[-1] if h.body.body else None
            if not (
                isinstance(last, cst.SimpleStatementLine)
                and isinstance(last.body[-1], cst.Continue)
            ):
                shown = self.source_module.code_for_node(h.type) if h.type else "a bare except"
                raise Skip(
                    f"the handler for `{shown}` does not retry with `continue`: the test after"
                    " the try would read the value of an earlier attempt"
                )
        return list(try_.body.body)

    def _same_retries(
        self,
        try_: cst.Try,
        pre: list[Any],
        inits: list[Any],
        symbols: dict[str, ev.Number],
        policy: Any,
        outcome: _Outcome,
        scope: Scope,
    ) -> list[str]:
        """The exception types the handlers retry, when they retry exactly as a rejected
        value does (the same attempts, delays and end): one policy for both."""
        types: list[str] = []
        wanted = policy.to_call().deep_equals
        for h in try_.handlers:
            as_name = h.name.name.value if h.name and isinstance(h.name.name, cst.Name) else None
            types.extend(self._types(h.type, scope) if h.type is not None else ["Exception"])

            def simulate(
                values: dict[str, ev.Number], h: cst.ExceptHandler = h, name: Any = as_name
            ) -> _Outcome:
                sim = _Simulation(self, self._current_loop, pre, h, [], name, None, inits, values)  # type: ignore[arg-type]
                return sim.run()

            try:
                other = simulate(symbols)
                if symbols:
                    theirs = self._symbolic_policy(simulate, symbols, [], [])
                else:
                    theirs = self._policy(other, [], [], self._current_loop)  # type: ignore[arg-type]
            except Skip as skip:
                raise Skip(f"the handler for a failed call: {skip}") from None
            shown = self.source_module.code_for_node(h.type) if h.type else "a bare except"
            if other.supplied is not None or other.repairs or other.last_repairs:
                raise Skip(f"the handler for `{shown}` does work between attempts")
            if (
                not wanted(theirs.to_call())
                or other.exit.kind != outcome.exit.kind
                or other.exit.kind != "fallthrough"
                or other.budget != outcome.budget
            ):
                raise Skip(
                    f"a failed call (`except {shown}`) and a rejected value are retried"
                    " differently (attempts, delays or the end)"
                )
        try:
            check_types(types)
        except AmbiguousTypes as exc:
            raise Skip(str(exc)) from None
        return types

    def _check_carried_in_attempt(self, attempt: list[Any]) -> None:
        """A name the attempt reads before it assigns it: the value of an earlier attempt."""
        for i, stmt in enumerate(attempt):
            later = _assigned_names(attempt[i:]) - _assigned_names(attempt[:i])
            reads = _names_read_in([stmt]) - _assigned_names([stmt])
            carried = sorted(reads & later)
            if carried:
                raise Skip(
                    f"the attempt body updates `{carried[0]}`, read by the next attempt"
                    " (state carried into the next attempt)"
                )

    def _closure_names(self, test: cst.BaseExpression, bound: set[str], scope: Scope) -> set[str]:
        """Local names of the function the predicate reads (``self``, a parameter)."""
        names = _read_names(test) - bound
        return {n for n in names if scope.assignments[n] and n not in self.constants}

    # ------------------------------------------------------------------ rewrite
    def _result_call_site(self, plan: _Plan) -> list[cst.BaseStatement]:
        result = plan.result
        assert isinstance(result, ResultPlan)
        call = f"{plan.step_name}({', '.join(plan.params)})"
        if plan.is_async:
            call = f"await {call}"
        bind = f"{result.value} = {call}\n" if result.value else f"{call}\n"
        if result.recheck:
            first = cst.parse_statement(bind)
            if not result.success:  # only when attempts ran out: the test, negated
                check = cst.parse_statement(f"if {negation_of(result.test)}:\n    pass\n")
                assert isinstance(check, cst.If)
                body = check.body.with_changes(body=result.exhausted)
                return [first, check.with_changes(body=body)]
            check = cst.parse_statement(f"if {result.test}:\n    pass\n")
            assert isinstance(check, cst.If)
            check = check.with_changes(body=check.body.with_changes(body=result.success))
            if result.exhausted:
                check = check.with_changes(
                    orelse=cst.Else(body=cst.IndentedBlock(body=result.exhausted))
                )
            return [first, check]
        assert plan.policy is not None
        if plan.policy.on_give_up is not None:
            return [cst.parse_statement(bind)]  # the last value, for the code after the loop
        AddImportsVisitor.add_needed_import(self.context, "toolkit", "RetriesExhausted")
        caught = ", ".join([*plan.retry_types, "RetriesExhausted"])
        if plan.retry_types:
            caught = f"({caught})"
        template = cst.parse_statement(f"try:\n    {bind}except {caught}:\n    pass\n")
        assert isinstance(template, cst.Try)
        handler = template.handlers[0]
        if result.exhausted:
            handler = handler.with_changes(body=handler.body.with_changes(body=result.exhausted))
        wrapper = template.with_changes(handlers=[handler])
        if result.success:
            wrapper = wrapper.with_changes(
                orelse=cst.Else(body=cst.IndentedBlock(body=result.success))
            )
        return [wrapper]


def _read_names(expr: cst.CSTNode) -> set[str]:
    """The variables an expression reads (not attribute names, not keyword names)."""
    out: set[str] = set()

    class Names(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            out.add(node.value)

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            node.value.visit(self)
            return False

        def visit_Arg(self, node: cst.Arg) -> bool:
            node.value.visit(self)
            return False

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

    expr.visit(Names())
    return out


def _small_of(stmts: list[Any]) -> list[cst.BaseSmallStatement]:
    out: list[cst.BaseSmallStatement] = []
    for stmt in stmts:
        for node in [stmt, *_walk_own(stmt)]:
            if isinstance(node, cst.SimpleStatementLine):
                out.extend(node.body)
    return out


__all__ = ["LoopResults", "ResultPlan"]


def _targets(stmts: list[Any]) -> dict[str, cst.BaseExpression]:
    """Names assigned by simple statements (tuple targets too), with the value assigned."""
    out: dict[str, cst.BaseExpression] = {}
    for stmt in stmts:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if not isinstance(small, cst.Assign):
                continue
            for target in small.targets:
                elements = (
                    [e.value for e in target.target.elements]
                    if isinstance(target.target, cst.Tuple | cst.List)
                    else [target.target]
                )
                for element in elements:
                    if isinstance(element, cst.Name):
                        out[element.value] = small.value
    return out


def decision_detail(
    loop: cst.For | cst.While,
    try_: cst.Try,
    before_test: list[Any],
    test: cst.BaseExpression,
    code: Any,
    decision: cst.CSTNode | None = None,
) -> str:
    """What a retry decided after (or inside) a ``try`` reads besides the attempt's value:
    a helper given more than the value, a counter, an exception kept by the handler, a
    value the handler changes for the next attempt. ``""`` when nothing is found."""
    read = _read_names(test)
    handlers = [s for h in try_.handlers for s in h.body.body]
    attempt = set(_assigned_names(list(try_.body.body)))
    in_loop = set(_targets(list(loop.body.body))) | _assigned_names(list(loop.body.body))
    counters = {
        n.target.value
        for s in loop.body.body
        for n in [s, *_walk_own(s)]
        if isinstance(n, cst.AugAssign) and isinstance(n.target, cst.Name)
    }
    if isinstance(loop, cst.For) and isinstance(loop.target, cst.Name):
        counters.add(loop.target.value)
    parts: list[str] = []
    for name, value in _targets(before_test).items():
        if name in read and isinstance(value, cst.Call):
            given = [
                n
                for a in value.args
                for n in sorted(_read_names(a.value))
                if n not in attempt | in_loop and n != "self"
            ]
            shown = ", ".join(f"`{n}`" for n in dict.fromkeys(given[:2]))
            more = f", which is also given {shown}" if shown else ""
            parts.append(f"`{name}` is set by `{_first_line(code(value.func))}(...)`{more}")
            read = read | {n for a in value.args for n in _read_names(a.value)}
    counted = sorted(read & counters)
    if counted:
        parts.append(f"it reads the counter `{counted[0]}`")
    kept = sorted(read & _assigned_names(handlers) & attempt)
    if kept:
        parts.append(
            f"it reads `{kept[0]}`, also set by the except handler (exceptions and returned"
            " values decided together)"
        )
    carried = sorted(_assigned_names(handlers) & _loads(list(try_.body.body)))
    if carried:
        parts.append(
            f"the except handler changes `{carried[0]}`, which the next attempt reads"
            " (state carried into the next attempt)"
        )
    if decision is not None:
        sleeps = [
            _first_line(code(n))
            for n in _walk_own(decision)
            if isinstance(n, cst.Call)
            and isinstance(n.func, cst.Attribute | cst.Name)
            and code(n.func).rsplit(".", 1)[-1] == "sleep"
        ]
        if len(set(sleeps)) > 1:
            shown = ", ".join(f"`{s}`" for s in dict.fromkeys(sleeps))
            parts.append(f"the retries it decides wait differently ({shown})")
    return "; ".join(parts)


def _loads(stmts: list[Any]) -> set[str]:
    """The variables statements read (not the names they assign)."""
    out: set[str] = set()
    for stmt in stmts:
        for node in [stmt, *_walk_own(stmt)]:
            if isinstance(node, cst.Assign):
                out |= _read_names(node.value)
            elif isinstance(node, cst.AugAssign):
                out |= _read_names(node.value) | _read_names(node.target)
            elif isinstance(node, cst.Expr | cst.Return) and node.value is not None:
                out |= _read_names(node.value)
            elif isinstance(node, cst.If | cst.While):
                out |= _read_names(node.test)
    return out


def _plain_lines(stmts: Sequence[Any]) -> bool:
    """Counter bumps and simple lines (assignments, calls): no block, no way out."""
    return all(
        isinstance(s, cst.SimpleStatementLine)
        and all(isinstance(small, cst.Assign | cst.AugAssign | cst.Expr) for small in s.body)
        for s in stmts
    )
