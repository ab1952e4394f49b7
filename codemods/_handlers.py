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
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from . import _evaluate as ev

#: builtins a test may call without acting on anything
_PURE_CALLS = frozenset(
    {"isinstance", "issubclass", "getattr", "hasattr", "len", "str", "repr", "int", "any", "all"}
)


def _pure_call(node: ast.Call, as_name: str) -> bool:
    """A call a retry decision may make again without acting: a builtin of
    :data:`_PURE_CALLS`, or a getter of the exception itself without arguments
    (``e.getcode()``, ``e.get_status()``)."""
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in _PURE_CALLS
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == as_name
        and func.attr.startswith("get")
        and not node.args
        and not node.keywords
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
    #: what the legacy handler did with an exception the test rejects, when it was more
    #: than re-raising it (``raise DomainError(e)``, ``return ""``): run at the call site
    reject: list[Any] | None = None
    #: assignments before the test it reads (``code = e.getcode()``), substituted into it
    derived: list[Any] = field(default_factory=list)
    #: the test as the legacy code wrote it, reading the derived names
    raw_test: str = ""
    #: ``reject`` is an if/elif chain that tests again by itself (no guard needed)
    reject_tests: bool = False


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


def gives_up(stmts: Sequence[Any], is_log: Callable[[Any], bool]) -> bool:
    """The statements end the call at once with something of their own: log calls and
    assignments, then ``raise Other(...)`` or ``return value`` (or an if/elif/else whose
    every branch does)."""
    if not stmts:
        return False
    for stmt in stmts[:-1]:
        if isinstance(stmt, cst.If) and _early_exit(stmt, is_log):
            continue  # `if not fatal: return False` before the last way out
        if not isinstance(stmt, cst.SimpleStatementLine):
            return False
        if not all(is_log(s) or isinstance(s, cst.Assign) for s in stmt.body):
            return False
    last = stmts[-1]
    if isinstance(last, cst.If):
        bodies, otherwise = _branches(last)
        return otherwise is not None and all(gives_up(b, is_log) for b in [*bodies, otherwise])
    if not isinstance(last, cst.SimpleStatementLine):
        return False
    smalls = list(last.body)
    if not isinstance(smalls[-1], cst.Raise | cst.Return):
        return False
    return all(is_log(s) or isinstance(s, cst.Assign) for s in smalls[:-1])


def _branches(stmt: cst.If) -> tuple[list[Sequence[Any]], Sequence[Any] | None]:
    """The bodies of ``if``/``elif`` branches, and the ``else`` body (None without)."""
    bodies: list[Sequence[Any]] = []
    branch: cst.If | cst.Else | None = stmt
    while isinstance(branch, cst.If):
        bodies.append(branch.body.body)
        branch = branch.orelse
    return bodies, branch.body.body if isinstance(branch, cst.Else) else None


def _early_exit(stmt: cst.If, is_log: Callable[[Any], bool]) -> bool:
    """``if a: <give up> elif b: <give up>`` without ``else``: each branch ends the call,
    and when none is taken the statements after it run."""
    bodies, otherwise = _branches(stmt)
    return otherwise is None and all(gives_up(b, is_log) for b in bodies)


def _after_continue(stmts: Sequence[Any]) -> list[Any]:
    """``if t: ... continue`` followed by ``elif``/``else`` branches, as the same ``if``
    without them and the branches after it (the first branch never falls through)."""
    out: list[Any] = []
    for stmt in stmts:
        if (
            isinstance(stmt, cst.If)
            and stmt.orelse is not None
            and _ends_with_continue(list(stmt.body.body))
        ):
            rest = stmt.orelse
            out.append(stmt.with_changes(orelse=None))
            if isinstance(rest, cst.If):
                out.extend(_after_continue([rest.with_changes(leading_lines=[])]))
            else:
                out.extend(rest.body.body)
            continue
        out.append(stmt)
    return out


def _chain(stmt: cst.If, is_log: Callable[[Any], bool]) -> list[cst.BaseExpression] | None:
    """The tests of ``if a: <give up> elif b: <give up> ...`` (no else), else None."""
    tests: list[cst.BaseExpression] = []
    branch: cst.If | cst.Else | None = stmt
    while isinstance(branch, cst.If):
        if not gives_up(branch.body.body, is_log):
            return None
        tests.append(branch.test)
        branch = branch.orelse
    return tests if branch is None and len(tests) > 1 else None


def substitute(text: str, values: dict[str, str]) -> str:
    """``text`` (an expression) with each name of ``values`` replaced by its source,
    parenthesised (``code == 404`` with ``code`` -> ``e.getcode()``)."""
    if not values:
        return text

    class Replace(cst.CSTTransformer):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            return False  # `e.code`: the attribute's name is not a variable

        def leave_Attribute(
            self, original_node: cst.Attribute, updated_node: cst.Attribute
        ) -> cst.BaseExpression:
            value = updated_node.value.visit(self)
            assert isinstance(value, cst.BaseExpression)
            return updated_node.with_changes(value=value)

        def leave_Arg(self, original_node: cst.Arg, updated_node: cst.Arg) -> cst.Arg:
            return updated_node.with_changes(keyword=original_node.keyword)

        def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
            if original_node.value in values:
                replacement = cst.parse_expression(values[original_node.value])
                if isinstance(replacement, cst.Name | cst.Attribute | cst.Call):
                    return replacement
                return replacement.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            return updated_node

    new = cst.parse_expression(text).visit(Replace())
    assert isinstance(new, cst.BaseExpression)
    return cst.Module(body=[]).code_for_node(new)


def _counts(small: cst.BaseSmallStatement, counters: frozenset[str]) -> bool:
    """``retries -= 1``: a counter update, which stays in the handler before the test."""
    return (
        isinstance(small, cst.AugAssign)
        and isinstance(small.target, cst.Name)
        and small.target.value in counters
    )


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
    if isinstance(test, cst.Name | cst.Attribute | cst.Call | cst.Subscript):
        return f"not {code(test)}"  # an atom: no parentheses needed
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


def _reads_exception(
    test: cst.BaseExpression, as_name: str | None, code: Any, derived: set[str] | None = None
) -> bool:
    if as_name is None:
        return False
    try:
        return bool({as_name, *(derived or ())} & ev.names(ev.parse(code(test))))
    except SyntaxError:
        return False


def _derived(
    small: cst.BaseSmallStatement, as_name: str | None, code: Callable[[cst.CSTNode], str]
) -> bool:
    """``code = e.getcode()``: one name set from the caught exception."""
    return (
        isinstance(small, cst.Assign)
        and len(small.targets) == 1
        and isinstance(small.targets[0].target, cst.Name)
        and small.targets[0].target.value != as_name
        and _reads_exception(small.value, as_name, code)
    )


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

    Shapes (after any log calls and ``name = <from the exception>``): ``if <test>: raise``
    (retry when the test is false); ``if <test>: ... else: raise``, and ``if <test>: ...
    continue`` followed by ``raise`` (retry when the test is true). The rejecting branch
    may also raise another exception or return (``raise Domain(e)``, an ``if/elif`` chain
    of those): the predicate's ``reject`` keeps it for the call site. ``(None, stmts)``
    when the handler has none of these shapes.
    """
    stmts = _after_continue(stmts)
    derived: dict[str, str] = {}
    derived_stmts: list[Any] = []
    for index, stmt in enumerate(stmts):
        if isinstance(stmt, cst.SimpleStatementLine) and all(
            is_log(s) or _saves(s, as_name) or _counts(s, counters) for s in stmt.body
        ):
            continue  # log calls, `last_error = err`, `retries -= 1` come before the test
        if (
            isinstance(stmt, cst.SimpleStatementLine)
            and len(stmt.body) == 1
            and _derived(stmt.body[0], as_name, code)
        ):
            small = stmt.body[0]
            assert isinstance(small, cst.Assign) and isinstance(small.targets[0].target, cst.Name)
            derived[small.targets[0].target.value] = code(small.value)
            derived_stmts.append(stmt)
            counters = counters - {small.targets[0].target.value}
            continue
        if not isinstance(stmt, cst.If) or not _reads_exception(
            stmt.test, as_name, code, set(derived)
        ):
            return None, stmts
        # only the names the test reads are the predicate's; other assignments from the
        # exception (`error = str(err)`) stay in the handler, run as they were
        used = ev.names(ev.parse(code(stmt.test)))
        derived = {k: v for k, v in derived.items() if k in used}
        derived_stmts = [
            d
            for d in derived_stmts
            if isinstance(d.body[0], cst.Assign)
            and isinstance(d.body[0].targets[0].target, cst.Name)
            and d.body[0].targets[0].target.value in derived
        ]
        before = [s for s in stmts[:index] if s not in derived_stmts]
        after = stmts[index + 1 :]
        body = list(stmt.body.body)
        if getattr(stmt.test, "lpar", None):  # `if (a == b):` reads as `a == b`
            stmt = stmt.with_changes(test=stmt.test.with_changes(lpar=[], rpar=[]))
        orelse = stmt.orelse
        chain = _chain(stmt, is_log) if isinstance(orelse, cst.If) else None
        else_body = list(orelse.body.body) if isinstance(orelse, cst.Else) else []

        def rejects(
            block: list[Any], counters: frozenset[str] = counters
        ) -> list[Any] | bool | None:
            """None: a plain re-raise; the block: it gives up its own way; False: neither."""
            if _reraises(block, as_name, is_log):
                return None
            if gives_up(block, is_log) and not _reads(block, counters):
                return block
            return False

        if (
            isinstance(orelse, cst.Else)
            and rejects(body) is not False
            and rejects(else_body) is False
        ):  # `if <test>: raise / else: <retry>`: the else runs after the `if`, as without it
            after = [*else_body, *after]
            stmt, orelse, else_body = stmt.with_changes(orelse=None), None, []
        if (
            isinstance(orelse, cst.If)
            and rejects(body) is not False
            and not _reads_exception(orelse.test, as_name, code, set(derived))
        ):  # `if <test on e>: raise / elif <a budget, a flag>: raise`: two tests in a row
            after = [orelse, *after]
            stmt, orelse, chain = stmt.with_changes(orelse=None), None, None
        found: tuple[Predicate, list[Any]] | None = None
        if orelse is None and (reject := rejects(body)) is not False:
            # `if <test>: raise`: retried when the test is false
            mine, rest, moved = _split_bool(stmt.test, cst.Or, as_name, code, counters)
            if rest is None:
                predicate = _predicate(_negated(stmt.test, code), as_name, reject)
                found = predicate, [*before, *after]
            elif not derived:
                predicate = _predicate(f"not ({mine})", as_name, reject)
                _check_order(predicate, moved)
                return predicate, [*before, stmt.with_changes(test=rest), *after]
        elif chain is not None and not _reads([stmt], counters):
            tests = " or ".join(f"({code(t)})" for t in chain)
            chained = _predicate(f"not ({tests})", as_name, [stmt])
            chained.reject_tests = True
            found = chained, [*before, *after]
        elif else_body and (reject := rejects(else_body)) is not False:
            # `if <test>: <retry> else: raise`: retried when the test is true
            mine, rest, moved = _split_bool(stmt.test, cst.And, as_name, code, counters)
            if rest is None:
                found = _predicate(code(stmt.test), as_name, reject), [*before, *body, *after]
            elif not derived:
                predicate = _predicate(mine, as_name, reject)
                _check_order(predicate, moved)
                return predicate, [*before, stmt.with_changes(test=rest), *after]
        elif (
            orelse is None and _ends_with_continue(body) and (reject := rejects(after)) is not False
        ):
            # `if <test>: ... continue` then `raise`
            mine, rest, moved = _split_bool(stmt.test, cst.And, as_name, code, counters)
            if rest is None:
                found = _predicate(code(stmt.test), as_name, reject), [*before, *body]
            elif not derived:
                predicate = _predicate(mine, as_name, reject)
                _check_order(predicate, moved)
                counted = stmt.with_changes(test=rest)  # the counter test stays in the handler
                return predicate, [*before, counted, *after]
        if found is None:
            return None, stmts
        predicate, rest_stmts = found
        if derived:
            if _reads(rest_stmts, frozenset(derived)):
                return None, stmts  # the retrying branch reads them too: simulated as is
            predicate = _with_derived(predicate, derived, derived_stmts, as_name)
        return predicate, rest_stmts
    return None, stmts


def _reads(stmts: Sequence[Any], names: frozenset[str] | set[str]) -> bool:
    found: set[str] = set()
    for stmt in stmts:
        found |= {n.value for n in _names(stmt)}
    return bool(found & set(names))


def _names(node: cst.CSTNode) -> list[cst.Name]:
    out: list[cst.Name] = []

    class Finder(cst.CSTVisitor):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            node.value.visit(self)
            return False

        def visit_Name(self, node: cst.Name) -> None:
            out.append(node)

    node.visit(Finder())
    return out


def _with_derived(
    predicate: Predicate,
    derived: dict[str, str],
    stmts: list[Any],
    as_name: str | None,
) -> Predicate:
    """The predicate with the names set from the exception replaced by their source: in
    place when used once or free of calls, else bound once by an inner lambda."""
    text = predicate.test
    tree = ev.parse(text)
    inline: dict[str, str] = {}
    bound: dict[str, str] = {}
    for name, source in derived.items():
        uses = sum(1 for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == name)
        calls = any(isinstance(n, ast.Call) for n in ast.walk(ev.parse(source)))
        (inline if uses <= 1 or not calls else bound)[name] = source
    text = substitute(text, inline)
    if bound:
        names = ", ".join(bound)
        values = ", ".join(substitute(v, inline) for v in bound.values())
        text = f"(lambda {names}: {text})({values})"
    result = _predicate(text, as_name, predicate.reject)
    result.derived = list(stmts)
    result.raw_test = predicate.raw_test
    result.reject_tests = predicate.reject_tests
    return result


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


def _predicate(test: str, as_name: str | None, reject: list[Any] | bool | None = None) -> Predicate:
    assert as_name is not None
    text = " ".join(test.split())
    try:
        tree = ev.parse(text)
        bound = {a.arg for n in ast.walk(tree) if isinstance(n, ast.Lambda) for a in n.args.args}
        reads = ev.names(tree) - {as_name} - bound
    except SyntaxError:
        raise PredicateRefused(f"the retry decision `{text}` is not one expression") from None
    if any(isinstance(n, ast.NamedExpr | ast.Await) for n in ast.walk(ev.parse(text))):
        raise PredicateRefused(f"the retry decision `{text}` assigns or awaits")
    calls = any(
        isinstance(n, ast.Call) and not _pure_call(n, as_name) for n in ast.walk(ev.parse(text))
    )
    kept = reject if isinstance(reject, list) else None
    return Predicate(f"lambda {as_name}: {text}", text, reads, calls, kept, raw_test=text)


def negation_of(test: str) -> str:
    """The source of ``not (test)``, written plainly (``x not in y`` for ``x in y``), as a
    whole expression (an ``if`` test, a lambda's body): without outer parentheses."""
    module = cst.Module(body=[])
    negated = cst.parse_expression(_negated(cst.parse_expression(test), module.code_for_node))
    if negated.lpar:
        negated = negated.with_changes(lpar=[], rpar=[])
    return module.code_for_node(negated)


def predicate_of(test: str, as_name: str) -> Predicate:
    """A predicate built from a test the codemod wrote (a chain over several handlers)."""
    return _predicate(test, as_name)


__all__ = [
    "Predicate",
    "PredicateRefused",
    "gives_up",
    "negation_of",
    "predicate_of",
    "split_predicate",
    "substitute",
]
