"""Per-attempt setup: the statements a retry loop runs before its ``try``.

``for i in range(n): client = self.make_client(); try: return client.call() except ...``
recomputes ``client`` before every attempt. When that setup reads nothing the loop's
machinery changes (counters, the handler's own variables) and sets nothing the handler
or the code after the loop reads, it is part of the attempt: the step's body becomes the
setup followed by the try's body, and the step runs it before each attempt as the loop
did (a repair of the handler, ``before_retry``, still runs before it).

What the loop did between the setup and the try stays loop machinery only when it is a
counter update or a log line; a wait there (``time.sleep`` after the setup) would move
the setup after the wait, and is refused.

One difference remains possible: an error the setup raised was never caught by the
loop's ``except`` clauses; inside the step it is treated as the attempt's own. That is
exact only when the setup runs no code of its own (no call but a few builtins) and the
clauses catch no error such plain code can raise (``KeyError``, ``TypeError``, ...);
otherwise the rewrite says so in a note.
"""

from __future__ import annotations

import ast
import builtins
import textwrap
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import libcst as cst

from ._loop_shapes import (
    _assigned_names,
    _first_line,
    _is_counter_bump,
    _names_read_in,
    _walk_own,
)
from ._loop_simulation import Skip

if TYPE_CHECKING:
    from ._loop_scope import LoopScope

#: calls that run no code of the program's own (their errors are builtin ones)
_PLAIN_CALLS = frozenset(
    {
        "len", "str", "int", "float", "bool", "tuple", "list", "dict", "set", "frozenset",
        "zip", "range", "enumerate", "isinstance", "getattr", "hasattr", "min", "max",
        "sorted", "repr", "abs", "round",
    }
)  # fmt: skip

#: what plain code (names, attributes, subscripts, operators, the calls above) can raise
_PLAIN_ERRORS: tuple[type[BaseException], ...] = (
    NameError,
    AttributeError,
    TypeError,
    KeyError,
    IndexError,
    ValueError,
    ZeroDivisionError,
    OverflowError,
    RecursionError,
    MemoryError,
)


class _Span:
    """The setup statements and the try's body as one region of the source (for the
    questions asked of a region: what it stores, what it reads, its range)."""

    def __init__(self, nodes: Sequence[cst.CSTNode]) -> None:
        self.nodes = list(nodes)

    @property
    def children(self) -> list[cst.CSTNode]:
        return self.nodes


def span_or_node(setup: Sequence[cst.CSTNode], body: cst.BaseSuite) -> Any:
    return _Span([*setup, body]) if setup else body


def _sleeps(cm: LoopScope, stmt: cst.CSTNode) -> bool:
    for node in [stmt, *_walk_own(stmt)]:
        if isinstance(node, cst.Call | cst.Await) and cm.is_sleep(node) is not None:
            return True
    return False


def _is_log_line(cm: LoopScope, stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and bool(stmt.body)
        and all(cm._is_log(small) for small in stmt.body)
    )


def _header_reads(loop: cst.For | cst.While) -> set[str]:
    test = loop.test if isinstance(loop, cst.While) else loop.iter
    return {n.value for n in [test, *_walk_own(test)] if isinstance(n, cst.Name)}


def split_setup(
    cm: LoopScope,
    loop: cst.For | cst.While,
    pre: list[Any],
    handlers: Sequence[cst.ExceptHandler],
    post: Sequence[cst.BaseStatement],
    body: Sequence[cst.CSTNode] = (),
) -> tuple[list[Any], list[Any]]:
    """``pre`` split into the loop's machinery (counters, waits, logs) and the setup of
    each attempt (moved into the step). Refuses a setup whose place among the machinery
    matters, or that the handler reads or changes."""
    handler_stmts = [s for h in handlers for s in h.body.body]
    changed = _assigned_names([*handler_stmts, *post])
    header = _header_reads(loop)  # a name the loop test reads is loop machinery
    # `resp = None` reset before a try that sets `resp`: the value left after the loop,
    # which the loop's own rules judge (not a setup of the attempt)
    header |= _assigned_names(body)
    # what the loop's machinery knows: its counter, what the header and the handler set
    known = header | changed | set(cm.constants)
    if isinstance(loop, cst.For):
        known |= {
            n.value for n in [loop.target, *_walk_own(loop.target)] if isinstance(n, cst.Name)
        }
    attempt_reads = _loads(cm, body)
    machinery: list[Any] = []
    setup: list[Any] = []
    for stmt in pre:
        own = _assigned_names([stmt])
        if (
            _is_counter_bump(stmt)
            or _is_log_line(cm, stmt)
            or _sleeps(cm, stmt)
            or own & (changed | header)
            or own & _loads(cm, [stmt])  # `n = n + 1`: a counter of its own
            or _is_delay_law(cm, stmt, known, attempt_reads)
        ):
            machinery.append(stmt)
            changed |= own
            known |= own
        else:
            setup.append(stmt)
    if not setup:
        return pre, []
    code = cm.source_module.code_for_node
    first = pre.index(setup[0])
    for stmt in pre[first:]:
        if any(stmt is s for s in setup):
            continue
        if _is_counter_bump(stmt) or _is_log_line(cm, stmt):
            continue
        raise Skip(
            f"the loop runs `{_first_line(code(stmt))}` between the setup"
            f" `{_first_line(code(setup[0]))}` and the try"
        )
    set_by_setup = _assigned_names(setup)
    for stmt in setup:
        read = (_loads(cm, [stmt]) & changed) - set_by_setup
        if read:
            name = sorted(read)[0]
            raise Skip(
                f"the setup `{_first_line(code(stmt))}` before the try reads `{name}`,"
                " which the loop changes between attempts"
            )
    readers: list[tuple[str, list[Any]]] = [
        ("the handler", [s for s in handler_stmts if not _is_log_line(cm, s)]),
        ("the code after the try", list(post)),
    ]
    if isinstance(loop.orelse, cst.Else):
        readers.append(("the loop's else block", list(loop.orelse.body.body)))
    for who, stmts in readers:
        read = _loads(cm, stmts) & set_by_setup
        if read:
            name = sorted(read)[0]
            origin = next(s for s in setup if name in _assigned_names([s]))
            raise Skip(f"{who} reads `{name}`, set before the try by `{_first_line(code(origin))}`")
    return machinery, setup


#: the calls a delay law computed before the try may make (plain arithmetic)
_LAW_CALLS = frozenset({"min", "max", "int", "float", "round", "abs", "pow"})


def _is_delay_law(
    cm: LoopScope, stmt: cst.CSTNode, known: set[str], attempt_reads: set[str]
) -> bool:
    """``wait = min(1.7 ** i * 0.1, 15)`` before the try: one name set from the counter,
    the loop's other machinery and module constants by plain arithmetic, which the
    attempt does not read. It is the delay law, computed at the top of the body: loop
    machinery the simulation runs, not a setup of the attempt."""
    if not (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Assign)
        and len(stmt.body[0].targets) == 1
        and isinstance(stmt.body[0].targets[0].target, cst.Name)
    ):
        return False
    assign = stmt.body[0]
    target = assign.targets[0].target
    assert isinstance(target, cst.Name)
    if target.value in attempt_reads:
        return False
    for node in [assign.value, *_walk_own(assign.value)]:
        if isinstance(node, cst.Call) and not (
            isinstance(node.func, cst.Name) and node.func.value in _LAW_CALLS
        ):
            return False
        if isinstance(node, cst.Attribute | cst.Subscript | cst.Lambda | cst.Await):
            return False
    reads = _loads(cm, [assign.value]) - _LAW_CALLS
    return bool(reads) and reads <= known


def _loads(cm: LoopScope, stmts: Sequence[cst.CSTNode]) -> set[str]:
    """The local names ``stmts`` read (not attribute names; ``n += 1`` reads ``n``)."""
    code = cm.source_module.code_for_node
    out: set[str] = set()
    for stmt in stmts:
        source = textwrap.dedent(code(stmt))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            try:
                tree = ast.parse("async def _():\n" + textwrap.indent(source, "    "))
            except SyntaxError:
                return out | _names_read_in(stmts)  # cautious: every name
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                out.add(node.id)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                out.add(node.target.id)
    return out


def _calls(stmts: Sequence[cst.CSTNode]) -> Iterator[cst.Call]:
    """The calls in ``stmts``; a ``raise`` counts as one (it raises any type it names)."""
    for stmt in stmts:
        for node in [stmt, *_walk_own(stmt)]:
            if isinstance(node, cst.Call):
                yield node
            elif isinstance(node, cst.Raise):
                yield cst.Call(func=cst.Name("raise"))


def _may_catch_plain_errors(type_name: str) -> bool:
    """``KeyError``, ``LookupError``, ``Exception``: an error plain code can raise."""
    if type_name[:1].islower() and "." not in type_name:
        return True  # a tuple kept in a variable (`retry_excs`): it may hold any
    found = getattr(builtins, type_name, None)
    if not isinstance(found, type) or not issubclass(found, BaseException):
        return False
    return any(issubclass(err, found) for err in _PLAIN_ERRORS)


def setup_note(cm: LoopScope, setup: Sequence[cst.CSTNode], caught: Sequence[str]) -> str | None:
    """The note for an error the setup raises, or ``None`` when it cannot be one the
    loop's ``except`` clauses catch."""
    if not setup:
        return None
    code = cm.source_module.code_for_node
    shown = f"`{_first_line(code(setup[0]))}`" + (" ..." if len(setup) > 1 else "")
    types = ", ".join(f"`{t}`" for t in caught)
    for stmt in setup:
        for node in [stmt, *_walk_own(stmt)]:
            exc = node.exc if isinstance(node, cst.Raise) else None
            raised = exc.func if isinstance(exc, cst.Call) else exc
            if raised is not None and code(raised) in caught:
                raise Skip(
                    f"the setup before the try raises `{code(raised)}`, which the loop's"
                    " except clauses would catch inside the step (the legacy loop let it"
                    " through)"
                )
    runs_code = [
        c
        for c in _calls(setup)
        if not (isinstance(c.func, cst.Name) and c.func.value in _PLAIN_CALLS)
    ]
    if not runs_code and not any(_may_catch_plain_errors(t) for t in caught):
        return None
    return (
        f"the setup before the try ({shown}) now runs inside the step: an error it raises"
        f" that the loop's except clauses catch ({types}) is handled like the attempt's"
        " (retried, or given up as the handler does), where the legacy loop let it through"
    )


def message_prelude(
    cm: LoopScope,
    handler: cst.ExceptHandler,
    block: Sequence[cst.BaseStatement],
    needed: set[str],
    state: set[str],
) -> list[cst.BaseStatement]:
    """The handler's own values the code run when attempts run out reads, set before it
    on every failure (``netloc = self.netloc``, ``msg = _("... %(extra)s")``): kept in
    front of that code at the call site, as the legacy handler ran them before it."""
    if not block or not needed:
        return []
    stmts = list(handler.body.body)
    first = block[0]
    index = next(
        (i for i, s in enumerate(stmts) if s is first or any(n is first for n in _walk_own(s))),
        None,
    )
    if index is None:
        return []
    prelude: list[cst.BaseStatement] = []
    for stmt in stmts[:index]:
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            continue
        small = stmt.body[0]
        if not (
            isinstance(small, cst.Assign)
            and len(small.targets) == 1
            and isinstance(small.targets[0].target, cst.Name)
        ):
            continue
        name = small.targets[0].target.value
        if name in needed and not (_loads(cm, [small.value]) & state):
            prelude.append(stmt)
    return prelude


def check_cleanup(
    cm: LoopScope,
    final: Sequence[cst.BaseStatement],
    state: set[str],
    as_name: str | None,
    tail: Sequence[cst.BaseStatement],
) -> None:
    """A ``finally`` block run after every attempt can close the step's body (``try:
    body finally: cleanup``) when it reads nothing the handler changes, sets nothing,
    and does not leave the loop."""
    code = cm.source_module.code_for_node
    shown = _first_line(code(final[0]))
    for stmt in final:
        for node in [stmt, *_walk_own(stmt)]:
            if isinstance(node, cst.Return | cst.Break | cst.Continue | cst.Yield):
                raise Skip(f"the finally block (`{shown}`) leaves the loop")
    read = _loads(cm, final) & (state | ({as_name} if as_name else set()))
    if read:
        name = sorted(read)[0]
        raise Skip(
            f"the finally block (`{shown}`) reads `{name}`, which the loop changes between attempts"
        )
    assigned = _assigned_names(final)
    if assigned:
        raise Skip(f"the finally block assigns `{sorted(assigned)[0]}` after every attempt")
    if tail:
        raise Skip(
            "the try's else block runs before its finally block; after the step it"
            " would run after it"
        )


def cleanup_notes(
    cm: LoopScope,
    final: Sequence[cst.BaseStatement],
    caught: Sequence[str],
    waits: bool,
    repairs: bool,
    after_code: Sequence[cst.BaseStatement],
) -> list[str]:
    """What changes when the ``finally`` block moves into the step: it runs when the
    attempt ends, before the step's wait, the work between attempts and the code run
    when it gives up, instead of after the handler that did them."""
    if not final:
        return []
    code = cm.source_module.code_for_node
    shown = f"`{_first_line(code(final[0]))}`" + (" ..." if len(final) > 1 else "")
    notes: list[str] = []
    effects = [s for s in after_code if not _raises_or_returns(s)]
    before: list[str] = []
    if waits:
        before.append("the wait")
    if repairs:
        before.append("the work between attempts")
    if effects:
        before.append(f"`{_first_line(code(effects[0]))}` (run when attempts run out)")
    if before:
        notes.append(
            f"the finally block ({shown}) now runs as soon as an attempt fails, before "
            + ", ".join(before)
            + "; the legacy loop ran it after its handler"
        )
    runs_code = [
        c
        for c in _calls(final)
        if not (isinstance(c.func, cst.Name) and c.func.value in _PLAIN_CALLS)
    ]
    if runs_code or any(_may_catch_plain_errors(t) for t in caught):
        types = ", ".join(f"`{t}`" for t in caught)
        notes.append(
            f"the finally block ({shown}) now runs inside the step: an error it raises that"
            f" the loop's except clauses catch ({types}) is handled like the attempt's,"
            " where the legacy loop let it through"
        )
    return notes


def _raises_or_returns(stmt: cst.BaseStatement) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(small, cst.Raise | cst.Return | cst.Pass) for small in stmt.body
    )
