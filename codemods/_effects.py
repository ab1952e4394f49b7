"""What a rewritten step hands back: values that may not serialize as JSON.

A step's return value is checkpointed inside a workflow (JSON by default). An HTTP
response, a database cursor or an ORM object does not serialize: the rewrite keeps
working outside a workflow, but fails once run inside one. The codemods say so in a
note on the site rather than refusing (the value is often used only by the caller).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import libcst as cst

#: the last part of a call whose value is an object that JSON cannot hold
_OBJECT_MAKERS = re.compile(
    r"^(get|post|put|patch|delete|head|options|request|send|urlopen|open|connect|cursor|"
    r"execute|query|filter|first|one|create|get_or_create|select_for_update|Popen|run|"
    r"session|Session|client|Client|resource)$"
)
#: receivers whose ``.get(...)`` is a plain lookup, not a request
_PLAIN_GET = re.compile(r"(dict|environ|kwargs|params|headers|config|cache|options|data)$", re.I)


def _returned_calls(body: cst.CSTNode) -> list[cst.Call]:
    found: list[cst.Call] = []

    class Finder(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

        def visit_Return(self, node: cst.Return) -> None:
            value = node.value
            if isinstance(value, cst.Await):
                value = value.expression
            if isinstance(value, cst.Call):
                found.append(value)

    body.visit(Finder())
    return found


def unserializable_return(body: cst.CSTNode, code: Callable[[cst.CSTNode], str]) -> str | None:
    """A note when ``body`` returns the value of a call that makes an object JSON cannot
    hold (``requests.get(...)``, ``cursor.execute(...)``, ``Model.objects.get(...)``)."""
    for call in _returned_calls(body):
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
    return None


__all__ = ["unserializable_return"]
