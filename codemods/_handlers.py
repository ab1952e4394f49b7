"""Handler shapes of hand-rolled retries: the exception predicate a handler tests.

Real handlers rarely retry every exception they catch: they look at it first
(``if e.errno != errno.ECONNRESET: raise``, ``if not is_retryable(exc): raise``,
``if err.response.status == 503: sleep; continue`` then ``raise``). Such a test
is the policy's ``retry_if``: the exceptions it rejects are raised at once, as
the legacy ``raise`` did. :func:`split_predicate` finds the test, returns it as
the source of a predicate on the exception, and the handler without it, which
the simulation then runs as if every failure were retryable.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import libcst as cst

from . import _evaluate as ev

#: builtins a test may call without acting on anything
_PURE_CALLS = frozenset(
    {"isinstance", "issubclass", "getattr", "hasattr", "len", "str", "repr", "int", "any", "all"}
)


class PredicateRefused(ValueError):
    """A test on the exception that cannot become ``retry_if`` (the message says why)."""


@dataclass
class Predicate:
    """``retry_if`` as source (``lambda e: e.errno == 104``), its test, the names it reads."""

    source: str
    test: str
    reads: set[str]
    #: the test calls something that may act (not isinstance, getattr, len, str, ...)
    calls: bool = False


def _reraises(stmts: Sequence[Any], as_name: str | None, is_log: Callable[[Any], bool]) -> bool:
    """The statements only log and re-raise the caught exception (``raise`` / ``raise e``)."""
    smalls: list[cst.BaseSmallStatement] = []
    for stmt in stmts:
        if not isinstance(stmt, cst.SimpleStatementLine):
            return False
        smalls.extend(stmt.body)
    if not smalls or not isinstance(smalls[-1], cst.Raise):
        return False
    exc = smalls[-1].exc
    if exc is not None and not (isinstance(exc, cst.Name) and exc.value == as_name):
        return False
    return all(is_log(s) for s in smalls[:-1])


def _saves(small: cst.BaseSmallStatement, as_name: str | None) -> bool:
    """``last_error = err``: the caught exception kept for later."""
    return (
        isinstance(small, cst.Assign)
        and len(small.targets) == 1
        and isinstance(small.targets[0].target, cst.Name)
        and isinstance(small.value, cst.Name)
        and small.value.value == as_name
    )


def _ends_with_continue(stmts: Sequence[Any]) -> bool:
    last = stmts[-1] if stmts else None
    return isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[-1], cst.Continue)


def _negated(test: cst.BaseExpression, code: Callable[[cst.CSTNode], str]) -> str:
    """The source of ``not test``, written plainly (``!=`` for ``==``, ``x`` for ``not x``)."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return code(test.expression)
    flips: dict[type, str] = {
        cst.Equal: "!=",
        cst.NotEqual: "==",
        cst.In: "not in",
        cst.NotIn: "in",
        cst.Is: "is not",
        cst.IsNot: "is",
    }
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        target = test.comparisons[0]
        flipped = flips.get(type(target.operator))
        if flipped is not None:
            return f"{code(test.left)} {flipped} {code(target.comparator)}"
    return f"not ({code(test)})"


def _reads_exception(test: cst.BaseExpression, as_name: str | None, code: Any) -> bool:
    if as_name is None:
        return False
    try:
        return as_name in ev.names(ev.parse(code(test)))
    except SyntaxError:
        return False


def split_predicate(
    stmts: Sequence[Any],
    as_name: str | None,
    code: Callable[[cst.CSTNode], str],
    is_log: Callable[[Any], bool],
    counters: frozenset[str] = frozenset(),
) -> tuple[Predicate | None, list[Any]]:
    """The handler's test on the caught exception, and the handler without it.

    A test joined with the counter (``if exc.status == 409 and attempt < n:``, ``if
    not retryable(e) or attempt == last: raise``) is split: the parts that do not read
    ``counters`` become the predicate, the counter parts stay in the handler.

    Shapes (after any log calls): ``if <test>: raise`` (retry when the test is false);
    ``if <test>: ... else: raise``, and ``if <test>: ... continue`` followed by
    ``raise`` (retry when the test is true). ``(None, stmts)`` when the handler has
    none of these shapes.
    """
    stmts = list(stmts)
    for index, stmt in enumerate(stmts):
        if isinstance(stmt, cst.SimpleStatementLine) and all(
            is_log(s) or _saves(s, as_name) for s in stmt.body
        ):
            continue  # log calls and `last_error = err` come before the test
        if not isinstance(stmt, cst.If) or not _reads_exception(stmt.test, as_name, code):
            return None, stmts
        before, after = stmts[:index], stmts[index + 1 :]
        body = list(stmt.body.body)
        if getattr(stmt.test, "lpar", None):  # `if (a == b):` reads as `a == b`
            stmt = stmt.with_changes(test=stmt.test.with_changes(lpar=[], rpar=[]))
        orelse = stmt.orelse
        if orelse is None and _reraises(body, as_name, is_log):
            mine, rest, moved = _split_bool(stmt.test, cst.Or, as_name, code, counters)
            if rest is None:
                return _predicate(_negated(stmt.test, code), as_name), [*before, *after]
            predicate = _predicate(f"not ({mine})", as_name)
            _check_order(predicate, moved)
            return predicate, [*before, stmt.with_changes(test=rest), *after]
        if isinstance(orelse, cst.Else) and _reraises(orelse.body.body, as_name, is_log):
            return _predicate(code(stmt.test), as_name), [*before, *body, *after]
        if orelse is None and _reraises(after, as_name, is_log) and _ends_with_continue(body):
            mine, rest, moved = _split_bool(stmt.test, cst.And, as_name, code, counters)
            if rest is None:
                return _predicate(code(stmt.test), as_name), [*before, *body]
            predicate = _predicate(mine, as_name)
            _check_order(predicate, moved)
            counted = stmt.with_changes(test=rest)  # the counter test stays in the handler
            return predicate, [*before, counted, *after]
        return None, stmts
    return None, stmts


def _split_bool(
    test: cst.BaseExpression,
    operator: type[cst.And] | type[cst.Or],
    as_name: str | None,
    code: Callable[[cst.CSTNode], str],
    counters: frozenset[str],
) -> tuple[str, cst.BaseExpression | None, bool]:
    """``A and B and C`` (or ``or``) where only some parts read the counters: the
    other parts' source (joined the same way), the counter parts as a new test, and
    whether a counter part came before a part that stays (evaluation order changes).
    ``(test, None, False)`` when nothing splits."""
    parts: list[cst.BaseExpression] = []

    def flatten(node: cst.BaseExpression) -> None:
        if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, operator):
            flatten(node.left)
            flatten(node.right)
        else:
            parts.append(node)

    flatten(test)

    def reads_counter(part: cst.BaseExpression) -> bool:
        try:
            return bool(ev.names(ev.parse(code(part))) & counters)
        except SyntaxError:
            return True

    counted = [p for p in parts if reads_counter(p)]
    kept = [p for p in parts if not reads_counter(p)]
    if not counted or not kept or not any(_reads_exception(p, as_name, code) for p in kept):
        return code(test), None, False
    if any(_reads_exception(p, as_name, code) for p in counted):
        return code(test), None, False  # one part reads both: not split
    moved = parts.index(counted[0]) < parts.index(kept[-1])
    rest = counted[0]
    for part in counted[1:]:
        rest = cst.BooleanOperation(left=rest, operator=operator(), right=part)
    word = " and " if operator is cst.And else " or "
    mine = word.join(f"({code(p)})" if len(kept) > 1 else code(p) for p in kept)
    return mine, rest, moved


def _check_order(predicate: Predicate, moved: bool) -> None:
    """A predicate that calls code may not run where the legacy test stopped early."""
    if moved and predicate.calls:
        raise PredicateRefused(
            f"the retry decision `{predicate.test}` would call code the legacy test skipped"
            " on the last attempt"
        )


def _predicate(test: str, as_name: str | None) -> Predicate:
    assert as_name is not None
    text = " ".join(test.split())
    try:
        reads = ev.names(ev.parse(text)) - {as_name}
    except SyntaxError:
        raise PredicateRefused(f"the retry decision `{text}` is not one expression") from None
    if any(isinstance(n, ast.NamedExpr | ast.Await) for n in ast.walk(ev.parse(text))):
        raise PredicateRefused(f"the retry decision `{text}` assigns or awaits")
    calls = any(
        isinstance(n, ast.Call) and not (isinstance(n.func, ast.Name) and n.func.id in _PURE_CALLS)
        for n in ast.walk(ev.parse(text))
    )
    return Predicate(f"lambda {as_name}: {text}", text, reads, calls)


__all__ = ["Predicate", "PredicateRefused", "split_predicate"]
