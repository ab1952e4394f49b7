"""Loop forms of hand-rolled retries: which loops are candidates, how a ``try`` leaves the
loop, what the attempt body reads and writes (the ``retry-loop`` codemod's syntax helpers)."""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import libcst as cst
import libcst.matchers as m
from libcst.metadata import (
    CodeRange,
    FunctionScope,
    GlobalScope,
    PositionProvider,
    Scope,
    ScopeProvider,
)

from ._result_shape import ast_result_retry, value_flag

if TYPE_CHECKING:
    from ._loop_scope import LoopScope


def _candidate_loops(node: cst.CSTNode) -> Iterator[cst.For | cst.While]:
    """Loops that look like retries: a try whose success leaves the loop. Not inside nested
    functions or classes, and not inside another candidate."""
    for child in node.children:
        if isinstance(child, cst.FunctionDef | cst.ClassDef | cst.Lambda):
            continue
        if isinstance(child, cst.For | cst.While) and _is_candidate(child):
            yield child
            if _leaves_on_success(child):
                continue  # a retry loop: the loops inside it are its attempt's business
        yield from _candidate_loops(child)


def _leaves_on_success(loop: cst.For | cst.While) -> bool:
    """A ``try`` in the loop's body whose success leaves the loop."""
    body = loop.body
    return isinstance(body, cst.IndentedBlock) and any(
        isinstance(stmt, cst.Try) and stmt.handlers and _success_style(stmt) for stmt in body.body
    )


def _is_candidate(loop: cst.For | cst.While) -> bool:
    """A loop around a ``try`` (also one inside an ``if`` of its body): analysed when it
    also looks like a retry (see ``_ast_retry_like``); one whose success does not leave the
    loop is reported."""
    body = loop.body
    if not isinstance(body, cst.IndentedBlock):
        return False
    return bool(_nested_tries(body.body)) or _result_shape(body.body)


def _result_shape(stmts: Sequence[cst.BaseStatement]) -> bool:
    """No ``try`` at all, and an ``if`` whose body leaves the loop: a retry decided by a
    returned value (see :mod:`codemods._result_shape`), when it also looks like a retry."""
    if any(isinstance(n, cst.Try | cst.TryStar) for s in stmts for n in [s, *_walk_own(s)]):
        return False
    for stmt in stmts:
        if isinstance(stmt, cst.If) and isinstance(stmt.body, cst.IndentedBlock):
            last = stmt.body.body[-1] if stmt.body.body else None
            if isinstance(last, cst.SimpleStatementLine) and isinstance(
                last.body[-1], cst.Return | cst.Break
            ):
                return True
    return False


def _nested_tries(stmts: Sequence[cst.CSTNode]) -> list[cst.Try]:
    """The ``try`` statements of a loop body and of the ``if`` blocks in it."""
    out: list[cst.Try] = []
    for stmt in stmts:
        if isinstance(stmt, cst.Try) and stmt.handlers:
            out.append(stmt)
        elif isinstance(stmt, cst.If):
            out.extend(_nested_tries(stmt.body.body))
            orelse = stmt.orelse
            if isinstance(orelse, cst.If):
                out.extend(_nested_tries([orelse]))
            elif isinstance(orelse, cst.Else):
                out.extend(_nested_tries(orelse.body.body))
    return out


def _cst_retry_like(loop: cst.For | cst.While) -> bool:
    """:func:`_ast_retry_like` on a libcst loop (the nested-retry test of the body)."""
    source = cst.Module(body=[]).code_for_node(loop.with_changes(leading_lines=[]))
    is_async = getattr(loop, "asynchronous", None) is not None or "await" in source
    prefix = "async def _():\n" if is_async else ""
    text = textwrap.indent(source, "    ") if prefix else source
    try:
        tree = ast.parse(prefix + text)
    except SyntaxError:
        return True
    node: ast.AST = tree.body[0]
    if isinstance(node, ast.AsyncFunctionDef):
        node = node.body[0]
    return isinstance(node, ast.For | ast.AsyncFor | ast.While) and _ast_retry_like(node)


def _success_style(try_: cst.Try) -> Literal["return", "break"] | None:
    if try_.orelse is not None:
        last = try_.orelse.body.body[-1] if try_.orelse.body.body else None
        if _last_small_is(last, cst.Break) or (last is not None and _ends_with_return(last)):
            return "break"  # the else block's work runs after the step (see _success_tail)
        return None
    stmts = try_.body.body
    if not stmts:
        return None
    if _ends_with_return(stmts[-1]):
        return "return"
    if _last_small_is(stmts[-1], cst.Break) or _breaks_everywhere(stmts[-1]):
        return "break"
    return None


def _breaks_everywhere(stmt: cst.CSTNode) -> bool:
    """An ``if``/``elif``/``else`` whose every branch ends with ``break``."""
    if not isinstance(stmt, cst.If):
        return False
    branches = _if_branches(stmt)
    return branches is not None and all(
        b and (_last_small_is(b[-1], cst.Break) or _breaks_everywhere(b[-1])) for b in branches
    )


def _without_final_break(stmts: Sequence[Any]) -> list[Any]:
    """``stmts`` without the ``break`` that ends them (also the one ending each branch of
    a final ``if``/``else``)."""
    out = list(stmts)
    if not out:
        return out
    last = out[-1]
    if isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[-1], cst.Break):
        if len(last.body) == 1:
            return out[:-1]
        out[-1] = last.with_changes(body=last.body[:-1])
        return out
    if _breaks_everywhere(last):
        out[-1] = _strip_if_breaks(last)
    return out


def _strip_if_breaks(node: cst.If) -> cst.If:
    def block(suite: cst.BaseSuite) -> cst.BaseSuite:
        assert isinstance(suite, cst.IndentedBlock)
        body = _without_final_break(suite.body) or [cst.SimpleStatementLine([cst.Pass()])]
        return suite.with_changes(body=body)

    orelse = node.orelse
    if isinstance(orelse, cst.If):
        orelse = _strip_if_breaks(orelse)
    elif isinstance(orelse, cst.Else):
        orelse = orelse.with_changes(body=block(orelse.body))
    return node.with_changes(body=block(node.body), orelse=orelse)


def _success_tail(try_: cst.Try) -> list[Any]:
    """The work of a ``try``'s ``else`` block, without its final ``break``: it runs once,
    after the attempt succeeded, outside the retried step (its errors are not retried)."""
    if try_.orelse is None:
        return []
    stmts: list[Any] = list(try_.orelse.body.body)
    last = stmts[-1] if stmts else None
    if isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[-1], cst.Break):
        if len(last.body) == 1:
            stmts = stmts[:-1]
        else:
            stmts[-1] = last.with_changes(body=last.body[:-1])
    return stmts


_RETRY_WORDS = re.compile(r"attempt|retr|tries|tried", re.IGNORECASE)


def _ast_retry_like(loop: ast.For | ast.AsyncFor | ast.While) -> bool:
    """The ast twin of :meth:`RetryLoopCodemod._retry_like` (the file pre-check)."""
    tries = [child for child in loop.body if isinstance(child, ast.Try) and child.handlers]
    leaving = [t for t in tries if _ast_leaves_loop(t)]
    if len(leaving) > 1:
        return True  # several: analysed (and reported) by libcst
    if not tries:  # a try inside an ``if`` of the body: reported when it clearly retries
        nested = _ast_nested_tries(loop.body)
        if not nested:  # a retry decided by a returned value (no try at all)
            return ast_result_retry(loop)
        return _ast_clearly_retries(loop, nested[0])
    if not leaving:  # success does not leave the loop: reported when it clearly retries
        return _ast_clearly_retries(loop, tries[0])
    tries = leaving
    header = loop.iter if isinstance(loop, ast.For | ast.AsyncFor) else loop.test
    target = ast.unparse(loop.target) if isinstance(loop, ast.For | ast.AsyncFor) else ""
    if (
        isinstance(header, ast.Call)
        and isinstance(header.func, ast.Name)
        and header.func.id == "range"
        and len(header.args) <= 2
    ):
        return True
    if _RETRY_WORDS.search(ast.unparse(header) + " " + target):
        return True
    if (
        isinstance(header, ast.Tuple | ast.List)
        and len(header.elts) == 2
        and all(isinstance(e, ast.Constant) and isinstance(e.value, bool) for e in header.elts)
    ):
        return True  # `for first in (True, False)`: one try, then once more
    machinery: list[ast.AST] = [s for s in loop.body if s is not tries[0]]
    machinery += tries[0].handlers
    for node in machinery:
        for sub in ast.walk(node):
            func = sub.func if isinstance(sub, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr == "sleep":
                return True
            if isinstance(func, ast.Name) and func.id == "sleep":
                return True
            if isinstance(sub, ast.AugAssign) and isinstance(loop, ast.While):
                return True
    return False


def _ast_clearly_retries(loop: ast.For | ast.AsyncFor | ast.While, try_: ast.Try) -> bool:
    """A retry whose success path the codemod does not follow (a success flag, ``try/else``
    work, a retry decided after the try): reported. Retry words in the loop's header and a
    sleep anywhere in the loop, a counted ``range`` header, a counter updated in the loop
    or a generator's pause; or ``while True:`` with a retry counter (``retry += 1``) and a
    sleep."""
    header = loop.iter if isinstance(loop, ast.For | ast.AsyncFor) else loop.test
    target = ast.unparse(loop.target) if isinstance(loop, ast.For | ast.AsyncFor) else ""
    if any(isinstance(n, ast.Break) for h in try_.handlers for n in _ast_own(h.body)):
        return False  # a failure ends the loop: polling until an error, not a retry
    own = list(_ast_own(loop.body))
    sleeps = any(_ast_is_sleep(node) for node in own)
    counters = [_ast_counter(node) for node in own]
    if _ast_polls_and_retries(loop, try_) or _ast_success_flag(loop, try_):
        return True
    if (
        isinstance(loop, ast.While)
        and value_flag(loop, try_) is not None
        and any(_ast_is_sleep(n) for h in try_.handlers for n in _ast_own(h.body))
    ):
        return True  # `while conn is None:` around `conn = connect()`: a value flag
    if not _RETRY_WORDS.search(ast.unparse(header) + " " + target):
        return sleeps and any(name and _RETRY_WORDS.search(name) for name in counters)
    if sleeps:
        return True
    if isinstance(header, ast.Call) and getattr(header.func, "id", "") == "range":
        return True
    return any(counters) or any(isinstance(node, ast.Yield | ast.YieldFrom) for node in own)


def _ast_polls_and_retries(loop: ast.For | ast.AsyncFor | ast.While, try_: ast.Try) -> bool:
    """``while True:`` (``while clock() < deadline:``, ``for i in range(n):``) around a try
    whose every handler waits and goes round again, with a way out of the loop after the
    try (``if state == "done": return state``): a poll that also retries on failures. A
    loop with no way out (a supervisor) is not one."""
    if isinstance(loop, ast.For | ast.AsyncFor):
        counted = isinstance(loop.iter, ast.Call) and getattr(loop.iter.func, "id", "") == "range"
        if not counted:
            return False
    elif not _ast_endless_or_clocked(loop):
        return False
    for handler in try_.handlers:
        own = list(_ast_own(handler.body))
        if not any(_ast_is_sleep(n) for n in own) or any(
            isinstance(n, ast.Return | ast.Break) for n in own
        ):
            return False
        if not isinstance(handler.body[-1], ast.Continue):
            return False
    if try_ not in loop.body:
        return False  # a try inside an `if` of the body
    index = loop.body.index(try_)
    after = list(_ast_own(loop.body[index + 1 :]))
    return any(isinstance(n, ast.Return | ast.Break) for n in after)


def _ast_endless_or_clocked(loop: ast.While) -> bool:
    """``while True:``, or ``while clock() < deadline:`` (a time budget)."""
    clocked = isinstance(loop.test, ast.Compare) and any(
        isinstance(n, ast.Call)
        and ast.unparse(n).rsplit(".", 1)[-1] in ("time()", "monotonic()", "perf_counter()")
        for n in ast.walk(loop.test)
    )  # `while time.monotonic() < deadline:`: a poll within a time budget
    return clocked or (isinstance(loop.test, ast.Constant) and loop.test.value is True)


def _ast_success_flag(loop: ast.For | ast.AsyncFor | ast.While, try_: ast.Try) -> bool:
    """``while not sent:`` (``while not sent and ...:``) whose try ends with ``sent = True``
    and whose handlers wait: the flag is the attempt's success."""
    if not isinstance(loop, ast.While) or not try_.body:
        return False
    test = loop.test
    sides = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
    flags = {
        side.operand.id
        for side in sides
        if isinstance(side, ast.UnaryOp)
        and isinstance(side.op, ast.Not)
        and isinstance(side.operand, ast.Name)
    }
    last = try_.body[-1]
    return (
        isinstance(last, ast.Assign)
        and len(last.targets) == 1
        and isinstance(last.targets[0], ast.Name)
        and last.targets[0].id in flags
        and isinstance(last.value, ast.Constant)
        and last.value.value is True
        and any(_ast_is_sleep(n) for h in try_.handlers for n in _ast_own(h.body))
    )


def _ast_supervised(loop: ast.For | ast.AsyncFor | ast.While) -> str | None:
    """The first line of the work a supervisor loop runs, or None. A supervisor: ``while
    True:`` (or ``while self.running:``) around a try whose handlers neither leave the loop
    nor re-raise, with a wait somewhere in the loop, and nothing in the loop that leaves it
    (a ``return``, or a ``break`` of its own)."""
    if not isinstance(loop, ast.While):
        return None
    test = loop.test.operand if isinstance(loop.test, ast.UnaryOp) else loop.test
    if not (
        (isinstance(loop.test, ast.Constant) and loop.test.value is True)
        or isinstance(test, ast.Name | ast.Attribute)
    ):
        return None
    tries = [s for s in loop.body if isinstance(s, ast.Try) and s.handlers]
    if len(tries) != 1:
        return None
    assigned = {
        n.id
        for n in _ast_own(loop.body)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    if assigned & {n.id for n in ast.walk(loop.test) if isinstance(n, ast.Name)}:
        return None  # `while not sent:`, `sent` set in the loop: it ends on success
    for handler in tries[0].handlers:
        if any(isinstance(n, ast.Raise | ast.Return) for n in _ast_own(handler.body)):
            return None
    if any(isinstance(n, ast.Return) for n in _ast_own(loop.body)) or _ast_breaks(loop.body):
        return None
    if not any(_ast_is_sleep(n) for n in _ast_own(loop.body)):
        return None
    first = ast.unparse(tries[0].body[0]).splitlines()[0]
    if len(first) <= 60:
        return first
    return first[: first.find("(") + 1] + "...)" if "(" in first else first[:57] + "..."


def _ast_breaks(stmts: Sequence[ast.stmt]) -> bool:
    """A ``break`` of the loop these statements are the body of (not of a nested loop)."""
    stack: list[ast.AST] = list(stmts)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Break):
            return True
        for child in ast.iter_child_nodes(node):
            if not isinstance(
                child,
                ast.For
                | ast.AsyncFor
                | ast.While
                | ast.FunctionDef
                | ast.AsyncFunctionDef
                | ast.Lambda
                | ast.ClassDef,
            ):
                stack.append(child)
    return False


def _ast_counter(node: ast.AST) -> str | None:
    """The counter a statement updates: ``n += 1``, ``count[k] += 1``, ``n = n + 1``."""
    if isinstance(node, ast.AugAssign):
        return ast.unparse(node.target)
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.BinOp)
        and isinstance(node.value.left, ast.Name)
        and node.value.left.id == node.targets[0].id
    ):
        return node.targets[0].id
    return None


def _ast_own(stmts: Sequence[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``stmts``, not descending into nested functions, lambdas or classes."""
    stack = list(stmts)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
            ):
                stack.append(child)


def _ast_is_sleep(node: ast.AST) -> bool:
    """``time.sleep(...)``, ``self._sleep(...)``, ``self._jitter_sleep(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("sleep", "_sleep") or name.endswith("_sleep")


def _ast_nested_tries(stmts: Sequence[ast.stmt]) -> list[ast.Try]:
    """The ``try`` statements inside the ``if`` blocks of a loop body (not in nested loops)."""
    out: list[ast.Try] = []
    for stmt in stmts:
        if isinstance(stmt, ast.Try) and stmt.handlers:
            out.append(stmt)
        elif isinstance(stmt, ast.If):
            out.extend(_ast_nested_tries([*stmt.body, *stmt.orelse]))
    return out


def _ast_leaves_loop(try_: ast.Try) -> bool:
    """The ast twin of :func:`_success_style`: success ends in return or break."""
    if try_.orelse:
        return isinstance(try_.orelse[-1], ast.Break | ast.Return)
    last: ast.stmt | None = try_.body[-1] if try_.body else None
    while isinstance(last, ast.With | ast.AsyncWith) and last.body:
        last = last.body[-1]
    return (
        isinstance(last, ast.Return | ast.Break)
        or _ast_returns_or_raises(last)
        or _ast_breaks_everywhere(last)
    )


def _ast_breaks_everywhere(stmt: ast.stmt | None) -> bool:
    """The ast twin of :func:`_breaks_everywhere`."""
    if not isinstance(stmt, ast.If) or not stmt.orelse:
        return False
    return all(
        bool(b) and (isinstance(b[-1], ast.Break) or _ast_breaks_everywhere(b[-1]))
        for b in (stmt.body, stmt.orelse)
    )


def _ast_returns_or_raises(stmt: ast.stmt | None) -> bool:
    """The ast twin of the ``if`` case of :func:`_ends_with_return`."""
    if not isinstance(stmt, ast.If):
        return False
    branches: list[list[ast.stmt]] = [stmt.body]
    orelse = stmt.orelse
    while len(orelse) == 1 and isinstance(orelse[0], ast.If):
        branches.append(orelse[0].body)
        orelse = orelse[0].orelse
    if not orelse:
        return False
    branches.append(orelse)

    def ends(block: list[ast.stmt]) -> bool:
        return bool(block) and (
            isinstance(block[-1], ast.Return | ast.Raise) or _ast_returns_or_raises(block[-1])
        )

    return all(ends(b) for b in branches) and any(
        isinstance(b[-1], ast.Return) or _ast_returns_or_raises(b[-1]) for b in branches
    )


def loop_header(loop: cst.For | cst.While) -> cst.BaseExpression:
    """What decides how often the loop runs: ``range(...)`` or the ``while`` test."""
    return loop.iter if isinstance(loop, cst.For) else loop.test


def _ends_with_return(stmt: cst.CSTNode) -> bool:
    """A ``return``, a ``with`` block that ends with one, or an ``if``/``else`` whose every
    branch returns or raises (``if test: raise ... else: return ret``)."""
    if isinstance(stmt, cst.With) and isinstance(stmt.body, cst.IndentedBlock):
        return bool(stmt.body.body) and _ends_with_return(stmt.body.body[-1])
    if isinstance(stmt, cst.If):
        branches = _if_branches(stmt)
        return (
            branches is not None
            and all(b and (_ends_with_return(b[-1]) or _exits(b[-1])) for b in branches)
            and any(_ends_with_return(b[-1]) for b in branches)
        )
    return _last_small_is(stmt, cst.Return)


def _if_branches(stmt: cst.If) -> list[Sequence[cst.BaseStatement]] | None:
    """The blocks of ``if``/``elif``/``else``; None without a final ``else``."""
    branches: list[Sequence[cst.BaseStatement]] = [stmt.body.body]  # type: ignore[list-item]
    orelse = stmt.orelse
    while isinstance(orelse, cst.If):
        branches.append(orelse.body.body)  # type: ignore[arg-type]
        orelse = orelse.orelse
    if not isinstance(orelse, cst.Else):
        return None
    branches.append(orelse.body.body)  # type: ignore[arg-type]
    return branches


def _last_small_is(stmt: cst.CSTNode | None, kind: type) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and bool(stmt.body)
        and isinstance(stmt.body[-1], kind)
    )


def _is_counter_bump(stmt: cst.CSTNode) -> bool:
    """``attempts += 1`` (or ``-=``) alone on its line."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    return (
        isinstance(small, cst.AugAssign)
        and isinstance(small.target, cst.Name)
        and isinstance(small.operator, cst.AddAssign | cst.SubtractAssign)
        and isinstance(small.value, cst.Integer)
    )


def _attempt_body(
    loop: cst.For | cst.While,
    style: str,
    skip: int = 0,
    flag: bool = False,
    setup: Sequence[int] = (),
) -> list[Any]:
    """The statements of one attempt, from the (updated) loop, without the ``skip``
    counter updates that open the try (nor the final ``success = True`` with ``flag``),
    after the ``setup`` statements before the try (their indexes in the loop body); a
    ``finally`` run after every attempt closes them (``try: ... finally: ...``).
    Comments go with them: the ``try:`` line's and those of the dropped counter updates
    stand above the try body's first statement (see :func:`_attempt_footer` for the
    others)."""
    assert isinstance(loop.body, cst.IndentedBlock)
    try_ = next(s for s in loop.body.body if isinstance(s, cst.Try))
    every: list[Any] = list(try_.body.body)
    stmts = every[skip:]
    if flag:
        stmts = stmts[:-1]
    if style == "break" and try_.orelse is None:
        stmts = _without_final_break(stmts)
    if not stmts:
        stmts = [cst.SimpleStatementLine([cst.Pass()])]
    above: list[cst.EmptyLine] = []
    header = try_.body.header.comment if isinstance(try_.body, cst.IndentedBlock) else None
    if header is not None:
        above.append(cst.EmptyLine(comment=header))
    for dropped in every[:skip]:
        above.extend(_comments(dropped))
    first = stmts[0]
    stmts = [first.with_changes(leading_lines=[*above, *_comments(first)]), *stmts[1:]]
    if try_.finalbody is not None:  # the cleanup after every attempt closes the step's body
        stmts = [cst.Try(body=cst.IndentedBlock(body=stmts), handlers=[], finalbody=try_.finalbody)]
    if setup:
        before = [loop.body.body[i] for i in setup]
        before[0] = before[0].with_changes(leading_lines=_comments(before[0]))
        stmts = [*before, *stmts]
    return stmts


def _attempt_footer(
    loop: cst.For | cst.While, style: str, flag: bool = False
) -> list[cst.EmptyLine]:
    """Comments after the attempt's last statement: those of a dropped final ``break``
    or ``success = True``, and the ones that close the try body."""
    assert isinstance(loop.body, cst.IndentedBlock)
    try_ = next(s for s in loop.body.body if isinstance(s, cst.Try))
    stmts: list[Any] = list(try_.body.body)
    out: list[cst.EmptyLine] = []
    if flag and stmts:
        out.extend(_comments(stmts[-1]))
        stmts = stmts[:-1]
    if style == "break" and try_.orelse is None:
        kept = _without_final_break(stmts)
        if len(kept) < len(stmts):
            out.extend(_comments(stmts[-1]))
    if isinstance(try_.body, cst.IndentedBlock):
        out.extend(line for line in try_.body.footer if line.comment is not None)
    return out


def _comments(stmt: Any) -> list[cst.EmptyLine]:
    return [line for line in getattr(stmt, "leading_lines", ()) if line.comment is not None]


def _reraises_only(handler: cst.ExceptHandler) -> bool:
    stmts = handler.body.body
    if len(stmts) != 1 or not isinstance(stmts[0], cst.SimpleStatementLine):
        return False
    small = stmts[0].body
    if len(small) != 1 or not isinstance(small[0], cst.Raise):
        return False
    exc = small[0].exc
    return exc is None or (
        isinstance(exc, cst.Name) and exc.value == _as_name(handler) and small[0].cause is None
    )


def _as_name(handler: cst.ExceptHandler) -> str | None:
    if handler.name is not None and isinstance(handler.name.name, cst.Name):
        return handler.name.name.value
    return None


def _saved_exception(stmts: Sequence[cst.BaseStatement], as_name: str | None) -> str | None:
    """``last_exc = e`` at the top level of the handler."""
    if as_name is None:
        return None
    for stmt in stmts:
        if m.matches(
            stmt,
            m.SimpleStatementLine(
                body=[m.Assign(targets=[m.AssignTarget(target=m.Name())], value=m.Name(as_name))]
            ),
        ):
            assert isinstance(stmt, cst.SimpleStatementLine)
            small = stmt.body[0]
            assert isinstance(small, cst.Assign)
            target = small.targets[0].target
            assert isinstance(target, cst.Name)
            return target.value
    return None


def _reraises_saved(stmt: cst.BaseStatement, saved: str | None) -> bool:
    return saved is not None and m.matches(
        stmt, m.SimpleStatementLine(body=[m.Raise(exc=m.Name(saved), cause=None)])
    )


def _exits(stmt: cst.BaseStatement) -> bool:
    return _last_small_is(stmt, cst.Raise) or _last_small_is(stmt, cst.Return)


def _following(func: cst.FunctionDef, loop: cst.CSTNode) -> list[Any]:
    body: list[Any] = list(func.body.body)
    if loop in body:
        return body[body.index(loop) + 1 :]
    return []


def _assigned_names(stmts: Sequence[cst.CSTNode]) -> set[str]:
    names: set[str] = set()
    for stmt in stmts:
        for node in _walk_own(stmt):
            target = getattr(node, "target", None)
            is_assignment = isinstance(node, cst.AssignTarget | cst.AugAssign | cst.AnnAssign)
            if is_assignment and isinstance(target, cst.Name):
                names.add(target.value)
    return names


def _names_read_in(stmts: Sequence[cst.CSTNode]) -> set[str]:
    out: set[str] = set()
    for stmt in stmts:
        for node in _walk_own(stmt):
            if isinstance(node, cst.Name):
                out.add(node.value)
    return out


def _small_statements(stmts: Sequence[cst.CSTNode]) -> Iterator[cst.BaseSmallStatement]:
    for stmt in stmts:
        for node in _walk_own(stmt):
            if isinstance(node, cst.BaseSmallStatement):
                yield node


def _walk_own(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node under ``node``, not descending into nested functions, lambdas or classes."""
    stack = list(reversed(node.children))
    while stack:
        child = stack.pop()
        yield child
        if isinstance(child, cst.FunctionDef | cst.ClassDef | cst.Lambda):
            continue
        stack.extend(reversed(child.children))


def _contains_return(stmts: Sequence[cst.CSTNode]) -> bool:
    return any(isinstance(n, cst.Return) for s in stmts for n in [s, *_walk_own(s)])


def _uses_zero_arg_super(node: cst.CSTNode) -> bool:
    return any(
        isinstance(n, cst.Call)
        and isinstance(n.func, cst.Name)
        and n.func.value == "super"
        and not n.args
        for n in _walk_own(node)
    )


def _declared_global(func: cst.FunctionDef) -> set[str]:
    """Names the function declares ``global`` or ``nonlocal``."""
    out: set[str] = set()
    for node in _walk_own(func.body):
        if isinstance(node, cst.Global | cst.Nonlocal):
            out.update(item.name.value for item in node.names)
    return out


def _private_name(node: cst.CSTNode) -> str | None:
    """A ``__name`` that Python mangles inside a class: it breaks outside the class."""
    for n in _walk_all(node):
        if isinstance(n, cst.Name) and n.value.startswith("__") and not n.value.endswith("__"):
            return n.value
    return None


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


def fixed_iterable(cm: Any, loop: cst.For, scope: Any) -> cst.BaseExpression:
    """The loop's iterable, with a module constant's literal in place of its name
    (``for delay in DELAYS:`` loops over ``(1, 2, 4)``)."""
    iterable = loop.iter
    if (
        isinstance(iterable, cst.Name)
        and iterable.value in cm.sequences
        and (scope is None or not _is_local(scope, iterable.value))
    ):
        return cm.sequences[iterable.value]
    return iterable


def _is_local(scope: Scope, name: str) -> bool:
    """``name`` is bound in a function scope enclosing (or equal to) ``scope``."""
    current: Scope | None = scope
    while current is not None and not isinstance(current, GlobalScope):
        if isinstance(current, FunctionScope) and current.assignments[name]:
            return True
        parent = current.parent
        current = parent if parent is not current else None
    return False


def _function_scopes(scope: Scope) -> set[Scope]:
    """``scope`` and the function scopes enclosing it."""
    out: set[Scope] = set()
    current: Scope | None = scope
    while current is not None and not isinstance(current, GlobalScope):
        if isinstance(current, FunctionScope):
            out.add(current)
        parent = current.parent
        current = parent if parent is not current else None
    return out


def _within(inner: CodeRange, outer: CodeRange) -> bool:
    return (inner.start.line, inner.start.column) >= (outer.start.line, outer.start.column) and (
        inner.end.line,
        inner.end.column,
    ) <= (outer.end.line, outer.end.column)


def _accesses_within(
    codemod: LoopScope, region: cst.CSTNode, region_range: CodeRange
) -> Iterator[Any]:
    scopes: set[Scope] = set()
    for node in [region, *_walk_all(region)]:
        scope = codemod.get_metadata(ScopeProvider, node, None)
        if scope is not None:
            scopes.add(scope)
    seen: set[int] = set()
    for scope in scopes:
        for access in scope.accesses:
            node = access.node
            if id(node) in seen or not isinstance(node, cst.Name):
                continue
            seen.add(id(node))
            position = codemod.get_metadata(PositionProvider, node, None)
            if position is not None and _within(position, region_range):
                yield access


def _walk_all(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = list(node.children)
    while stack:
        child = stack.pop()
        yield child
        stack.extend(child.children)


def _spacing(top_level: cst.CSTNode | None) -> list[cst.EmptyLine]:
    """As many blank lines before a new module-level function as before its neighbour."""
    lines = getattr(top_level, "leading_lines", ())
    blanks = sum(1 for line in lines if line.comment is None)
    return [cst.EmptyLine() for _ in range(max(blanks, 1))]


def _types_src(types: list[str]) -> str:
    return types[0] if len(types) == 1 else f"({', '.join(types)})"


def _first_line(text: str) -> str:
    """The first line of code (comments skipped), at most 60 characters."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    line = lines[0] if lines else text.strip()
    return line if len(line) <= 60 else line[:57] + "..."


#: calls that read a terminal or a person: ``input()``, ``getpass()``, ``password()``,
#: ``code_callback()``, ``prompt_for_token()``, ``click.confirm()``
_ASKS_USER = re.compile(
    r"^(raw_)?input$|getpass|passw(or)?d|passphrase|prompt|^ask_(user|yes|question|for)"
    r"|^confirm$|code_callback",
    re.IGNORECASE,
)


class _BodyFinder(cst.CSTVisitor):
    """What the attempt body does that a step cannot: yield, leave the loop, nest a retry."""

    def __init__(self) -> None:
        self.yields = False
        self.loop_exits = False
        self.nested_retry = False
        self.global_decl = False
        self.asks_user = False
        self.names: set[str] = set()
        #: the names the body reads (``names`` also has those it only assigns)
        self.read: set[str] = set()
        self._stores: set[int] = set()
        #: the names each enclosing comprehension binds (its own scope)
        self._comprehension_names: list[set[str]] = []
        self._loops = 0
        self._functions = 0

    def _mark_store(self, target: cst.CSTNode | None) -> None:
        """Names bound by ``target`` (through tuples, lists and stars only)."""
        if isinstance(target, cst.Name):
            self._stores.add(id(target))
        elif isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._mark_store(element.value)
        elif isinstance(target, cst.StarredElement):
            self._mark_store(target.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._mark_store(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._mark_store(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._mark_store(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._mark_store(node.target)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Name(self, node: cst.Name) -> None:
        if any(node.value in local for local in self._comprehension_names):
            return  # `for _ in range(6)` inside a comprehension: its own name
        self.names.add(node.value)
        if id(node) not in self._stores:
            self.read.add(node.value)

    def _enter_comprehension(self, node: cst.BaseComp | cst.DictComp) -> None:
        local: set[str] = set()
        comp_for: cst.CompFor | None = node.for_in
        while comp_for is not None:
            local |= {n.value for n in _walk_all(comp_for.target) if isinstance(n, cst.Name)}
            if isinstance(comp_for.target, cst.Name):
                local.add(comp_for.target.value)
            comp_for = comp_for.inner_for_in
        self._comprehension_names.append(local)

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> None:
        self._enter_comprehension(node)

    def leave_GeneratorExp(self, original_node: cst.GeneratorExp) -> None:
        self._comprehension_names.pop()

    def visit_ListComp(self, node: cst.ListComp) -> None:
        self._enter_comprehension(node)

    def leave_ListComp(self, original_node: cst.ListComp) -> None:
        self._comprehension_names.pop()

    def visit_SetComp(self, node: cst.SetComp) -> None:
        self._enter_comprehension(node)

    def leave_SetComp(self, original_node: cst.SetComp) -> None:
        self._comprehension_names.pop()

    def visit_DictComp(self, node: cst.DictComp) -> None:
        self._enter_comprehension(node)

    def leave_DictComp(self, original_node: cst.DictComp) -> None:
        self._comprehension_names.pop()

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)  # `retries=5`: the keyword is no read of `retries`
        return False

    def visit_Yield(self, node: cst.Yield) -> None:
        self.yields = True

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = func.value if isinstance(func, cst.Name) else None
        if isinstance(func, cst.Attribute):
            name = func.attr.value
        if name is not None and _ASKS_USER.search(name):
            self.asks_user = True

    def visit_Global(self, node: cst.Global) -> None:
        self.global_decl = True

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.global_decl = True

    def visit_For(self, node: cst.For) -> None:
        self._mark_store(node.target)
        if _is_candidate(node) and _cst_retry_like(node):
            self.nested_retry = True
        self._loops += 1

    def leave_For(self, original_node: cst.For) -> None:
        self._loops -= 1

    def visit_While(self, node: cst.While) -> None:
        if _is_candidate(node) and _cst_retry_like(node):
            self.nested_retry = True
        self._loops += 1

    def leave_While(self, original_node: cst.While) -> None:
        self._loops -= 1

    def visit_Break(self, node: cst.Break) -> None:
        if self._loops == 0:
            self.loop_exits = True

    def visit_Continue(self, node: cst.Continue) -> None:
        if self._loops == 0:
            self.loop_exits = True


def _own_has(stmts: Sequence[cst.CSTNode], kinds: tuple[type, ...]) -> bool:
    """A node of ``kinds`` in ``stmts``; a ``break``/``continue`` of a nested loop is the
    nested loop's own."""
    stack = list(stmts)
    while stack:
        node = stack.pop()
        if isinstance(node, kinds):
            return True
        if isinstance(node, cst.FunctionDef | cst.ClassDef | cst.Lambda):
            continue
        if isinstance(node, cst.For | cst.While):
            if cst.Return in kinds or cst.Raise in kinds:
                stack.extend(n for n in _walk_own(node) if isinstance(n, cst.Return | cst.Raise))
            continue
        stack.extend(node.children)
    return False


def _header_names(loop: cst.For | cst.While) -> set[str]:
    return {
        n.value
        for n in [loop_header(loop), *_walk_own(loop_header(loop))]
        if isinstance(n, cst.Name)
    }


def _success_flag(
    loop: cst.For | cst.While, try_: cst.Try, after: Sequence[cst.BaseStatement] = ()
) -> str | None:
    """A name of the ``while`` test that the try's success path (its body, its ``else``,
    the statements after it) sets to a constant (``success = True``, ``retries = 0``)."""
    if not isinstance(loop, cst.While):
        return None
    names = _header_names(loop)
    blocks: list[Sequence[cst.BaseStatement]] = [try_.body.body, after]  # type: ignore[list-item]
    if try_.orelse is not None:
        blocks.append(try_.orelse.body.body)  # type: ignore[arg-type]
    for block in blocks:
        for stmt in block:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if (
                    isinstance(small, cst.Assign)
                    and len(small.targets) == 1
                    and isinstance(small.targets[0].target, cst.Name)
                    and small.targets[0].target.value in names
                    and isinstance(small.value, cst.Name | cst.Integer)
                ):
                    return small.targets[0].target.value
    return None


def _flow_reason(
    loop: cst.For | cst.While,
    stmts: Sequence[cst.BaseStatement],
    index: int,
    code: Any,
) -> str:
    """Why a loop whose ``try`` does not leave it on success is not rewritten: the
    construct that decides the retry, named."""
    try_ = stmts[index]
    assert isinstance(try_, cst.Try)
    pre, post = stmts[:index], stmts[index + 1 :]
    for stmt in pre:
        if _own_has([stmt], (cst.Return, cst.Raise, cst.Break)):
            return (
                f"the loop body leaves the loop before its try (`{_first_line(code(stmt))}`):"
                " an attempt is more than the try"
            )
    flag = _success_flag(loop, try_, post)
    if flag is not None:
        return (
            f"the attempt's success is recorded in `{flag}`, which the loop test reads"
            " (a success flag)"
        )
    for stmt in post:
        if isinstance(stmt, cst.If) and (
            _own_has([stmt], (cst.Continue,))
            or any(
                isinstance(n, cst.Call)
                and _ast_is_sleep(ast.parse(_call_name_src(n), mode="eval").body)
                for n in _walk_own(stmt)
            )
        ):
            from ._loop_results import decision_detail

            detail = decision_detail(
                loop, try_, list(post[: post.index(stmt)]), stmt.test, code, stmt
            )
            return (
                f"the retry is decided after the try, by `{_first_line(code(stmt.test))}`,"
                " rather than by an exception" + (f"; {detail}" if detail else "")
            )
    last = try_.body.body[-1] if try_.body.body else None
    if isinstance(last, cst.If) and _own_has([last], (cst.Return, cst.Break)):
        from ._loop_results import decision_detail

        detail = decision_detail(loop, try_, [], last.test, code)
        shown = f"the attempt leaves the loop only when `{_first_line(code(last.test))}`"
        return shown + (f"; {detail}" if detail else "")
    if post:
        return f"work after the try runs after every attempt (`{_first_line(code(post[0]))}`)"
    return "the attempt's success does not leave the loop (a success flag, or work after the try)"


def _call_name_src(call: cst.Call) -> str:
    """``name()`` or ``owner.attr()`` of a call, enough for :func:`_ast_is_sleep`."""
    func = call.func
    if isinstance(func, cst.Attribute):
        return f"_.{func.attr.value}()"
    if isinstance(func, cst.Name):
        return f"{func.value}()"
    return "_()"


def _nested_try_reason(stmts: Sequence[cst.BaseStatement], code: Any) -> str:
    """A loop whose ``try`` sits inside an ``if`` of its body."""
    assigned = _assigned_names(stmts)
    for index, stmt in enumerate(stmts):
        if not isinstance(stmt, cst.If):
            continue
        earlier = _assigned_names(stmts[:index])
        carried = sorted((_names_read_in([cst.Expr(stmt.test)]) & assigned) - earlier)
        if carried:  # read before the body sets it: the value of an earlier attempt
            return (
                f"the loop body tests `{_first_line(code(stmt.test))}`, which reads"
                f" `{carried[0]}`, set by an earlier attempt (state carried into the next"
                " attempt)"
            )
    for stmt in stmts:
        if isinstance(stmt, cst.If) and _nested_tries([stmt]):
            return (
                f"the try is inside `if {_first_line(code(stmt.test))}`: an attempt is more"
                " than the try"
            )
    return "the loop body has no try of its own"


def _ast_recursive_retry(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The ast twin of :func:`_recursive_retry` (the file pre-check)."""
    params = {a.arg for a in [*func.args.args, *func.args.kwonlyargs]}
    for node in _ast_own(func.body):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func
        name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
        if name != func.name:
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if (
                isinstance(arg, ast.BinOp)
                and isinstance(arg.op, ast.Sub | ast.Add)
                and isinstance(arg.left, ast.Name)
                and arg.left.id in params
                and _RETRY_WORDS.search(arg.left.id)
                and isinstance(arg.right, ast.Constant)
            ):
                return True
    return False


def _recursive_retry(func: cst.FunctionDef, code: Any) -> str | None:
    """A function that retries by calling itself with one retry fewer
    (``return self.send(request, retries - 1)``): the reason it is not rewritten."""
    p = func.params
    params = {param.name.value for param in [*p.params, *p.kwonly_params]}
    calls: list[tuple[cst.Call, str]] = []
    for node in _walk_own(func.body):
        if not isinstance(node, cst.Call):
            continue
        callee = node.func
        name = callee.attr.value if isinstance(callee, cst.Attribute) else None
        if isinstance(callee, cst.Name):
            name = callee.value
        if name != func.name.value:
            continue
        for arg in node.args:
            value = arg.value
            if (
                isinstance(value, cst.BinaryOperation)
                and isinstance(value.operator, cst.Subtract | cst.Add)
                and isinstance(value.left, cst.Name)
                and value.left.value in params
                and _RETRY_WORDS.search(value.left.value)
                and isinstance(value.right, cst.Integer)
            ):
                calls.append((node, code(value)))
                break
    if not calls:
        return None
    where = "" if len(calls) == 1 else f" from {len(calls)} places"
    return (
        f"retries by calling itself with `{calls[0][1]}`{where} (a recursion, not a loop):"
        " make it a step by hand, its attempts read from the retries argument"
    )


def _set_only_by_last(name: str, stmts: Sequence[cst.BaseStatement]) -> bool:
    """``name`` is not assigned by the attempt, or only by its last statement, a plain
    ``name = ...`` (``a, b = ...``): an attempt that fails leaves it as it was."""
    if not stmts or name not in _assigned_names(stmts):
        return True
    if name in _assigned_names(stmts[:-1]):
        return False
    last = stmts[-1]
    if not isinstance(last, cst.SimpleStatementLine) or len(last.body) != 1:
        return False
    small = last.body[0]
    if not isinstance(small, cst.Assign):
        return False
    if any(isinstance(n, cst.NamedExpr) for n in _walk_own(small.value)):
        return False
    for target in small.targets:
        node = target.target
        names = (
            [e.value for e in node.elements] if isinstance(node, cst.Tuple | cst.List) else [node]
        )
        if not all(isinstance(n, cst.Name) for n in names):
            return False
    return True


def _read_in(name: str, stmts: Sequence[cst.CSTNode]) -> bool:
    """``name`` is read in ``stmts`` (not only assigned)."""
    uses = stores = 0
    for stmt in stmts:
        for node in _walk_own(stmt):
            if isinstance(node, cst.Name) and node.value == name:
                uses += 1
            elif isinstance(node, cst.AssignTarget | cst.AugAssign):
                target = node.target
                if isinstance(node, cst.AugAssign):
                    continue  # `name += 1` reads it too
                elements = (
                    [e.value for e in target.elements]
                    if isinstance(target, cst.Tuple | cst.List)
                    else [target]
                )
                stores += sum(1 for e in elements if isinstance(e, cst.Name) and e.value == name)
    return uses > stores


def tidy_handler(body: list[Any], as_name: str | None) -> tuple[list[Any], str | None]:
    """A handler written at the call site, as a team would write it: without a trailing
    ``pass`` after other statements, and without ``as e`` when its body no longer reads
    ``e`` (the log that read it went into the policy)."""
    if not body:
        body = [cst.SimpleStatementLine([cst.Pass()])]
    if len(body) > 1 and _is_pass(body[-1]):
        body = body[:-1]
    if as_name and as_name not in _names_read_in(body):
        as_name = None
    return body, as_name


def _is_pass(stmt: cst.CSTNode) -> bool:
    """``pass`` alone on its line."""
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Pass)
    )
