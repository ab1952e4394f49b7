"""The retry-loop codemod's handler reading: what the except clauses do between attempts
(repairs, delays per type, a delay the failure supplies) and how they give up.
"""

from __future__ import annotations

import ast
import math
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import libcst as cst
import libcst.matchers as m
from libcst.metadata import (
    Scope,
)

from . import _evaluate as ev
from ._handlers import (
    Predicate,
    PredicateRefused,
    gives_up,
    negation_of,
    predicate_of,
    split_predicate,
    substitute,
)
from ._loop_policy import LoopPolicy
from ._loop_scope import (
    _RERAISER,
    _SLEEP_LINE,
    _WAITS,
    _num_text,
    _Plan,
)
from ._loop_shapes import (
    _as_name,
    _assigned_names,
    _BodyFinder,
    _first_line,
    _is_local,
    _names_read_in,
    _reraises_only,
    _walk_all,
    tidy_handler,
)
from ._loop_simulation import (
    Skip,
    _Outcome,
)
from ._policy import (
    Policy,
    looks_like_class,
)


class LoopHandlers(LoopPolicy):
    """What the except handlers do between attempts and when attempts run out."""

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
        self._last_repairs = []
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
                    plain = _without_reraiser(h)
                    if plain is not None:
                        h = plain  # `with save_and_reraise_exception()` said with `raise`
                        break
                    shown_with = _first_line(code(node.items[0].item))
                    raise Skip(
                        f"the handler for `{shown}` decides inside `with {shown_with}`"
                        " in a way not followed (`reraise = False` only as the last thing"
                        " a branch does is read)"
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
        handlers = []
        for types, as_, body in plan.clauses:
            body, as_ = tidy_handler(list(body), as_)
            handlers.append(
                cst.ExceptHandler(
                    body=cst.IndentedBlock(body=body),
                    type=cst.parse_expression(types) if types is not None else None,
                    name=cst.AsName(name=cst.Name(as_)) if as_ else None,
                )
            )
        wrapper = cst.Try(
            body=cst.IndentedBlock(body=[cst.parse_statement(inner)]), handlers=handlers
        )
        if tail:
            wrapper = wrapper.with_changes(orelse=cst.Else(body=cst.IndentedBlock(body=tail)))
        return wrapper


def _without_reraiser(handler: cst.ExceptHandler) -> cst.ExceptHandler | None:
    """The handler whose last statement is ``with save_and_reraise_exception() as ctxt:``
    (oslo: on leaving, it re-raises the handled exception unless ``ctxt.reraise = False``
    was set), with that block written as plain code: each ``ctxt.reraise = False`` that
    ends a branch leaves it, every other way out of the block ends with ``raise``.
    None when ``ctxt`` is used otherwise."""
    stmts = list(handler.body.body)
    if not stmts or not isinstance(stmts[-1], cst.With) or len(stmts[-1].items) != 1:
        return None
    with_ = stmts[-1]
    item = with_.items[0]
    if not isinstance(item.item, cst.Call) or item.item.args:
        return None
    ctxt: str | None = None
    if item.asname is not None:
        if not isinstance(item.asname.name, cst.Name):
            return None
        ctxt = item.asname.name.value
    if not isinstance(with_.body, cst.IndentedBlock) or any(
        isinstance(n, cst.Name) and n.value == ctxt for s in stmts[:-1] for n in _walk_all(s)
    ):
        return None
    block = _plain_block(list(with_.body.body), ctxt)
    if block is None:
        return None
    body = handler.body.with_changes(body=[*stmts[:-1], *block])
    return handler.with_changes(body=body)


def _is_no_reraise(stmt: cst.CSTNode, ctxt: str | None) -> bool:
    return ctxt is not None and m.matches(
        stmt,
        m.SimpleStatementLine(
            body=[
                m.Assign(
                    targets=[m.AssignTarget(target=m.Attribute(m.Name(ctxt), m.Name("reraise")))],
                    value=m.Name("False"),
                )
            ]
        ),
    )


def _plain_block(block: list[Any], ctxt: str | None) -> list[Any] | None:
    """``block`` of the with body as plain code (see :func:`_without_reraiser`)."""
    raise_ = cst.parse_statement("raise\n")
    if not block:
        return [raise_]
    *head, last = block
    for stmt in head:
        if any(isinstance(n, cst.Name) and n.value == ctxt for n in _walk_all(stmt)):
            return None
    if _is_no_reraise(last, ctxt):
        return head or [cst.SimpleStatementLine([cst.Pass()])]
    if isinstance(last, cst.If) and any(
        isinstance(n, cst.Name) and n.value == ctxt for n in _walk_all(last)
    ):
        branch = _plain_if(last, ctxt)
        return None if branch is None else [*head, branch]
    if any(isinstance(n, cst.Name) and n.value == ctxt for n in _walk_all(last)):
        return None
    return [*block, raise_]


def _plain_if(stmt: cst.If, ctxt: str | None) -> cst.If | None:
    if _names_read_in([cst.Expr(stmt.test)]) & ({ctxt} - {None}):
        return None
    if not isinstance(stmt.body, cst.IndentedBlock):
        return None
    body = _plain_block(list(stmt.body.body), ctxt)
    if body is None:
        return None
    orelse = stmt.orelse
    new_else: cst.If | cst.Else | None
    if isinstance(orelse, cst.If):
        new_else = _plain_if(orelse, ctxt)
        if new_else is None:
            return None
    elif isinstance(orelse, cst.Else) and isinstance(orelse.body, cst.IndentedBlock):
        rest = _plain_block(list(orelse.body.body), ctxt)
        if rest is None:
            return None
        new_else = orelse.with_changes(body=orelse.body.with_changes(body=rest))
    elif orelse is None:
        new_else = cst.Else(body=cst.IndentedBlock(body=[cst.parse_statement("raise\n")]))
    else:
        return None
    return stmt.with_changes(body=stmt.body.with_changes(body=body), orelse=new_else)
