"""A tiny, side-effect free evaluator for the arithmetic found in retry loops.

Retry loops compute their delays and stop conditions with small expressions
(``2 ** attempt``, ``min(60, base * 2 ** i)``, ``attempts >= MAX_RETRIES``).
The codemods evaluate them for attempt 1, 2, ... to learn the policy, instead
of matching their text. Only numbers, arithmetic, comparisons and a handful of
pure builtins are understood; anything else raises :class:`Unknown` naming
what could not be evaluated.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

Number = int | float | bool


class Unknown(Exception):
    """The expression uses something whose value cannot be known statically."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "float": float,
    "int": int,
    "abs": abs,
    "round": round,
}
_RANDOM = {"uniform", "random", "randint", "randrange", "triangular", "gauss"}
_MAX_POW = 10_000


def is_random_call(node: ast.AST) -> bool:
    """``random.uniform(...)``, ``random.random()``, ``uniform(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return (
            func.attr in _RANDOM and isinstance(func.value, ast.Name) and "random" in func.value.id
        )
    return isinstance(func, ast.Name) and func.id in _RANDOM


def strip_jitter(expr: ast.expr) -> tuple[ast.expr, bool]:
    """Remove random jitter terms: ``d + random.uniform(0, 1)``, ``d * random.uniform(.5, 1)``,
    ``random.uniform(0, d)``. Returns the deterministic part and whether jitter was found."""
    if is_random_call(expr):
        assert isinstance(expr, ast.Call)
        if len(expr.args) == 2 and not _contains_random(expr.args[1]):
            return expr.args[1], True  # uniform(low, d): full or half jitter around d
        return expr, False
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add | ast.Mult):
        left_random = _contains_random(expr.left)
        right_random = _contains_random(expr.right)
        if right_random and not left_random:
            return expr.left, True
        if left_random and not right_random:
            return expr.right, True
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Name)
        and expr.func.id
        in (
            "min",
            "max",
        )
    ):
        found = False
        args: list[ast.expr] = []
        for arg in expr.args:
            stripped, jittered = strip_jitter(arg)
            args.append(stripped)
            found = found or jittered
        return ast.Call(func=expr.func, args=args, keywords=expr.keywords), found
    return expr, False


def _uniform_args(node: ast.AST) -> tuple[ast.expr, ast.expr] | None:
    """``(a, b)`` of ``random.uniform(a, b)``; ``(0, r)`` of ``random.random() * r``;
    ``(0, 1)`` of ``random.random()``."""
    if is_random_call(node):
        assert isinstance(node, ast.Call)
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("uniform", "randint") and len(node.args) == 2 and not node.keywords:
            return node.args[0], node.args[1]
        if name == "random" and not node.args and not node.keywords:
            return ast.Constant(0), ast.Constant(1)  # `d + random.random()`: [0, 1)
        return None
    if (  # `random.randint(20, 500) / 100.0`: a range scaled by a constant
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div | ast.Mult)
        and isinstance(node.left, ast.Call)
        and is_random_call(node.left)
        and not _contains_random(node.right)
    ):
        inner = _uniform_args(node.left)
        if inner is not None:
            low, high = inner
            return (
                ast.BinOp(left=low, op=node.op, right=node.right),
                ast.BinOp(left=high, op=node.op, right=node.right),
            )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        for rnd, other in ((node.left, node.right), (node.right, node.left)):
            if (
                is_random_call(rnd)
                and isinstance(rnd, ast.Call)
                and not rnd.args
                and isinstance(rnd.func, ast.Attribute | ast.Name)
                and (rnd.func.attr if isinstance(rnd.func, ast.Attribute) else rnd.func.id)
                == "random"
                and not _contains_random(other)
            ):
                return ast.Constant(0), other
    return None


def split_uniform(expr: ast.expr) -> tuple[ast.expr, ast.expr] | None:
    """``(deterministic part, width)`` of a delay that adds a uniform draw:
    ``random.uniform(a, b)`` -> ``(a, b - a)``; ``d + random.uniform(a, b)`` ->
    ``(d + a, b - a)``; ``d + random.random() * r`` -> ``(d, r)``. None otherwise."""
    found = _uniform_args(expr)
    if found is not None and not any(_contains_random(x) for x in found):
        low, high = found
        return low, ast.BinOp(left=high, op=ast.Sub(), right=low)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        for rnd, other in ((expr.right, expr.left), (expr.left, expr.right)):
            inner = _uniform_args(rnd)
            if inner is not None and not _contains_random(other):
                low, high = inner
                if any(_contains_random(x) for x in inner):
                    return None
                det = ast.BinOp(left=other, op=ast.Add(), right=low)
                return det, ast.BinOp(left=high, op=ast.Sub(), right=low)
    return None


def is_uniform_draw(expr: ast.expr) -> bool:
    """The whole expression is one uniform draw: ``random.uniform(a, b)``,
    ``random.randint(a, b) / k``, ``random.random() * r``."""
    found = _uniform_args(expr)
    return found is not None and not any(_contains_random(x) for x in found)


def discrete_draw(expr: ast.expr) -> bool:
    """The delay draws whole numbers (``random.randint``), scaled or not."""
    for node in ast.walk(expr):
        if is_random_call(node) and isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "randint":
                return True
    return False


def _contains_random(node: ast.AST) -> bool:
    return any(is_random_call(n) for n in ast.walk(node))


def parse(source: str) -> ast.expr:
    """Parse one expression (an assignment expression, valid only in parentheses on its
    own, is parsed in them); raise :class:`Unknown` for text that is no expression."""
    text = source.strip()
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError:
        try:
            return ast.parse(f"({text})", mode="eval").body
        except SyntaxError:
            raise Unknown(text) from None


def evaluate(node: ast.AST, env: Mapping[str, Any]) -> Any:
    """Evaluate ``node`` with names looked up in ``env``; raise :class:`Unknown` otherwise.

    ``env`` may hold tuples of numbers (a module's ``DELAYS = (1, 5, 30)``): they are
    read by index and by ``len``, never as a value of their own."""
    value = _value(node, env)
    if isinstance(value, tuple):
        raise Unknown(ast.unparse(node))
    return value


def _value(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Subscript):
        try:
            sequence = _value(node.value, env)
            index = evaluate(node.slice, env)
        except Unknown:
            raise Unknown(ast.unparse(node)) from None  # `resp.headers['Retry-After']`
        if not isinstance(sequence, tuple) or isinstance(index, bool | float | str):
            raise Unknown(ast.unparse(node))
        try:
            return sequence[index]
        except (IndexError, TypeError) as exc:  # the legacy code raised IndexError here
            raise Unknown(ast.unparse(node)) from exc
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "len"
        and len(node.args) == 1
        and not node.keywords
        and "len" not in env
    ):
        sequence = _value(node.args[0], env)
        if isinstance(sequence, tuple):
            return len(sequence)
        raise Unknown(ast.unparse(node))
    if isinstance(node, ast.Constant):
        if isinstance(node.value, int | float | bool | str) or node.value is None:
            return node.value  # a string only takes part in comparisons (see BinOp)
        raise Unknown(repr(node.value))
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise Unknown(node.id)
    if isinstance(node, ast.UnaryOp):
        value = evaluate(node.operand, env)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        if isinstance(node.op, ast.Not):
            return not value
        raise Unknown(ast.unparse(node))
    if isinstance(node, ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise Unknown(ast.unparse(node))
        left = evaluate(node.left, env)
        right = evaluate(node.right, env)
        if isinstance(left, str) or isinstance(right, str):
            raise Unknown(ast.unparse(node))
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_POW:
            raise Unknown(ast.unparse(node))
        try:
            return op(left, right)
        except (ArithmeticError, TypeError) as exc:
            raise Unknown(ast.unparse(node)) from exc
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for value in node.values:
                result = evaluate(value, env)
                if not result:
                    return result
            return result
        result = False
        for value in node.values:
            result = evaluate(value, env)
            if result:
                return result
        return result
    if isinstance(node, ast.Compare):
        left = evaluate(node.left, env)
        for op_node, comparator in zip(node.ops, node.comparators, strict=True):
            op = _CMPOPS.get(type(op_node))
            if op is None:
                raise Unknown(ast.unparse(node))
            right = evaluate(comparator, env)
            if not op(left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return evaluate(node.body if evaluate(node.test, env) else node.orelse, env)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        func = _FUNCS.get(node.func.id)
        if func is not None:
            return func(*(evaluate(arg, env) for arg in node.args))
    if isinstance(node, ast.Call) and (text := ast.unparse(node)) in env:
        return env[text]  # a call read as a run-time value (a configuration read)
    raise Unknown(ast.unparse(node))


class _Flatten(ast.NodeTransformer):
    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        parts: list[str] = [node.attr]
        value: ast.expr = node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name):
            parts.append(value.id)
            return ast.copy_location(ast.Name(id=".".join(reversed(parts)), ctx=node.ctx), node)
        return self.generic_visit(node)


def flatten_attributes(node: ast.expr) -> ast.expr:
    """``self.max_retries`` becomes one name, ``"self.max_retries"``, to look up in an env."""
    result = _Flatten().visit(node)
    assert isinstance(result, ast.expr)
    return result


def names(node: ast.AST) -> set[str]:
    """Every plain name the expression reads."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
