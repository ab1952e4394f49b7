"""What a rewritten step hands back: values that may not serialize as JSON.

A step's return value is checkpointed inside a workflow (JSON by default). An HTTP
response, a database cursor or an ORM object does not serialize: the rewrite keeps
working outside a workflow, but fails once run inside one. The codemods say so in a
note on the site rather than refusing (the value is often used only by the caller).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import libcst as cst

#: the last part of a call whose value is an object that JSON cannot hold
_OBJECT_MAKERS = re.compile(
    r"^(get|post|put|patch|delete|head|options|request|send|urlopen|open|connect|cursor|"
    r"execute|query|filter|first|one|create|get_or_create|select_for_update|Popen|run|"
    r"session|Session|client|Client|resource)$"
)
#: receivers whose ``.get(...)`` is a plain lookup, not a request
_PLAIN_GET = re.compile(r"(dict|environ|kwargs|params|headers|config|cache|options|data)$", re.I)


def _returned_calls(
    body: cst.CSTNode, outputs: Sequence[str] = ()
) -> tuple[list[cst.Call], list[str]]:
    """The calls whose value the body returns (``return call(...)``, or ``name = call(...)``
    then ``return name``, or a name in ``outputs``), and the names it returns that it
    never assigns (handed in from outside)."""
    found: list[cst.Call] = []
    returned: list[str] = list(outputs)
    assigned: dict[str, list[cst.Call]] = {}
    stored: set[str] = set()

    class Finder(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Assign(self, node: cst.Assign) -> None:
            value = node.value.expression if isinstance(node.value, cst.Await) else node.value
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    stored.add(target.target.value)
                    if isinstance(value, cst.Call):
                        assigned.setdefault(target.target.value, []).append(value)

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if isinstance(node.target, cst.Name):
                stored.add(node.target.value)

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            if isinstance(node.target, cst.Name):
                stored.add(node.target.value)

        def visit_AsName(self, node: cst.AsName) -> None:
            if isinstance(node.name, cst.Name):
                stored.add(node.name.value)

        def visit_For(self, node: cst.For) -> None:
            if isinstance(node.target, cst.Name):
                stored.add(node.target.value)

        def visit_Return(self, node: cst.Return) -> None:
            value = node.value
            if isinstance(value, cst.Await):
                value = value.expression
            if isinstance(value, cst.Call):
                found.append(value)
            elif isinstance(value, cst.Name):
                returned.append(value.value)

    body.visit(Finder())
    for name in returned:
        found.extend(assigned.get(name, []))
    handed = [
        n for n in dict.fromkeys(returned) if n not in stored and n not in ("None", "True", "False")
    ]
    return found, handed


def unserializable_return(
    body: cst.CSTNode, code: Callable[[cst.CSTNode], str], outputs: Sequence[str] = ()
) -> str | None:
    """A note when ``body`` returns the value of a call that makes an object JSON cannot
    hold (``requests.get(...)``, ``cursor.execute(...)``, ``Model.objects.get(...)``),
    also through a name (``res = session.request(...)``; ``outputs``: the names the
    step returns to the code after the loop), or an object it was handed
    (``return message``)."""
    calls, handed = _returned_calls(body, outputs)
    for call in calls:
        func = call.func
        if isinstance(func, cst.Attribute):
            name, owner = func.attr.value, code(func.value)
        elif isinstance(func, cst.Name):
            name, owner = func.value, ""
        else:
            continue
        if not _OBJECT_MAKERS.match(name):
            continue
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if name == "get" and (_PLAIN_GET.search(owner) or len(positional) != 1):
            continue
        shown = code(func)
        return (
            f"the step returns the value of `{shown}(...)`, which may not serialize as JSON"
            " (a response, a cursor, an ORM object): inside a workflow the step would fail;"
            " return plain data"
        )
    if handed:
        return (
            f"the step returns `{handed[0]}`, which it was handed rather than made: inside a"
            " workflow its result is replayed from JSON, plain data instead of the same"
            " object (a message, a client, a model instance); return plain data or nothing"
        )
    return None


__all__ = ["unserializable_return"]
