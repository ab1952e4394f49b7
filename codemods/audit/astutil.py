"""Small ``ast`` helpers shared by the audit's scanners."""

from __future__ import annotations

import ast
from collections.abc import Iterator

EXCERPT_LINES = 14


def excerpt(lines: list[str], start: int, end: int) -> str:
    chunk = lines[start - 1 : min(end, start - 1 + EXCERPT_LINES)]
    text = "\n".join(line.rstrip() for line in chunk)
    if end - start + 1 > EXCERPT_LINES:
        text += f"\n... ({end - start + 1 - EXCERPT_LINES} more lines)"
    return text


def walk_local(nodes: list[ast.stmt] | list[ast.AST]) -> Iterator[ast.AST]:
    """All nodes under ``nodes``, not entering nested functions, lambdas or classes."""
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
            ):
                stack.append(child)
