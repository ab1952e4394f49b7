"""The retry-loop codemod's base: its state, where nodes are and what they read and store.

Split from :mod:`codemods.retry_loop` by concern: :class:`LoopScope` (positions, scopes,
sleeps and logs), :class:`codemods._loop_policy.LoopPolicy` (the policy a loop's counters and
run-time values give), :class:`codemods._loop_handlers.LoopHandlers` (what the except
handlers do between attempts and when they give up); the visitor is
:class:`codemods.retry_loop.RetryLoopCodemod`.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import libcst as cst
from libcst.metadata import (
    CodeRange,
    ParentNodeProvider,
    PositionProvider,
    QualifiedNameProvider,
    Scope,
)

from . import _evaluate as ev
from ._base import DurableCodemod, is_docstring
from ._loop_shapes import (
    _accesses_within,
    _ast_retry_like,
    _ast_supervised,
    _function_scopes,
    _walk_own,
    _within,
)
from ._loop_simulation import (
    Skip,
)
from ._policy import (
    Policy,
)

#: the values a run-time symbol takes in the simulation: a baseline and two variations
_PROBE, _PROBES = 6, (7, 12)
_NAME_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

_LOG_METHODS = {
    "debug",
    "info",
    "warning",
    "warn",
    "error",
    "exception",
    "critical",
    "log",
    "msg",
}
_SLEEPS = {"time.sleep", "asyncio.sleep"}
#: functions and methods whose name says they only report (``report_warning``, ``log_retry``)
_LOG_FUNCTION = re.compile(
    r"^_?(log|report|warn|notify_user|to_screen|to_stderr|write_debug)(_\w+)?$|_log$"
)
_RETRY_DECORATOR_PREFIXES = ("tenacity.", "backoff.", "retrying.", "retry.", "toolkit.")
_RETRY_DECORATOR = re.compile(r"retr(y|ies)|backoff")
#: clock reads that make a time budget (``time.time()``, ``datetime.now()``)
_CLOCKS = frozenset({"time", "monotonic", "perf_counter", "now", "utcnow", "monotonic_ns"})
#: context managers that re-raise the handled exception unless told not to (oslo)
_RERAISER = re.compile(r"save_and_reraise")
#: a sleep statement as one line of a handler's work (its delay masked to compare clauses)
_SLEEP_LINE = re.compile(r"^(await )?[\w.]*sleep\(.*\)$")
#: the name of a helper that waits (``_backoff``, ``wait_before_retry``, ``jitter_sleep``)
_WAITS = re.compile(r"backoff|sleep|wait|delay|pause", re.I)


@dataclass
class _Plan:
    """What to do with one loop (keyed by the original loop node)."""

    reason: str | None = None  # set: skipped
    summary: str = ""  # the policy read, also when skipped after reading it
    counter: tuple[str, int] | None = None  # the loop counter the attempt reads, its start
    bumps: int = 0  # counter updates that open the try: dropped from the step's body
    whole_function: bool = False
    policy: Policy | None = None
    notes: list[str] = field(default_factory=list)
    style: Literal["return", "break"] = "return"
    params: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    step_name: str = ""
    is_async: bool = False
    wrapper_as: str | None = None
    wrapper_body: Sequence[cst.BaseStatement] = ()
    needs_wrapper: bool = False
    give_up: list[str] = field(default_factory=list)
    retry_types: list[str] = field(default_factory=list)
    top_level: cst.CSTNode | None = None
    machinery: str = ""  # source of the loop code that disappears (header, handlers)
    nested: bool = False  # the step is defined in the function, before the loop
    #: ``success = True`` ending the attempt (a success flag the ``while`` test reads), and
    #: whether the code after the loop reads it (then it is set after the step)
    success_flag: str | None = None
    flag_read_after: bool = False
    #: the loop body's statements before the try that each attempt runs (their indexes)
    setup: list[int] = field(default_factory=list)
    #: the call site's except clauses (types, as-name, body) when handlers give up their
    #: own way (``raise Domain(e)``, ``return ""``): the legacy handlers' order, kept
    clauses: list[tuple[str | None, str | None, list[Any]]] = field(default_factory=list)
    #: ``(class, first parameter)``: ``super()`` in the step becomes ``super(Cls, self)``
    super_of: tuple[str, str] | None = None
    #: a retry decided by a returned value (:class:`codemods._loop_results.ResultPlan`)
    result: Any = None


class LoopScope(DurableCodemod):
    """State of one file's pass and the questions about nodes every layer asks."""

    def __init__(self, context: Any, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.source_module: cst.Module = cst.Module(body=[])
        self.constants: dict[str, ev.Number] = {}
        #: module-level tuples of numbers (``DELAYS = (1, 2, 4)``), for ``for d in DELAYS``
        self.sequences: dict[str, cst.Tuple | cst.List] = {}
        self.sequence_values: dict[str, tuple[ev.Number, ...]] = {}
        self.plans: dict[cst.CSTNode, _Plan] = {}
        self.function_plans: dict[cst.FunctionDef, _Plan] = {}
        self.recursions: dict[cst.FunctionDef, str] = {}  # retries by calling itself
        self.remove_stmts: set[cst.CSTNode] = set()
        #: comments of a removed setup line, for the loop after it
        self.carried_comments: dict[cst.CSTNode, list[cst.EmptyLine]] = {}
        self.new_functions: dict[cst.CSTNode, list[cst.FunctionDef]] = {}
        self.taken_names: set[str] = set()
        self._last_summary = ""
        self.sleep_like: set[str] = set()
        # the loop being analysed (reset by RetryLoopCodemod._analyse for each loop)
        self._current_loop: cst.For | cst.While | None = None
        self._counter_read: tuple[str, int] | None = None
        self._local_types = False
        self._per_type_delays: list[tuple[str, float]] = []
        self._assigned_attributes: set[str] = set()
        self._last_repairs: list[cst.BaseStatement] = []
        #: differences the small-value check found at negative counts (notes of the site)
        self._small_value_notes: list[str] = []
        #: run-time delays slept only when true (``if delay: sleep(delay)``): written
        #: ``(delay or 0)``, which is what the loop waited for 0 and None
        self._guarded_delays: set[str] = set()
        #: ``(value, t)``: the loop re-raises when attempts run out and ``value <= t``
        self._small_exit: tuple[str, int] | None = None

    def _whole_function(
        self,
        func: cst.FunctionDef,
        loop: cst.CSTNode,
        init_stmts: dict[str, cst.SimpleStatementLine],
        saved: str | None,
        const_stmts: Sequence[cst.SimpleStatementLine] = (),
    ) -> bool:
        body = list(func.body.body)
        if loop not in body:
            return False
        if any(isinstance(n, cst.Yield) for n in _walk_own(func.body)):
            return False
        index = body.index(loop)
        before = body[:index]
        if before and is_docstring(before[0]):
            before = before[1:]
        inits = set(init_stmts.values()) | set(const_stmts)
        return all(stmt in inits for stmt in before)

    def _remove_inits(
        self,
        init_stmts: dict[str, cst.SimpleStatementLine],
        state: set[str],
        saved: str | None,
        scope: Scope,
        loop: cst.CSTNode,
        keep_saved: bool,
    ) -> None:
        """Drop the counters' initial assignments that nothing but the loop reads."""
        loop_range = self._range(loop)
        by_stmt: dict[cst.SimpleStatementLine, list[str]] = {}
        for name, stmt in init_stmts.items():
            by_stmt.setdefault(stmt, []).append(name)
        for stmt, names in by_stmt.items():
            stmt_range = self._range(stmt)

            def unused(name: str, stmt_range: CodeRange = stmt_range) -> bool:
                if name not in state and not (name == saved and not keep_saved):
                    return False
                return not any(
                    not _within(self._range(a.node), loop_range)
                    and not _within(self._range(a.node), stmt_range)
                    for a in scope.accesses[name]
                )

            if all(unused(name) for name in names):
                self.remove_stmts.add(stmt)

    # ----------------------------------------------------------- data flow
    def _range(self, node: cst.CSTNode) -> CodeRange:
        nodes = getattr(node, "nodes", None)  # a _Span: the setup and the try's body
        if isinstance(nodes, list) and not isinstance(node, cst.CSTNode):
            first, last = self._range(nodes[0]), self._range(nodes[-1])
            return CodeRange(first.start, last.end)
        return self.get_metadata(PositionProvider, node)

    def _bound_before(self, scope: Scope, name: str, loop: cst.CSTNode) -> bool:
        """Whether ``name`` is a parameter or is assigned before ``loop`` starts."""
        start = self._range(loop).start
        for a in scope.assignments[name]:
            node = getattr(a, "node", None)
            if isinstance(node, cst.CSTNode):
                where = self._range(node).start
                if (where.line, where.column) < (start.line, start.column):
                    return True
        return False

    def _stored_in(self, scope: Scope, region: cst.CSTNode) -> set[str]:
        region_range = self._range(region)
        return {
            a.name
            for a in scope.assignments
            if isinstance(node := getattr(a, "node", None), cst.CSTNode)
            and _within(self._range(node), region_range)
        }

    def _read_outside(
        self, scope: Scope, loop: cst.CSTNode, stored: set[str], after_only: bool = False
    ) -> set[str]:
        """The names of ``stored`` read outside the loop; with ``after_only``, read after it
        (a parameter read before a loop that runs once sees none of its values)."""
        loop_range = self._range(loop)
        begin = (loop_range.start.line, loop_range.start.column)
        out = set()
        for name in stored:
            for access in scope.accesses[name]:
                where = self._range(access.node)
                if after_only and (where.end.line, where.end.column) <= begin:
                    continue
                if not _within(where, loop_range):
                    out.add(name)
        return out

    def _in_outer_loop(self, node: cst.CSTNode) -> bool:
        """``node`` runs again in the same call: inside another loop of its function."""
        parent = self.get_metadata(ParentNodeProvider, node, None)
        while parent is not None and not isinstance(parent, cst.FunctionDef | cst.Lambda):
            if isinstance(parent, cst.For | cst.While):
                return True
            parent = self.get_metadata(ParentNodeProvider, parent, None)
        return False

    def _first_store(self, scope: Scope, name: str, region: cst.CSTNode) -> tuple[int, int]:
        region_range = self._range(region)
        positions = [
            (r.start.line, r.start.column)
            for a in scope.assignments[name]
            if isinstance(node := getattr(a, "node", None), cst.CSTNode)
            and _within(r := self._range(node), region_range)
        ]
        return min(positions) if positions else (0, 0)

    def _free_locals(self, scope: Scope, region: cst.BaseSuite, stored: set[str]) -> list[str]:
        """Names the attempt body reads from the enclosing function(s): the step's parameters.
        Refuses a name read before the attempt assigns it (carried to the next attempt)."""
        region_range = self._range(region)
        enclosing = _function_scopes(scope)
        found: dict[str, tuple[int, int]] = {}
        for access in _accesses_within(self, region, region_range):
            if not any(r.scope in enclosing for r in access.referents):
                continue
            name = access.node.value
            start = self._range(access.node).start
            position = (start.line, start.column)
            if name in stored:
                if position < self._store_statement_end(scope, name, region):
                    raise Skip(f"the attempt body updates `{name}`, read by the next attempt")
                continue
            found.setdefault(name, position)
        return sorted(found, key=lambda n: found[n])

    def _store_statement_end(self, scope: Scope, name: str, region: cst.CSTNode) -> tuple[int, int]:
        """Where the first assignment of ``name`` in ``region`` takes effect."""
        region_range = self._range(region)
        best: tuple[int, int] | None = None
        for a in scope.assignments[name]:
            node = getattr(a, "node", None)
            if not isinstance(node, cst.CSTNode):
                continue
            node_range = self._range(node)
            if not _within(node_range, region_range):
                continue
            holder = self._small_statement_of(node)
            end = self._range(holder).end if holder is not None else node_range.start
            point = (end.line, end.column)
            if best is None or point < best:
                best = point
        return best or (0, 0)

    def _small_statement_of(self, node: cst.CSTNode) -> cst.CSTNode | None:
        current: cst.CSTNode | None = node
        while current is not None:
            if isinstance(current, cst.Assign | cst.AugAssign | cst.AnnAssign):
                return current
            if isinstance(current, cst.BaseStatement):
                return None
            current = self.get_metadata(ParentNodeProvider, current, None)
        return None

    def _block_of(self, node: cst.CSTNode) -> Sequence[cst.BaseStatement]:
        parent = self.get_metadata(ParentNodeProvider, node, None)
        if isinstance(parent, cst.IndentedBlock | cst.Module):
            return list(parent.body)
        return []

    def _top_level(self, node: cst.CSTNode) -> cst.CSTNode:
        current = node
        while True:
            parent = self.get_metadata(ParentNodeProvider, current, None)
            if parent is None or isinstance(parent, cst.Module):
                return current
            current = parent

    def _step_name(
        self, region: cst.CSTNode, func: cst.FunctionDef, scope: Scope | None = None
    ) -> str:
        callee = None
        for node in _walk_own(region):
            if isinstance(node, cst.Call):
                target = node.func
                if isinstance(target, cst.Name):
                    callee = target.value
                elif isinstance(target, cst.Attribute):
                    callee = target.attr.value
                if callee:
                    break
        base = f"_{(callee or func.name.value).strip('_')}_step"
        name, n = base, 2
        while name in self.taken_names or (scope is not None and scope.assignments[name]):
            name = f"{base}_{n}"
            n += 1
        self.taken_names.add(name)
        return name

    # ------------------------------------------------------------- helpers
    def _retry_like(self, loop: cst.For | cst.While) -> bool:
        """Does the loop retry at all (a counted header, retry words, a sleep between tries)?
        The same test as the file pre-check, on the loop's own source."""
        node = self._ast_loop(loop)
        return node is None or _ast_retry_like(node)

    def _supervisor(self, loop: cst.For | cst.While) -> str | None:
        """Why a loop that is no retry is still listed: a supervisor that starts its work
        again after each failure and never leaves on success (None: it is not one)."""
        node = self._ast_loop(loop)
        work = _ast_supervised(node) if node is not None else None
        if work is None:
            return None
        return (
            f"a supervisor loop: it starts `{work}` again after each failure and never"
            " leaves the loop on success; not a retry to make a step (keep it, or run each"
            " unit of its work as a workflow)"
        )

    def _ast_loop(self, loop: cst.For | cst.While) -> ast.For | ast.AsyncFor | ast.While | None:
        """The loop's own source as an :mod:`ast` loop (None: it does not parse alone)."""
        source = self.source_module.code_for_node(loop.with_changes(leading_lines=[]))
        is_async = getattr(loop, "asynchronous", None) is not None or "await" in source
        prefix = "async def _():\n" if is_async else ""
        body = textwrap.indent(source, "    ") if prefix else source
        try:
            tree = ast.parse(prefix + body)
        except SyntaxError:
            return None
        node = tree.body[0]
        if isinstance(node, ast.AsyncFunctionDef):
            node = node.body[0]
        return node if isinstance(node, ast.For | ast.AsyncFor | ast.While) else None

    @staticmethod
    def handler_stmts(handler: cst.ExceptHandler) -> list[Any]:
        """The statements of an except handler."""
        return list(handler.body.body)

    def qualified(self, node: cst.CSTNode) -> set[str]:
        return {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}

    def is_sleep(self, node: cst.BaseExpression) -> cst.Call | None:
        """``time.sleep(d)``, ``await asyncio.sleep(d)``, and sleep-like helpers
        (``self._sleep(d, ...)``, ``eventlet.sleep(d)``): the delay is the first argument."""
        call = node.expression if isinstance(node, cst.Await) else node
        if not isinstance(call, cst.Call):
            return None
        if self.qualified(call.func) & _SLEEPS:
            return call
        func = call.func
        last = func.attr.value if isinstance(func, cst.Attribute) else None
        if isinstance(func, cst.Name):
            last = func.value
        if last in ("sleep", "_sleep") and call.args and call.args[0].keyword is None:
            self.sleep_like.add(self.source_module.code_for_node(func))
            return call
        return None

    def _is_log(self, node: cst.BaseSmallStatement) -> bool:
        """A call that only reports: ``print``, ``log.warning``, ``module.warn``,
        ``self.report_warning``, ``warnings.warn``."""
        if not isinstance(node, cst.Expr) or not isinstance(node.value, cst.Call):
            return False
        func = node.value.func
        if isinstance(func, cst.Name):
            return func.value == "print" or bool(_LOG_FUNCTION.match(func.value))
        if isinstance(func, cst.Attribute):
            owner = self.source_module.code_for_node(func.value).lower()
            if func.attr.value in _LOG_METHODS and "log" in owner:
                return True
            if func.attr.value in ("warn", "warning") and owner in ("warnings", "module"):
                return True
            return bool(_LOG_FUNCTION.match(func.attr.value))
        return False


def _failover_items(loop: cst.For) -> list[str]:
    """The loop targets (``cdn_id`` of ``for n, cdn_id in enumerate(cdns)``) that the loop
    body reads outside its except handlers; an ``enumerate`` index alone is a counter."""
    targets = loop.target.elements if isinstance(loop.target, cst.Tuple) else [loop.target]
    names = [t.value if isinstance(t, cst.Element) else t for t in targets]
    wanted = [n.value for n in names if isinstance(n, cst.Name)]
    iterable = loop.iter
    if (
        isinstance(iterable, cst.Call)
        and isinstance(iterable.func, cst.Name)
        and iterable.func.value == "enumerate"
        and len(wanted) == 2
    ):
        wanted = wanted[1:]
    read: set[str] = set()
    stack: list[cst.CSTNode] = list(loop.body.children)
    while stack:
        node = stack.pop()
        if isinstance(node, cst.ExceptHandler):
            continue
        if isinstance(node, cst.Name):
            read.add(node.value)
        stack.extend(node.children)
    return [n for n in wanted if n in read]


def _fixed_values(iterable: cst.BaseExpression) -> list[ev.Number] | None:
    """The values of a literal tuple or list of numbers or booleans (``(True, False)``),
    the loop running one attempt for each; None for anything else."""
    if not isinstance(iterable, cst.Tuple | cst.List) or not iterable.elements:
        return None
    values: list[ev.Number] = []
    for element in iterable.elements:
        value = element.value
        if isinstance(element, cst.StarredElement):
            return None
        if isinstance(value, cst.Name) and value.value in ("True", "False"):
            values.append(value.value == "True")
        elif isinstance(value, cst.Integer):
            values.append(int(value.evaluated_value))
        elif isinstance(value, cst.Float):
            values.append(float(value.evaluated_value))
        else:
            return None
    return values


def _num_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _expression_of(
    field_name: str, name: str, values: list[Any], xs: Sequence[float] | None = None
) -> str:
    """The source of a field that follows run-time value ``name``: its values at the
    probes (``xs``: ``_PROBE``, then ``_PROBES`` by default) must be ``name + c``
    (attempts) or ``k * name``."""
    xs = list(xs) if xs is not None else [_PROBE, *_PROBES]
    if any(v is None for v in values):
        raise Skip(f"the {field_name} depends on `{name}` in a way a policy cannot express")
    offsets = {v - x for v, x in zip(values, xs, strict=True)}
    if field_name == "max_attempts" and len(offsets) == 1:
        c = int(offsets.pop())
        return name if c == 0 else f"{name} {'+' if c > 0 else '-'} {abs(c)}"
    ratios = {round(v / x, 9) for v, x in zip(values, xs, strict=True)}
    if field_name != "max_attempts" and len(ratios) == 1:
        k = ratios.pop()
        return name if k == 1 else f"{k:g} * {name}"
    raise Skip(f"the {field_name} depends on `{name}` in a way a policy cannot express")
