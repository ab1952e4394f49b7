"""Retries by recursion that the loop codemod does not rewrite, and why.

``_loop_shapes._recursive_retry`` finds ``return f(..., retries - 1)``. This module finds
the other recursive form real decorators use: a wrapper that calls *itself* again from an
except handler, the attempt count carried in its keyword arguments
(``kwargs.update({"count": count})``, ``kwargs['_attempt'] += 1``), so the callers never
see it. When the wrapper retries a function its callers pass in, it is a retry engine.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

import libcst as cst


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node under ``node``, not descending into nested functions, lambdas or classes."""
    stack = list(reversed(node.children))
    while stack:
        child = stack.pop()
        yield child
        if isinstance(child, cst.FunctionDef | cst.ClassDef | cst.Lambda):
            continue
        stack.extend(reversed(child.children))


def _is_self_call(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Call) and (
        (isinstance(node.func, cst.Name) and node.func.value == name)
        or (isinstance(node.func, cst.Attribute) and node.func.attr.value == name)
    )


def _count_key(handler: cst.ExceptHandler, kwargs: str, code: Callable[[cst.CSTNode], str]) -> str:
    """How the handler puts the count into ``kwargs``: ``kwargs['_attempt']``, or ''."""
    for node in _walk(handler):
        if (  # kwargs.update({"count": count})
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "update"
            and isinstance(node.func.value, cst.Name)
            and node.func.value.value == kwargs
            and node.args
            and isinstance(node.args[0].value, cst.Dict)
            and node.args[0].value.elements
        ):
            first = node.args[0].value.elements[0]
            if isinstance(first, cst.DictElement):
                return f"{kwargs}[{code(first.key)}]"
        targets: list[cst.BaseExpression] = []
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, cst.AugAssign):
            targets = [node.target]
        for target in targets:  # kwargs['_attempt'] = 2 / += 1
            if (
                isinstance(target, cst.Subscript)
                and isinstance(target.value, cst.Name)
                and target.value.value == kwargs
            ):
                return code(target)
    return ""


def recursive_wrapper(
    func: cst.FunctionDef, code: Callable[[cst.CSTNode], str], engine_of: str | None
) -> str | None:
    """The reason a function that retries by calling itself from an except handler, the
    count in its ``**kwargs``, is not rewritten; None when ``func`` is not one.
    ``engine_of`` is the callers' function it retries (a decorator's ``f``), if any."""
    star = func.params.star_kwarg
    if not isinstance(star, cst.Param):
        return None
    kwargs = star.name.value
    name = func.name.value
    for node in _walk(func.body):
        if not isinstance(node, cst.Try):
            continue
        for handler in node.handlers:
            if not any(_is_self_call(sub, name) for sub in _walk(handler)):
                continue
            key = _count_key(handler, kwargs, code)
            if not key:
                continue
            carried = f"the attempt count carried in `{key}`"
            if engine_of is not None:
                return (
                    f"a retry engine by recursion: `{name}` calls itself again from its"
                    f" handler to retry `{engine_of}`, which its callers pass in, {carried}:"
                    " make the functions they pass steps instead"
                )
            return (
                f"retries by calling `{name}` again from its handler, {carried} (a recursion,"
                " not a loop): make it a step by hand"
            )
    return None


def ast_recursive_wrapper(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Cheap pre-check: a function with ``**kwargs`` calling itself from an except handler."""
    if node.args.kwarg is None:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.ExceptHandler):
            for call in ast.walk(sub):
                if isinstance(call, ast.Call) and (
                    (isinstance(call.func, ast.Name) and call.func.id == node.name)
                    or (isinstance(call.func, ast.Attribute) and call.func.attr == node.name)
                ):
                    return True
    return False
