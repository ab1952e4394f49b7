"""Parse Python files written for a newer Python than the one running the audit.

:func:`parse_python` keeps :func:`ast.parse` on the fast path. Only when it
raises :class:`SyntaxError` is the file read with libcst's native parser,
which knows newer grammar (PEP 695 ``type X = ...`` and ``def f[T]()``,
PEP 701 f-strings, PEP 750 t-strings, PEP 758 ``except A, B:``). The newer
constructs are then lowered to equivalent older syntax **on the same lines**
(type parameters dropped, ``type X = v`` becomes ``X = v``, an f-string the
running Python cannot read becomes a tuple of its text and expressions) and
the result is parsed with :mod:`ast` again, so the scanner sees an ordinary
tree whose line numbers match the file.

Guarantee: a file that neither parser reads raises the original
``SyntaxError`` from :func:`ast.parse`.
"""

from __future__ import annotations

import ast

import libcst as cst

_EMPTY = cst.Module(body=[])


def _code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def _parses(expr: str) -> bool:
    try:
        ast.parse(f"(\n{expr}\n)", mode="eval")
    except SyntaxError:
        return False
    return True


_StringNode = cst.FormattedString | cst.TemplatedString


def _lowered_string(node: _StringNode) -> str:
    """Older-syntax text for an f- or t-string: ``(text, expr, ...)``, same line count."""
    prefix = "".join(c for c in node.start.rstrip("'\"") if c.lower() not in "ft")
    texts: list[str] = []
    exprs: list[str] = []

    def collect(parts: object) -> None:
        for part in parts:  # type: ignore[attr-defined]
            if isinstance(part, cst.FormattedStringText | cst.TemplatedStringText):
                texts.append(part.value)
            elif isinstance(part, cst.FormattedStringExpression | cst.TemplatedStringExpression):
                exprs.append(_code(part.expression))
                if part.format_spec:
                    collect(part.format_spec)

    collect(node.parts)
    literal = f"{prefix}{node.end}{''.join(texts)}{node.end}"
    body = ", ".join([literal, *exprs])
    if not _parses(body):
        body = f"{prefix}{node.end}{node.end}"  # last resort: an empty string
    missing = _code(node).count("\n") - body.count("\n")
    return "(" + body + "," + "\n" * max(missing, 0) + ")"


class _Lower(cst.CSTTransformer):
    """Rewrites newer syntax into older syntax that keeps every line where it was."""

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        if updated_node.type_parameters is None:
            return updated_node
        return updated_node.with_changes(
            type_parameters=None, whitespace_after_type_parameters=cst.SimpleWhitespace("")
        )

    def leave_ClassDef(
        self, original_node: cst.ClassDef, updated_node: cst.ClassDef
    ) -> cst.ClassDef:
        if updated_node.type_parameters is None:
            return updated_node
        return updated_node.with_changes(
            type_parameters=None, whitespace_after_type_parameters=cst.SimpleWhitespace("")
        )

    def leave_TypeAlias(
        self, original_node: cst.TypeAlias, updated_node: cst.TypeAlias
    ) -> cst.Assign:
        return cst.Assign(
            targets=[cst.AssignTarget(target=updated_node.name)],
            value=updated_node.value,
            semicolon=updated_node.semicolon,
        )

    def leave_ExceptHandler(
        self, original_node: cst.ExceptHandler, updated_node: cst.ExceptHandler
    ) -> cst.ExceptHandler:
        kind = updated_node.type
        if isinstance(kind, cst.Tuple) and not kind.lpar:
            kind = kind.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            return updated_node.with_changes(type=kind)
        return updated_node

    def leave_ExceptStarHandler(
        self, original_node: cst.ExceptStarHandler, updated_node: cst.ExceptStarHandler
    ) -> cst.ExceptStarHandler:
        kind = updated_node.type
        if isinstance(kind, cst.Tuple) and not kind.lpar:
            kind = kind.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            return updated_node.with_changes(type=kind)
        return updated_node

    def leave_FormattedString(
        self, original_node: cst.FormattedString, updated_node: cst.FormattedString
    ) -> cst.BaseExpression:
        if _parses(_code(updated_node)):
            return updated_node
        return cst.parse_expression(_lowered_string(updated_node))

    def leave_TemplatedString(
        self, original_node: cst.TemplatedString, updated_node: cst.TemplatedString
    ) -> cst.BaseExpression:
        return cst.parse_expression(_lowered_string(updated_node))


def lower_source(source: bytes | str) -> str:
    """``source`` rewritten into syntax the running Python reads, lines kept in place.

    Raises ``libcst.ParserSyntaxError`` when libcst cannot read it either.
    """
    module = cst.parse_module(source)
    return module.visit(_Lower()).code


def parse_python(source: bytes, filename: str = "<unknown>") -> ast.Module:
    """:func:`ast.parse`, falling back to libcst's parser for newer syntax.

    Raises the original ``SyntaxError`` when neither parser reads the file.
    """
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as exc:
        try:
            lowered = lower_source(source)
            return ast.parse(lowered, filename=filename)
        except (cst.ParserSyntaxError, SyntaxError, ValueError, RecursionError):
            raise exc from None
