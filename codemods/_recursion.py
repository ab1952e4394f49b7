"""Retries by recursion that the loop codemod does not rewrite, and why.

``_loop_shapes._recursive_retry`` finds ``return f(..., retries - 1)``. This module finds
the other recursive form real decorators use: a wrapper that calls *itself* again from an
except handler, the attempt count carried in its keyword arguments
(``kwargs.update({"count": count})``, ``kwargs['_attempt'] += 1``), so the callers never
see it. When the wrapper retries a function its callers pass in, it is a retry engine.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.metadata import ParentNodeProvider

from ._base import sites_of
from ._loop_shapes import _walk_own as _walk  # nodes of the function, not of nested ones


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


# --------------------------------------------------------------------------------------
# Retries by recursion with a counter argument (``return f(..., retries - 1)``): the
# recursion is viewed as a loop over the counter, and the loop codemod decides.
#
# ``def f(url, retries=3): try: A except E: B; return f(url, retries - 1)`` does what
# ``def f(url, retries=3): while True: try: A except E: B; retries = retries - 1; continue``
# does when the recursive call is the handler's last word (its value returned as is), passes
# every other argument unchanged and the function is no generator. The loop form is written
# into a copy of the module and run through the retry-loop codemod in memory; its rewrite
# of the function, its reason or its notes are the recursion's.


@dataclass
class RecursionRewrite:
    """What the loop codemod made of the recursion's loop form."""

    function: cst.FunctionDef | None  # the rewritten function, None when refused
    new_functions: list[cst.BaseStatement]  # module-level steps to add before its statement
    reason: str
    notes: list[str]
    policy: str
    #: the last line of the function in the loop form (the site's range)
    toolkit_names: set[str] = field(default_factory=set)


class _Refused(Exception):
    pass


_SAFE_PARENTS = (cst.If, cst.Else, cst.IndentedBlock, cst.SimpleStatementLine)


def _first_param(func: cst.FunctionDef) -> str | None:
    p = func.params
    first = [*p.posonly_params, *p.params]
    return first[0].name.value if first else None


def _self_call(node: cst.CSTNode, func: cst.FunctionDef, method: bool) -> bool:
    """``f(...)`` for a function, ``self.f(...)`` (``cls.f``) for a method."""
    if not isinstance(node, cst.Call):
        return False
    name = func.name.value
    callee = node.func
    if not method:
        return isinstance(callee, cst.Name) and callee.value == name
    return (
        isinstance(callee, cst.Attribute)
        and callee.attr.value == name
        and isinstance(callee.value, cst.Name)
        and callee.value.value == _first_param(func)
    )


def _is_generator(func: cst.FunctionDef) -> bool:
    return any(isinstance(n, cst.Yield) for n in _walk(func.body))


def _bind(
    call: cst.Call, func: cst.FunctionDef, method: bool, code: Callable[[cst.CSTNode], str]
) -> dict[str, str]:
    """The source of the argument each parameter receives in the recursive ``call``."""
    p = func.params
    positional = [*p.posonly_params, *p.params]
    if method:
        positional = positional[1:]
    kwonly = list(p.kwonly_params)
    star = p.star_arg.name.value if isinstance(p.star_arg, cst.Param) else None
    star_kw = p.star_kwarg.name.value if isinstance(p.star_kwarg, cst.Param) else None
    bound: dict[str, str] = {}
    index = 0
    shown = _first_line(code(call))
    for arg in call.args:
        value = code(arg.value)
        if arg.star == "*":
            if star is None or value != star or index < len(positional):
                raise _Refused(f"the recursive call `{shown}` passes `*{value}` its own way")
            bound["*" + star] = value
            index = len(positional)
        elif arg.star == "**":
            if star_kw is None or value != star_kw:
                raise _Refused(f"the recursive call `{shown}` passes `**{value}` its own way")
            bound["**" + star_kw] = value
        elif arg.keyword is None:
            if index >= len(positional):
                raise _Refused(f"the recursive call `{shown}` passes more positional arguments")
            bound[positional[index].name.value] = value
            index += 1
        else:
            bound[arg.keyword.value] = value
    for param in [*positional, *kwonly]:
        name = param.name.value
        if name not in bound:
            if star_kw is not None and "**" + star_kw in bound:
                continue  # may travel in **kwargs: checked below as unchanged
            raise _Refused(
                f"the recursive call `{shown}` resets `{name}` to its default"
                " (state carried into the next attempt)"
            )
    for extra, needed in ((star, "*"), (star_kw, "**")):
        if extra is not None and needed + extra not in bound:
            raise _Refused(f"the recursive call `{shown}` drops `{needed}{extra}`")
    return bound


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 60 else line[:57] + "..."


def _assigned_in(func: cst.FunctionDef) -> set[str]:
    """Names the function's own code assigns (its parameters among them, if any)."""
    names: set[str] = set()
    for node in _walk(func.body):
        targets: list[cst.BaseExpression] = []
        if isinstance(
            node, cst.AssignTarget | cst.AugAssign | cst.AnnAssign | cst.For | cst.NamedExpr
        ):
            targets = [node.target]
        elif isinstance(node, cst.AsName):
            targets = [node.name]
        while targets:
            target = targets.pop()
            if isinstance(target, cst.Name):
                names.add(target.value)
            elif isinstance(target, cst.Tuple | cst.List):
                targets.extend(e.value for e in target.elements)
            elif isinstance(target, cst.StarredElement):
                targets.append(target.value)
    return names


def _ends(stmts: Sequence[Any]) -> bool:
    """The block never falls through: it ends in ``return``, ``raise`` or ``continue``, or
    in an ``if`` whose every branch does."""
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, cst.SimpleStatementLine):
        return isinstance(last.body[-1], cst.Return | cst.Raise | cst.Continue)
    if isinstance(last, cst.If):
        branch: cst.If | cst.Else | None = last
        while isinstance(branch, cst.If):
            if not _ends(list(branch.body.body)):
                return False
            branch = branch.orelse
        return branch is not None and _ends(list(branch.body.body))
    return False


def _tail_calls(
    handler: cst.ExceptHandler, func: cst.FunctionDef, method: bool
) -> tuple[list[tuple[cst.SimpleStatementLine, cst.Call, bool]], list[Any]]:
    """The recursive calls in ``handler`` that are whole statements, ``(line, call,
    returned)``, and the others (their value used, or inside a loop, ``with`` or ``try``)."""
    tails: list[tuple[cst.SimpleStatementLine, cst.Call, bool]] = []
    others: list[Any] = []

    def visit(stmts: Sequence[Any], last_chain: bool) -> None:
        for i, stmt in enumerate(stmts):
            at_end = last_chain and i == len(stmts) - 1
            if isinstance(stmt, cst.SimpleStatementLine):
                for j, small in enumerate(stmt.body):
                    value = getattr(small, "value", None)
                    inner = value.expression if isinstance(value, cst.Await) else value
                    whole = (
                        isinstance(small, cst.Return | cst.Expr)
                        and inner is not None
                        and _self_call(inner, func, method)
                        and j == len(stmt.body) - 1
                    )
                    if whole:
                        assert isinstance(inner, cst.Call)
                        returned = isinstance(small, cst.Return)
                        if returned or at_end:
                            tails.append((stmt, inner, returned))
                        else:
                            others.append(inner)
                        rest: list[Any] = [*inner.args]
                    else:
                        rest = [small]
                    for node in rest:
                        others.extend(n for n in _walk(node) if _self_call(n, func, method))
            elif isinstance(stmt, cst.If):
                branch: cst.If | cst.Else | None = stmt
                while branch is not None:
                    if isinstance(branch, cst.If):
                        others.extend(
                            n
                            for n in [branch.test, *_walk(branch.test)]
                            if _self_call(n, func, method)
                        )
                    visit(list(branch.body.body), at_end)
                    branch = branch.orelse if isinstance(branch, cst.If) else None
            else:
                others.extend(n for n in _walk(stmt) if _self_call(n, func, method))

    visit(list(handler.body.body), True)
    return tails, others


class _ReplaceTails(cst.CSTTransformer):
    def __init__(self, replacements: dict[cst.SimpleStatementLine, list[cst.BaseSmallStatement]]):
        super().__init__()
        self.replacements = replacements

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine:
        new = self.replacements.get(original_node)
        if new is None:
            return updated_node
        return updated_node.with_changes(body=[*updated_node.body[:-1], *new])


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def _callers_pass(
    module: cst.Module, func: cst.FunctionDef, method: bool, counter: str, position: int
) -> bool:
    """A call of the function elsewhere in the module may pass ``counter``."""
    name = func.name.value
    every, own = _AllCalls(), _AllCalls()
    module.visit(every)
    func.visit(own)
    recursive = {id(c) for c in own.calls}
    for node in every.calls:
        if id(node) in recursive:
            continue  # the recursion itself
        callee = node.func
        called = callee.attr.value if isinstance(callee, cst.Attribute) else None
        if isinstance(callee, cst.Name):
            called = callee.value
        if called != name:
            continue
        positional = 0
        for arg in node.args:
            if arg.star:
                return True
            if arg.keyword is None:
                positional += 1
            elif arg.keyword.value == counter:
                return True
        if positional > position:
            return True
    return False


class _AllCalls(cst.CSTVisitor):
    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)


def _loop_form(
    func: cst.FunctionDef,
    module: cst.Module,
    code: Callable[[cst.CSTNode], str],
    method: bool,
) -> tuple[cst.FunctionDef, list[str], str | None, str | None]:
    """The function written as a loop over its counter, the notes of that reading, the
    counter (None: no argument changes) and the counter parameter dropped (private)."""
    if _is_generator(func):
        raise _Refused(
            "a generator that retries by calling itself: its values are yielded,"
            " no step can return them"
        )
    body: list[Any] = list(func.body.body)
    start = 1 if body and _is_docstring(body[0]) else 0
    tries = [
        i
        for i, s in enumerate(body)
        if isinstance(s, cst.Try)
        and any(_self_call(n, func, method) for h in s.handlers for n in _walk(h))
    ]
    every = [n for n in _walk(func.body) if _self_call(n, func, method)]
    if not every:
        raise _Refused(
            "retries by calling itself through a name the codemod does not follow"
            " (a recursion, not a loop): make it a step by hand"
        )
    through = [
        d for d in func.decorators if code(d.decorator) not in ("staticmethod", "classmethod")
    ]
    if through:
        shown = _first_line(code(through[0].decorator))
        raise _Refused(
            f"the recursive call goes through the decorator `@{shown}`, which a loop over"
            " the attempts would skip: make it a step by hand"
        )
    if len(tries) != 1:
        where = "two `try` statements" if tries else "outside an except handler"
        raise _Refused(
            f"retries by calling itself from {where} (a recursion, not a loop):"
            " make it a step by hand"
        )
    at = tries[0]
    try_ = body[at]
    assert isinstance(try_, cst.Try)
    in_handlers = [n for h in try_.handlers for n in _walk(h) if _self_call(n, func, method)]
    if len(in_handlers) != len(every):
        outside = len(every) - len(in_handlers)
        raise _Refused(
            f"retries by calling itself from {len(every)} places, {outside} of them outside an"
            " except handler (a retry decided after the `try`, on a returned value): make it"
            " a step by hand"
        )
    if try_.finalbody is not None:
        raise _Refused(
            "the `try` that retries by recursion has a `finally` block, which ran"
            " once per call, after the retries"
        )
    pre: list[Any] = body[start:at]
    post: list[Any] = body[at + 1 :]
    success = list((try_.orelse.body if try_.orelse else try_.body).body)
    success_leaves = (
        bool(success)
        and isinstance(success[-1], cst.SimpleStatementLine)
        and (isinstance(success[-1].body[-1], cst.Return | cst.Raise))
    )
    values_returned = any(
        isinstance(n, cst.Return) and n.value is not None for n in _walk(func.body)
    )
    # the calls, and what each passes
    replacements: dict[cst.SimpleStatementLine, list[cst.BaseSmallStatement]] = {}
    changed: dict[str, set[str]] = {}
    assigned = _assigned_in(func)
    params = [
        p.name.value
        for p in [*func.params.posonly_params, *func.params.params, *func.params.kwonly_params]
    ]
    if method:
        params = params[1:]
    for handler in try_.handlers:
        tails, others = _tail_calls(handler, func, method)
        if others:
            shown = _first_line(code(others[0]))
            raise _Refused(
                f"the recursive call `{shown}` is not in tail position of the handler"
                " (its value is used, or code runs after it)"
            )
        for line, call, returned in tails:
            if not returned and (values_returned or post):
                raise _Refused(
                    f"the recursive call `{_first_line(code(call))}` drops its value while the"
                    " function returns one, or code runs after it"
                )
            bound = _bind(call, func, method, code)
            smalls: list[cst.BaseSmallStatement] = []
            for name, value in bound.items():
                if name.startswith("*"):
                    continue
                if value != name:
                    changed.setdefault(name, set()).add(value)
                    assign: Any = cst.parse_statement(f"{name} = {value}\n")
                    smalls.append(assign.body[0])
            for name in params:
                if name in assigned and bound.get(name) == name:
                    changed.setdefault(name, set()).add(name)
            smalls.append(cst.Continue())
            replacements[line] = smalls
    if len(changed) > 1:
        shown = ", ".join(f"`{n}`" for n in sorted(changed))
        raise _Refused(
            f"the recursive call changes {shown} (state carried into the next attempt):"
            " make it a step by hand"
        )
    counter = next(iter(changed), None)
    for name in params:
        if name != counter and name in assigned:
            raise _Refused(
                f"`{name}` is assigned before it is passed to the recursive call again"
                " (state carried into the next attempt)"
            )
    notes: list[str] = []
    if method:
        notes.append(
            f"the legacy code retried by calling `self.{func.name.value}(...)` again, which a"
            " subclass may override; the step retries this method's own body"
        )
    # the loop form of the try
    new_try = try_.visit(_ReplaceTails(replacements))
    assert isinstance(new_try, cst.Try)
    as_names = {
        h.name.name.value
        for h in try_.handlers
        if h.name is not None and isinstance(h.name.name, cst.Name)
    }
    after: list[Any] = []
    fall_back: list[Any] = []
    if success_leaves or not post:
        if not success_leaves:  # falls off the end: returns None, as the legacy did
            if values_returned:
                raise _Refused(
                    "an attempt that succeeds falls through to the end of the"
                    " function, which returns values elsewhere"
                )
            stop = cst.parse_statement("return\n")
            block = new_try.orelse if new_try.orelse is not None else new_try
            inner = block.body
            assert isinstance(inner, cst.IndentedBlock)
            inner = inner.with_changes(body=[*inner.body, stop])
            new_try = (
                new_try.with_changes(orelse=new_try.orelse.with_changes(body=inner))
                if new_try.orelse is not None
                else new_try.with_changes(body=inner)
            )
        if post:
            read = {n.value for s in post for n in _walk(s) if isinstance(n, cst.Name)}
            if read & as_names or any(
                isinstance(n, cst.Raise) and n.exc is None for s in post for n in _walk(s)
            ):
                raise _Refused("the code after the `try` reads the handler's exception")
            if not _ends(post):
                post = [*post, cst.parse_statement("return\n")]
            fall_back = post
        else:
            fall_back = [cst.parse_statement("return\n")]
    else:
        stop = cst.parse_statement("break\n")
        block = new_try.orelse if new_try.orelse is not None else new_try
        inner = block.body
        assert isinstance(inner, cst.IndentedBlock)
        inner = inner.with_changes(body=[*inner.body, stop])
        new_try = (
            new_try.with_changes(orelse=new_try.orelse.with_changes(body=inner))
            if new_try.orelse is not None
            else new_try.with_changes(body=inner)
        )
        after = post
        fall_back = []
    handlers = []
    for handler in new_try.handlers:
        stmts = list(handler.body.body)
        if not _ends(stmts):
            if not fall_back:
                raise _Refused(
                    "a handler falls through to the code after the `try`, which also runs"
                    " after a success"
                )
            stmts = [*stmts, *fall_back]
        handlers.append(handler.with_changes(body=handler.body.with_changes(body=stmts)))
    new_try = new_try.with_changes(handlers=handlers)
    # the counter: a private one (only the recursion passes it) starts at its default
    dropped: str | None = None
    inits: list[cst.BaseStatement] = []
    new_params = func.params
    if counter is not None:
        every_param = [*func.params.posonly_params, *func.params.params, *func.params.kwonly_params]
        param = next(p for p in every_param if p.name.value == counter)
        position = [p.name.value for p in [*func.params.posonly_params, *func.params.params]]
        index = position.index(counter) if counter in position else len(position)
        if method:
            index -= 1
        private = _private(counter) or _private(func.name.value)
        if (
            param.default is not None
            and private
            and not _callers_pass(module, func, method, counter, index)
        ):
            dropped = counter
            inits.append(cst.parse_statement(f"{counter} = {code(param.default)}\n"))
            new_params = _without_param(func.params, counter)
            notes.append(
                f"the counter parameter `{counter}` is gone: only the recursion passed it"
                f" (`{func.name.value}` and its callers in this module never do)"
            )
    else:
        notes.append(
            "the legacy recursion stopped with RecursionError after about 1000 retries"
            " (Python's recursion limit); the step retries without that limit"
        )
    loop = cst.While(
        test=cst.Name("True"),
        body=cst.IndentedBlock(body=[*pre, new_try.with_changes(leading_lines=[])]),
        leading_lines=pre[0].leading_lines if pre else try_.leading_lines,
    )
    if pre:
        first = loop.body.body[0]
        loop = loop.with_changes(
            body=loop.body.with_changes(
                body=[first.with_changes(leading_lines=[]), *loop.body.body[1:]]
            )
        )
    new_body = [*body[:start], *inits, loop, *after]
    return (
        func.with_changes(params=new_params, body=func.body.with_changes(body=new_body)),
        notes,
        counter,
        dropped,
    )


def _without_param(params: cst.Parameters, name: str) -> cst.Parameters:
    def keep(seq: Sequence[cst.Param]) -> list[cst.Param]:
        kept = [p for p in seq if p.name.value != name]
        if kept and len(kept) < len(seq):
            kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return kept

    star_arg = params.star_arg
    kwonly = keep(params.kwonly_params)
    if isinstance(star_arg, cst.ParamStar) and not kwonly:
        star_arg = cst.MaybeSentinel.DEFAULT
    return params.with_changes(
        posonly_params=keep(params.posonly_params),
        params=keep(params.params),
        kwonly_params=kwonly,
        star_arg=star_arg,
    )


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )


def _path(
    func: cst.FunctionDef, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]
) -> list[str] | None:
    """Names of the classes and functions from the module down to ``func``, when each is a
    direct statement of the one above (else None)."""
    path = [func.name.value]
    node: cst.CSTNode = func
    while True:
        block = parent_of(node)
        if isinstance(block, cst.Module):
            return path
        owner = parent_of(block) if isinstance(block, cst.IndentedBlock) else None
        if not isinstance(owner, cst.ClassDef | cst.FunctionDef):
            return None
        path.insert(0, owner.name.value)
        node = owner


def _find(module: cst.Module, path: list[str]) -> cst.FunctionDef | None:
    body: Sequence[cst.CSTNode] = module.body
    found: cst.CSTNode | None = None
    for name in path:
        matches = [
            s
            for s in body
            if isinstance(s, cst.ClassDef | cst.FunctionDef) and s.name.value == name
        ]
        if len(matches) != 1:
            return None
        found = matches[0]
        inner = found.body
        body = inner.body if isinstance(inner, cst.IndentedBlock) else []
    return found if isinstance(found, cst.FunctionDef) else None


def is_method(
    func: cst.FunctionDef, parent_of: Callable[[cst.CSTNode], cst.CSTNode | None]
) -> bool:
    block = parent_of(func)
    owner = parent_of(block) if isinstance(block, cst.IndentedBlock) else None
    static = any(
        isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod"
        for d in func.decorators
    )
    return isinstance(owner, cst.ClassDef) and not static and _first_param(func) is not None


def retries_by_recursion(
    func: cst.FunctionDef, method: bool, is_sleep: Callable[[cst.BaseExpression], object]
) -> bool:
    """A call of itself from an except handler that sleeps or counts (``retries - 1``)."""
    for node in _walk(func.body):
        if not isinstance(node, cst.ExceptHandler):
            continue
        inside = list(_walk(node))
        if not any(_self_call(n, func, method) for n in inside):
            continue
        if any(isinstance(n, cst.Call | cst.Await) and is_sleep(n) for n in inside):
            return True
    return False


def ast_retries_by_recursion(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Cheap pre-check: a call of itself from an except handler that also sleeps."""
    for sub in ast.walk(node):
        if not isinstance(sub, ast.ExceptHandler):
            continue
        names = {
            c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "")
            for c in ast.walk(sub)
            if isinstance(c, ast.Call)
        }
        if node.name in names and names & {"sleep", "_sleep"}:
            return True
    return False


def rewrite_recursion(codemod: Any, func: cst.FunctionDef, method: bool) -> RecursionRewrite:
    """The loop codemod's decision on the recursion's loop form (see above)."""
    from codemods.retry_loop import RetryLoopCodemod  # the loop codemod imports this module

    module: cst.Module = codemod.source_module
    code = module.code_for_node
    try:
        loop_func, notes, counter, dropped = _loop_form(func, module, code, method)
    except _Refused as refused:
        return RecursionRewrite(None, [], str(refused), [], "")
    path = _path(func, lambda n: codemod.get_metadata(ParentNodeProvider, n, None))
    if path is None:
        return RecursionRewrite(
            None,
            [],
            "retries by calling itself (a recursion, not a loop) where the codemod"
            " does not place a rewrite: make it a step by hand",
            [],
            "",
        )
    synthetic = module.deep_replace(func, loop_func)
    assert isinstance(synthetic, cst.Module)
    context = CodemodContext(filename=codemod.context.filename)
    sub = RetryLoopCodemod(context)
    sub.in_recursion = True
    try:
        result = sub.transform_module(synthetic)
    except Exception as error:  # the loop codemod on a form it was not written for
        return RecursionRewrite(
            None, [], f"as a loop, the recursion could not be read ({error})", [], ""
        )
    first = codemod.line_of(func)
    shown = synthetic.code_for_node(loop_func.with_changes(leading_lines=[]))
    last = first + len(shown.rstrip().splitlines()) - 1 - len(loop_func.decorators)
    sites = [s for s in sites_of(context) if first <= s.line <= last]
    if len(sites) != 1:
        return RecursionRewrite(
            None,
            [],
            "retries by calling itself (a recursion, not a loop): make it a step by hand",
            [],
            "",
        )
    site = sites[0]
    what = (
        f"retries by calling itself with `{counter}` changed"
        if counter
        else ("retries by calling itself")
    )
    if site.action != "rewritten":
        reason = site.reason
        if counter is not None and not dropped and _depends_on(reason, counter):
            reason = f"callers can pass `{counter}`, and the policy cannot follow it: {reason}"
        return RecursionRewrite(None, [], f"{what}, read as a loop: {reason}", [], site.policy)
    new_func = _find(result, path)
    if new_func is None:
        return RecursionRewrite(None, [], f"{what}: the rewrite could not be placed", [], "")
    new_func = cst.ensure_type(new_func.visit(_StripFinalReturn()), cst.FunctionDef)
    before_names = {
        s.name.value for s in synthetic.body if isinstance(s, cst.FunctionDef | cst.ClassDef)
    }
    added = [
        s
        for s in result.body
        if isinstance(s, cst.FunctionDef) and s.name.value not in before_names
    ]
    wanted = {codemod.step_name, codemod.policy_name, "current_step"}
    used = {n.value for n in _walk(cst.Module(body=[*added, new_func])) if isinstance(n, cst.Name)}
    site_notes = [n for n in site.notes if "ran the legacy loop zero times" not in n]
    if len(site_notes) != len(site.notes):
        site_notes.append(
            "a count below 1 at run time makes RetryPolicy raise ValueError; the legacy"
            " recursion made one attempt (or more) for it"
        )
    return RecursionRewrite(
        new_func,
        added,  # type: ignore[arg-type]
        "the function became a step (its recursion read as a loop)",
        [*notes, *site_notes],
        site.policy,
        used & wanted,
    )


def _depends_on(reason: str, name: str) -> bool:
    return f"`{name}`" in reason


class _StripFinalReturn(cst.CSTTransformer):
    """A bare ``return`` ending a function body (added by the loop form) is dropped."""

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        body = list(updated_node.body.body)
        if len(body) > 1:
            last = body[-1]
            if (
                isinstance(last, cst.SimpleStatementLine)
                and len(last.body) == 1
                and isinstance(last.body[0], cst.Return)
                and last.body[0].value is None
            ):
                body.pop()
                return updated_node.with_changes(body=updated_node.body.with_changes(body=body))
        return updated_node


def find_recursion(codemod: Any, func: cst.FunctionDef, counted: bool) -> RecursionRewrite | None:
    """The recursion's rewrite or reason, when ``func`` retries by calling itself from an
    except handler (``counted``: an argument is ``retries - 1``; else its handler sleeps)."""
    if getattr(codemod, "in_recursion", False):
        return None  # the loop form itself, run in memory
    method = is_method(func, lambda n: codemod.get_metadata(ParentNodeProvider, n, None))
    seen = set(codemod.sleep_like)
    sleeps = retries_by_recursion(func, method, codemod.is_sleep)
    codemod.sleep_like = seen
    if not (counted or sleeps):
        return None
    return rewrite_recursion(codemod, func, method)


def apply_recursion(
    codemod: Any,
    original: cst.FunctionDef,
    updated: cst.FunctionDef,
    rewrite: RecursionRewrite,
) -> cst.FunctionDef:
    """``leave_FunctionDef``'s answer for a recursion: the rewrite, or the reason."""
    if rewrite.function is None:
        codemod.record(original, "skipped", rewrite.reason, policy=rewrite.policy)
        return codemod.annotated(updated, rewrite.reason, rewrite.policy)
    codemod.record(original, "rewritten", rewrite.reason, rewrite.notes, rewrite.policy)
    codemod.need_imports()
    if "current_step" in rewrite.toolkit_names:
        from libcst.codemod.visitors import AddImportsVisitor

        AddImportsVisitor.add_needed_import(codemod.context, "toolkit", "current_step")
    if rewrite.new_functions:
        top = codemod._top_level(original)
        codemod.new_functions.setdefault(top, []).extend(
            f.visit(_StripFinalReturn()) for f in rewrite.new_functions
        )
    source = codemod.source_module.code_for_node(original)
    codemod.drop_if_unused("time")
    codemod.drop_if_unused("time", "sleep")
    for module in ("random", "asyncio"):
        if f"{module}." in source:
            codemod.drop_if_unused(module)
    return rewrite.function.with_changes(
        leading_lines=updated.leading_lines,
        decorators=[
            *updated.decorators,
            *rewrite.function.decorators[len(original.decorators) :],
        ],
    )
