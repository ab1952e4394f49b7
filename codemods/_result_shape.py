"""The shape of a retry decided by a returned value, read with :mod:`ast` alone.

One test, shared by the retry-loop codemod (which loops it analyses) and the audit
(which loops it reports), so the two never disagree about what is a candidate::

    for attempt in range(5):          # a count: range(...), `while n < N`, or a counter
        resp = session.get(url)       # the attempt: no try anywhere in the loop
        if resp.status_code == 200:   # the decision: an `if` whose body leaves the loop
            return resp.json()
        time.sleep(2)                 # between attempts: a sleep

A loop with no count (``while True:`` polling until a value comes) is a supervisor, not
a retry; a loop that only waits for a condition (``if ready(): break``, a health check
whose response is read for nothing else) is a readiness poll: neither is a candidate,
neither is reported. The value tested must be one the attempt assigns and the code run
when it is accepted uses (or hands on with ``break``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence

_RETRY_WORDS = re.compile(r"attempt|retr|tries|tried", re.IGNORECASE)


def _own(stmts: Sequence[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``stmts``, not entering nested functions, lambdas or classes."""
    stack = list(stmts)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
            ):
                stack.append(child)


def _leaves(stmts: Sequence[ast.stmt]) -> bool:
    """The block ends with ``return`` or ``break``."""
    return bool(stmts) and isinstance(stmts[-1], ast.Return | ast.Break)


def decision_index(body: Sequence[ast.stmt]) -> int | None:
    """The first statement of the loop body that is an ``if`` (without ``elif``) whose
    body ends by leaving the loop."""
    for index, stmt in enumerate(body):
        if isinstance(stmt, ast.If) and _leaves(stmt.body):
            if len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
                return None  # an elif chain: several decisions
            return index
    return None


def _assigned(stmts: Sequence[ast.stmt]) -> set[str]:
    out: set[str] = set()
    for node in _own(stmts):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
    return out


def _read(node: ast.AST | Sequence[ast.AST]) -> set[str]:
    nodes = node if isinstance(node, Sequence) else [node]
    return {n.id for n in _own(nodes) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _is_sleep(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("sleep", "_sleep")


def _counted(loop: ast.For | ast.AsyncFor | ast.While) -> bool:
    """A loop with a count: ``range(...)``, a comparison in the ``while`` test, or
    ``while True`` updating a retry counter."""
    if isinstance(loop, ast.For | ast.AsyncFor):
        it = loop.iter
        return (
            isinstance(it, ast.Call)
            and isinstance(it.func, ast.Name)
            and it.func.id == "range"
            and 1 <= len(it.args) <= 2
        )
    test = loop.test
    if any(isinstance(n, ast.Compare) for n in ast.walk(test)):
        return True
    if isinstance(test, ast.Constant) and test.value:
        return any(
            isinstance(n, ast.AugAssign)
            and isinstance(n.target, ast.Name)
            and _RETRY_WORDS.search(n.target.id)
            for n in _own(loop.body)
        )
    return False


def ast_result_retry(loop: ast.For | ast.AsyncFor | ast.While) -> bool:
    """A counted loop with no ``try`` whose attempt is left by an ``if`` on a value and
    which sleeps between attempts (see the module's docstring)."""
    if not _counted(loop):
        return False
    if any(isinstance(n, ast.Try | ast.TryStar) for n in _own(loop.body)):
        return False
    index = decision_index(loop.body)
    if index is None:
        return False
    decision = loop.body[index]
    assert isinstance(decision, ast.If)
    values = _assigned(loop.body[:index]) & _read(decision.test)
    if not values:
        return False  # waits for a condition: a readiness poll
    if not isinstance(decision.body[-1], ast.Break) and not values & _read(decision.body):
        return False  # the value is read for nothing else: a readiness poll
    between = [*decision.orelse, *loop.body[index + 1 :]]
    return any(_is_sleep(n) for n in _own(between))


__all__ = ["ast_result_retry", "decision_index", "value_flag"]


def value_flag(loop: ast.While, try_: ast.Try) -> str | None:
    """``while conn is None:`` (``while not conn and tries < 5:``) whose try ends with
    ``conn = connect()``: the value the attempt sets is the loop's success (a value flag),
    set nowhere else in the loop. Its name, or None."""
    if not try_.body:
        return None
    test = loop.test
    sides = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
    flags: set[str] = set()
    for side in sides:
        if (
            isinstance(side, ast.UnaryOp)
            and isinstance(side.op, ast.Not)
            and isinstance(side.operand, ast.Name)
        ):
            flags.add(side.operand.id)
        elif (
            isinstance(side, ast.Compare)
            and isinstance(side.left, ast.Name)
            and len(side.ops) == 1
            and isinstance(side.ops[0], ast.Is)
            and isinstance(side.comparators[0], ast.Constant)
            and side.comparators[0].value is None
        ):
            flags.add(side.left.id)
    last = try_.body[-1]
    if not (
        isinstance(last, ast.Assign)
        and len(last.targets) == 1
        and isinstance(last.targets[0], ast.Name)
        and last.targets[0].id in flags
        and not isinstance(last.value, ast.Constant)
    ):
        return None
    name = last.targets[0].id
    stores = [
        node
        for node in _own(loop.body)
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store)
    ]
    return name if stores == [last.targets[0]] else None
