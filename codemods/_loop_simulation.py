"""The simulation of a retry loop's machinery: the handler is *run* for attempt 1, 2, ...
with the counters as plain numbers (every attempt failing), which yields the number of
attempts, the delays and what happens when attempts run out."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import libcst as cst

from . import _evaluate as ev
from ._handlers import gives_up
from ._loop_shapes import _assigned_names, _first_line, _names_read_in, fixed_iterable

if TYPE_CHECKING:
    from .retry_loop import RetryLoopCodemod

_MAX_SIMULATED = 1000
_NAME_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
#: delays kept to fit the backoff of an endless loop
_FIT_WINDOW = 64


class Skip(Exception):
    """The loop is not rewritten; the message is the reason shown to the user."""


class _NeedsValue(Skip):
    """The simulation met a value it does not know (``what``: a name or ``self.attr``)."""

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


def _is_text(value: cst.BaseExpression) -> bool:
    """A message being built: an f-string, a string, ``"..." % args``, ``"...".format()``."""
    if isinstance(value, cst.FormattedString | cst.SimpleString | cst.ConcatenatedString):
        return True
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Modulo):
        return _is_text(value.left)
    if (  # a translated message: `_("...")`, `gettext("...")`
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Name)
        and value.func.value in ("_", "gettext", "_LE", "_LW", "_LI")
        and len(value.args) == 1
        and _is_text(value.args[0].value)
    ):
        return True
    return (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value == "format"
        and _is_text(value.func.value)
    )


class _FlagNeeded(Skip):
    """A run-time value is read as a flag (``if flag ...``, ``flag and n < 3``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the retry depends on the flag `{name}`")
        self.name = name


def _flags_in(test: ast.expr) -> list[str]:
    """Names (``flag``, ``self.flag``, flattened) in a boolean position of ``test``."""
    found: list[str] = []
    stack: list[ast.expr] = [test]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.BoolOp):
            stack.extend(node.values)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            stack.append(node.operand)
        elif isinstance(node, ast.Name):
            found.append(node.id)
    return found


def _is_clock(node: ast.expr) -> bool:
    """``time.time()``, ``monotonic()``, ``time.perf_counter()``: a clock read."""
    return (
        isinstance(node, ast.Call)
        and not node.args
        and ast.unparse(node).rsplit(".", 1)[-1] in ("time()", "monotonic()", "perf_counter()")
    )


@dataclass
class _Exit:
    kind: Literal["reraise", "code", "fallthrough"]
    block: Sequence[cst.BaseStatement] = ()


@dataclass
class _Outcome:
    attempts: int | None
    delays: list[float]
    jitter: bool
    exit: _Exit
    saved: str | None
    capped: bool = False  # a min(...) bounds the delay: a cap is not a guess
    last_sleep: float = 0.0  # slept after the last failed attempt, before giving up
    #: calls the handler makes before each retry (before_retry), and after the last failure
    repairs: list[Any] = field(default_factory=list)
    last_repairs: list[Any] = field(default_factory=list)
    random_delay: float = 0.0  # a uniform draw of this width added to every delay (exact)
    #: ``sleep(<from the failure>)``: delay_from; whether every retry slept it, and
    #: whether the handler slept it after the last failed attempt too
    supplied: cst.BaseExpression | None = None
    supplied_every: bool = True
    supplied_last: bool = False
    #: ``if clock() - start > B: raise`` in the handler: ``(B, start, clock source, whether
    #: the handler had already waited)``
    budget: tuple[float, str, str, bool] | None = None
    #: the budget's limit as the source wrote it (`deadline`, `30`)
    budget_text: str = ""
    #: the budget's test as written, and the name it counts from: ``start`` (set to the
    #: clock before the loop) or a deadline (set to the clock plus the limit)
    budget_shown: str = ""
    budget_deadline: bool = False
    #: the counters' values when each repair ran, attempt after attempt (by node id)
    repair_values: dict[int, list[dict[str, ev.Number]]] = field(default_factory=dict)
    #: every delay is one draw ``uniform(min_delay, d)``: full jitter, exactly
    full_jitter: bool = False
    min_delay: float = 0.0
    #: the source of a draw of whole numbers (``random.randint(20, 500) / 100.0``)
    discrete: str | None = None


@dataclass
class _Draw:
    """One delay as the handler computes it: ``total`` with random terms read at their
    upper bound (``jitter`` says some were), and, for ``low + uniform(0, width)``, the
    exact parts; ``pure`` when the delay is that one draw and nothing else."""

    total: float
    jitter: bool
    exact: float | None = None
    width: float | None = None
    pure: bool = False
    discrete: str | None = None


class _Simulation:
    """Run the loop's machinery for attempt 1, 2, ... assuming every attempt fails."""

    def __init__(
        self,
        codemod: RetryLoopCodemod,
        loop: cst.For | cst.While,
        pre: list[cst.BaseStatement],
        handler: cst.ExceptHandler,
        post: list[cst.BaseStatement],
        as_name: str | None,
        saved: str | None,
        inits: list[tuple[str, cst.BaseExpression]],
        symbols: dict[str, ev.Number],
    ) -> None:
        self.cm = codemod
        self.loop = loop
        self.pre, self.post = pre, post
        self.handler: list[Any] = list(handler.body.body)
        self.as_name, self.saved = as_name, saved
        self.symbols = symbols
        #: names the machinery assigns: counters, never flags (`if not retries: raise`
        #: then `retries -= 1` counts down; read as a flag it made 2 attempts of 4)
        self.counted = _assigned_names([*pre, *self.handler, *post])
        self.env: dict[str, Any] = {**codemod.sequence_values, **codemod.constants, **symbols}
        for name, expr in inits:
            value = self._eval(expr, f"the initial value of `{name}`")
            if value is not None:
                self.env[name] = value
        self.pending = 0.0
        self.jitter = False
        self.capped = False
        self.repairs_now: list[Any] = []
        self.repairs: list[Any] | None = None
        self.repair_values: dict[int, list[dict[str, ev.Number]]] = {}
        #: the sleep whose delay the failure supplies (`e.retry_after`), and whether the
        #: handler slept it since the last attempt
        self.supplied: cst.BaseExpression | None = None
        self.supplied_now = False
        self.supplied_every = True
        self.in_pre = False
        # delays read exactly, with a uniform draw of a fixed width (random_delay)
        self.pending_exact = 0.0
        self.exact_delays: list[float] = []
        self.widths: list[float] = []
        self.split_jitter = False
        # one (low, high) per sleep when the sleep is a single uniform draw, else None
        self.draws: list[tuple[float, float] | None] = []
        self.sleeps_now = 0
        self.several_sleeps = False
        self.discrete: str | None = None
        # names the handler assigns a random delay to (`wait = random.uniform(0, 2**n)`)
        self.drawn: dict[str, _Draw] = {}
        # names the handler assigns a delay read from the failure to (`delay =
        # int(e.response.headers.get("Retry-After", "30"))`): a sleep of it is delay_from
        self.from_failure: dict[str, cst.BaseExpression] = {}
        self.budget: tuple[float, str, str, bool] | None = None
        self.budget_text = ""
        self.budget_shown = ""
        self.budget_deadline = False
        # how the loop ends when its time budget runs out, when not by re-raising: the
        # code after the loop (a `while clock() < deadline:` test), or the handler's own
        # `raise Timeout(...)`
        self.budget_exit: _Exit | None = None

    def run(self) -> _Outcome:
        delays: list[float] = []
        previous: dict[str, ev.Number] | None = None
        n = 0
        endless = isinstance(self.loop, cst.While) and self._is_true_constant(self.loop.test)
        budget_loop = isinstance(self.loop, cst.While) and self._budget_condition(self.loop.test)
        endless = endless or budget_loop
        values: range | None = None
        loop_var: str | None = None
        fixed: list[ev.Number] | None = None
        iterable = None
        if isinstance(self.loop, cst.For):
            iterable = fixed_iterable(self.cm, self.loop, None)
        if isinstance(iterable, cst.Tuple | cst.List):
            # `for is_first in (True, False)`, `for delay in DELAYS`: an attempt per value
            assert isinstance(self.loop, cst.For) and isinstance(self.loop.target, cst.Name)
            loop_var = self.loop.target.value
            fixed = [self._eval(e.value, "the attempt values") for e in iterable.elements]
        elif isinstance(self.loop, cst.For):
            assert isinstance(self.loop.target, cst.Name) and isinstance(self.loop.iter, cst.Call)
            loop_var = self.loop.target.value
            bounds = [self._eval(a.value, "the attempt count") for a in self.loop.iter.args]
            if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
                raise Skip("the attempt count is not a whole number")
            if "itertools.count" in self.cm.qualified(self.loop.iter.func):
                endless = True  # count(start): a counter without end
                start = bounds[0] if bounds else 0
                values = range(start, start + _MAX_SIMULATED + 1)
            else:
                values = range(*bounds)
        while True:
            if fixed is not None:
                if n >= len(fixed):
                    return self._outcome(n, delays, _Exit("fallthrough"))
                assert isinstance(loop_var, str)
                self.env[loop_var] = fixed[n]
            elif values is not None:
                if n >= len(values):
                    return self._outcome(n, delays, _Exit("fallthrough"))
                assert isinstance(loop_var, str)
                self.env[loop_var] = values[n]
            else:
                assert isinstance(self.loop, cst.While)
                if not budget_loop and not self._eval(self.loop.test, "the loop condition"):
                    return self._outcome(n, delays, _Exit("fallthrough"))
            n += 1
            self.in_pre = True  # calls here run before every attempt: never a repair
            if self._block(self.pre, in_handler=False) is not None:
                raise Skip("the code before the try leaves the loop")
            self.in_pre = False
            if n > 1:
                delays.append(self.pending)
                self.exact_delays.append(self.pending_exact)
                self.supplied_every = self.supplied_every and self.supplied_now
                if self.supplied_now and self.pending:
                    raise Skip("the handler sleeps a delay read from the failure and another one")
            self.pending = 0.0
            self.pending_exact = 0.0
            self.several_sleeps = self.several_sleeps or self.sleeps_now > 1
            self.sleeps_now = 0
            self.supplied_now = False
            if n > 1:
                # the calls made before this retry: the same before every retry
                if self.repairs is None:
                    self.repairs = self.repairs_now
                elif [id(r) for r in self.repairs] != [id(r) for r in self.repairs_now]:
                    code = self.cm.source_module.code_for_node
                    first = (self.repairs or self.repairs_now)[0]
                    raise Skip(f"the handler runs `{_first_line(code(first))}` before some retries")
            self.repairs_now = []
            # attempt n fails
            result = self._block(self.handler, in_handler=True)
            if isinstance(result, _Exit):
                return self._outcome(n, delays, result)
            if result != "continue":
                result = self._block(self.post, in_handler=False)
                if isinstance(result, _Exit):
                    return self._outcome(n, delays, result)
            snapshot = dict(self.env)
            if snapshot == previous:
                # nothing changes from one failure to the next: it retries forever, each
                # time after the wait just computed (a cap reached now included)
                delays.append(self.pending)
                self.exact_delays.append(self.pending_exact)
                return self._outcome(None, delays[:_FIT_WINDOW], self._endless_exit())
            previous = snapshot
            if n >= _MAX_SIMULATED:
                if endless:
                    return self._outcome(None, delays[:_FIT_WINDOW], self._endless_exit())
                raise Skip(f"more than {_MAX_SIMULATED} attempts")

    def _endless_exit(self) -> _Exit:
        """How a loop without an attempt limit ends: by its time budget's own way out,
        else by re-raising the last failure."""
        return self.budget_exit or _Exit("reraise")

    def _outcome(self, attempts: int | None, delays: list[float], exit_: _Exit) -> _Outcome:
        if attempts == 0:
            if isinstance(self.loop, cst.While):
                test = self.cm.source_module.code_for_node(self.loop.test)
                read = sorted(ev.names(ev.flatten_attributes(ev.parse(test))) & set(self.symbols))
                if read:  # `while not self.coordinator.exception:`: a flag, no count
                    raise Skip(
                        f"the loop runs while `{_first_line(test)}`, which reads `{read[0]}`:"
                        " state set elsewhere (a flag), not an attempt count"
                    )
            raise Skip("the loop never runs")
        if attempts is not None and self.budget_exit is not None:
            raise Skip(
                f"the loop ends one way when its time budget {self.budget_shown} runs out"
                " and another when its attempts do"
            )
        jitter, width = self.jitter or self.split_jitter, 0.0
        full, low = False, 0.0
        pure = [d for d in self.draws if d is not None]
        if self.widths and all(w == self.widths[0] for w in self.widths) and self.widths[0] >= 0:
            # every random draw has the same width: random_delay, exactly
            delays = self.exact_delays[: len(delays)]
            jitter, width = self.jitter, float(self.widths[0])
        elif (
            pure
            and len(pure) == len(self.draws)
            and not self.jitter
            and not self.several_sleeps
            and self.sleeps_now <= 1
            and all(lo == pure[0][0] and 0 <= lo <= hi for lo, hi in pure)
        ):
            # every delay is one draw `uniform(low, d)` with d following the law: full jitter
            jitter, full, low = False, True, float(pure[0][0])
        return _Outcome(
            attempts,
            delays,
            jitter,
            exit_,
            self.saved,
            self.capped,
            self.pending,
            list(self.repairs or []),
            list(self.repairs_now),
            width,
            repair_values=self.repair_values,
            supplied=self.supplied,
            supplied_every=self.supplied_every,
            supplied_last=self.supplied_now,
            full_jitter=full,
            min_delay=low,
            discrete=self.discrete,
            budget=self.budget,
            budget_text=self.budget_text,
            budget_shown=self.budget_shown,
            budget_deadline=self.budget_deadline,
        )

    def _gives_up_apart(self, stmts: Sequence[cst.BaseStatement]) -> bool:
        """An ``if`` whose branches all end the call (``if not fatal: return False``),
        then a way out (``raise``): the code run when attempts run out, as a whole, when
        no test reads a counter (a flag or the exception decides it at the call site)."""
        if len(stmts) < 2 or not isinstance(stmts[0], cst.If):
            return False
        if not gives_up(list(stmts), self.cm._is_log):
            return False
        counters = set(self.env) - set(self.cm.constants)
        tests_and_branches = [stmt for stmt in stmts if isinstance(stmt, cst.If)]
        return not _names_read_in(tests_and_branches) & counters

    def _builds_its_error(self, stmts: Sequence[cst.BaseStatement]) -> bool:
        """Simple statements that build an error and raise it (``err = Wrapped(...);
        err.cause = e; raise err from e``): the code run when attempts run out, as a
        whole (not simulated: the error object it builds is no counter)."""
        smalls: list[cst.BaseSmallStatement] = []
        for stmt in stmts:
            if not isinstance(stmt, cst.SimpleStatementLine):
                return False
            smalls.extend(stmt.body)
        if len(smalls) < 2 or not isinstance(smalls[-1], cst.Raise):
            return False
        exc = smalls[-1].exc
        if exc is None or (isinstance(exc, cst.Name) and exc.value in (self.as_name, self.saved)):
            return False  # a re-raise: simulated as such
        builds = [s for s in smalls[:-1] if not self.cm._is_log(s)]
        if not builds or not all(isinstance(s, cst.Assign) for s in builds):
            return False
        code = self.cm.source_module.code_for_node
        counters = set(self.env) - set(self.cm.constants)
        for small in builds:
            assert isinstance(small, cst.Assign)
            for target in small.targets:
                if isinstance(target.target, cst.Name) and target.target.value in counters:
                    return False  # it sets a counter: simulated
            if ev.names(ev.parse(code(small.value))) & counters:
                return False
        return True

    def _last_pass(self, block: Sequence[cst.BaseStatement]) -> Sequence[cst.BaseStatement]:
        """The code run when attempts run out: ``block`` without the ``if <test>: ...
        continue`` before the give-up, the retry branch the last pass did not take (kept,
        it put a ``continue`` outside any loop at the call site)."""
        kept: list[cst.BaseStatement] = []
        for stmt in block:
            if not _retries_here(stmt):
                kept.append(stmt)
                continue
            body = stmt.body.body if isinstance(stmt, cst.If) else ()
            last = body[-1] if body else None
            if (
                isinstance(stmt, cst.If)
                and stmt.orelse is None
                and isinstance(last, cst.SimpleStatementLine)
                and isinstance(last.body[-1], cst.Continue)
            ):
                continue  # not taken on the last pass: the simulation gave up after it
            code = self.cm.source_module.code_for_node
            raise Skip(f"the handler's `{_first_line(code(stmt))}` both retries and gives up")
        return kept

    def _repair(self, node: cst.CSTNode) -> None:
        """Record work the handler does for the next attempt, with the counters' values."""
        self.repairs_now.append(node)
        self.repair_values.setdefault(id(node), []).append(dict(self.env))

    def _conditional_repair(self, stmt: cst.If) -> bool:
        """``if <test>: <calls>`` (elif/else alike) whose test reads no counter: the whole
        statement is work for the next attempt, its test run in ``before_retry`` too."""
        code = self.cm.source_module.code_for_node
        branch: cst.If | cst.Else | None = stmt
        while branch is not None:
            if isinstance(branch, cst.If):
                try:
                    read = ev.names(ev.parse(code(branch.test)))
                except SyntaxError:
                    return False
                if read & set(self.env) - set(self.cm.constants):
                    return False
            for inner in branch.body.body:
                if not isinstance(inner, cst.SimpleStatementLine):
                    return False
                for small in inner.body:
                    if not isinstance(small, cst.Expr) or not isinstance(small.value, cst.Call):
                        return False
                    if self.cm.is_sleep(small.value) is not None:
                        return False
            branch = branch.orelse if isinstance(branch, cst.If) else None
        return not all(self.cm._is_log(small) for small in _small_statements_of(stmt))

    def _guarded_sleep(self, stmt: cst.BaseStatement) -> str | None:
        """The value of ``if value: sleep(value)`` (no ``else``; log calls may stand
        beside the sleep), a plain name or attribute path."""
        if not isinstance(stmt, cst.If) or stmt.orelse is not None:
            return None
        code = self.cm.source_module.code_for_node
        test = code(stmt.test)
        if not _NAME_PATH.fullmatch(test):
            return None
        sleeps = 0
        for inner in stmt.body.body:
            if not isinstance(inner, cst.SimpleStatementLine):
                return None
            for small in inner.body:
                if self.cm._is_log(small):
                    continue
                sleep = self.cm.is_sleep(small.value) if isinstance(small, cst.Expr) else None
                if sleep is None or len(sleep.args) != 1 or code(sleep.args[0].value) != test:
                    return None
                sleeps += 1
        return test if sleeps == 1 else None

    def _budget_test(self, stmt: cst.If) -> bool:
        """``if <budget spent>: raise`` in a handler (``clock() - start > B``, ``clock() >
        deadline``; ``>=`` too): a time budget checked after each failure, before the wait.
        ``raise Timeout(...)`` there is how the loop gives up. Recorded, never taken."""
        if stmt.orelse is not None or len(stmt.body.body) != 1:
            return False
        only = stmt.body.body[0]
        if not (
            isinstance(only, cst.SimpleStatementLine)
            and len(only.body) == 1
            and isinstance(only.body[0], cst.Raise)
        ):
            return False
        if not self._record_budget(stmt.test, spent=True):
            return False
        exc = only.body[0].exc
        if exc is not None and not (isinstance(exc, cst.Name) and exc.value == self.as_name):
            self.budget_exit = _Exit("code", [only])  # `raise TimeoutError(...)`
        return True

    def _budget_condition(self, test: cst.BaseExpression) -> bool:
        """``while clock() < deadline:`` (``clock() - start < B``): a time budget checked
        after each wait, before the next attempt; the code after the loop is how it gives
        up."""
        if not self._record_budget(test, spent=False, waited=True):
            return False
        self.budget_exit = _Exit("fallthrough")
        return True

    def _record_budget(self, node: cst.BaseExpression, spent: bool, waited: bool = False) -> bool:
        code = self.cm.source_module.code_for_node
        test = ev.parse(code(node))
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
            return False
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Lt | ast.LtE):  # `deadline < clock()`: `clock() > deadline`
            left, right = right, left
            op = ast.Gt() if isinstance(op, ast.Lt) else ast.GtE()
        elif not isinstance(op, ast.Gt | ast.GtE):
            return False
        if not spent:  # the budget left: `clock() < deadline` is `deadline > clock()`
            left, right = right, left
        deadline = False
        if (
            isinstance(left, ast.BinOp)
            and isinstance(left.op, ast.Sub)
            and _is_clock(left.left)
            and isinstance(left.right, ast.Name)
        ):
            clock, start, limit_text = ast.unparse(left.left), left.right.id, ast.unparse(right)
        elif _is_clock(left) and isinstance(right, ast.Name):
            clock, start = ast.unparse(left), right.id
            found = self._deadline_limit(start, clock)
            if found is None:
                return False
            limit_text, deadline = found, True
        else:
            return False
        limit = self._eval_source(limit_text, "the time budget")
        budget = (float(limit), start, clock, waited or self.sleeps_now > 0)
        if self.budget is not None and self.budget != budget:
            raise Skip("the loop checks two time budgets")
        self.budget = budget
        self.budget_text = limit_text
        self.budget_shown = f"`{code(node)}`"
        self.budget_deadline = deadline
        return True

    def _deadline_limit(self, name: str, clock: str) -> str | None:
        """``B`` of ``name = clock() + B`` (or ``B + clock()``), the last assignment of
        ``name`` before the loop, as source."""
        loop = self.cm._current_loop
        if loop is None:
            return None
        code = self.cm.source_module.code_for_node
        found: str | None = None
        for stmt in self.cm._block_of(loop):
            if stmt is loop:
                break
            if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
                continue
            small = stmt.body[0]
            if not (
                isinstance(small, cst.Assign)
                and len(small.targets) == 1
                and isinstance(small.targets[0].target, cst.Name)
                and small.targets[0].target.value == name
            ):
                continue
            value = ev.parse(code(small.value))
            found = None
            if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
                if ast.unparse(value.left) == clock:
                    found = ast.unparse(value.right)
                elif ast.unparse(value.right) == clock:
                    found = ast.unparse(value.left)
        return found

    def _draw(self, source: str, what: str) -> _Draw:
        """Read one delay expression: its upper bound, and its exact random parts."""
        tree = ev.parse(source)
        split = ev.split_uniform(tree)
        discrete = source.strip() if ev.discrete_draw(tree) else None
        if split is None:
            jitter_before = self.jitter
            total = float(self._eval_source(source, what, True))
            jittered = self.jitter and not jitter_before
            self.jitter = jitter_before
            return _Draw(total, jittered, discrete=discrete)
        pure = ev.is_uniform_draw(tree)
        exact = float(self._eval_source(ast.unparse(split[0]), what))
        width = float(self._eval_source(ast.unparse(split[1]), what))
        stripped, jittered = ev.strip_jitter(flat := ev.flatten_attributes(tree))
        if any(ev.is_random_call(n) for n in ast.walk(stripped)) or not jittered:
            total = exact + width  # `random.randint(a, b) / k`: read at its upper bound
        else:
            jitter_before = self.jitter
            total = float(self._eval_source(ast.unparse(flat), what, True))
            self.jitter = jitter_before
        return _Draw(total, True, exact, width, pure, discrete)

    def _add_draw(self, draw: _Draw) -> None:
        self.sleeps_now += 1
        self.pending += draw.total
        self.discrete = self.discrete or draw.discrete
        if draw.width is None:
            self.pending_exact += draw.total
            self.jitter = self.jitter or draw.jitter
            self.draws.append(None)
            return
        self.split_jitter = self.split_jitter or draw.jitter
        self.pending_exact += float(draw.exact or 0.0)
        self.widths.append(draw.width)
        low = float(draw.exact or 0.0)
        self.draws.append((low, low + draw.width) if draw.pure else None)

    def _is_true_constant(self, test: cst.BaseExpression) -> bool:
        return (isinstance(test, cst.Name) and test.value == "True") or (
            isinstance(test, cst.Integer) and test.value != "0"
        )

    def _eval(self, expr: cst.BaseExpression, what: str, strip: bool = False) -> Any:
        return self._eval_source(self.cm.source_module.code_for_node(expr), what, strip)

    def _eval_source(self, source: str, what: str, strip: bool = False) -> Any:
        tree = ev.parse(source)
        if any(isinstance(n, ast.Name) and n.id == "min" for n in ast.walk(tree)):
            self.capped = True
        if strip:
            tree, jittered = ev.strip_jitter(tree)
            self.jitter = self.jitter or jittered
        tree = ev.flatten_attributes(tree)
        for node in ast.walk(tree):
            # `range(1 if quick else 50)`: a run-time value in the test of a conditional
            # expression is a flag, not a count (read as one, every probe is true)
            if isinstance(node, ast.IfExp):
                for name in _flags_in(node.test):
                    if (
                        name in self.symbols
                        and name not in self.counted
                        and not isinstance(self.symbols[name], bool)
                    ):
                        raise _FlagNeeded(name)  # simulated again with True and with False
        try:
            return ev.evaluate(tree, self.env)
        except ev.Unknown as unknown:
            raise _NeedsValue(f"{what} depends on `{unknown.what}`", unknown.what) from None

    def _block(
        self, stmts: Sequence[cst.BaseStatement], in_handler: bool
    ) -> _Exit | Literal["continue"] | None:
        if in_handler and self._builds_its_error(stmts):
            return _Exit("code", stmts)  # `err = Wrapped(...); err.cause = e; raise err`
        for index, stmt in enumerate(stmts):
            if in_handler and self._gives_up_apart(stmts[index:]):
                # `if not fatal: return False` then `raise`
                return _Exit("code", stmts[index:])
            result = self._statement(stmt, stmts, in_handler)
            if result is not None:
                return result
        return None

    def _statement(
        self, stmt: cst.BaseStatement, block: Sequence[cst.BaseStatement], in_handler: bool
    ) -> _Exit | Literal["continue"] | None:
        code = self.cm.source_module.code_for_node
        if isinstance(stmt, cst.If) and in_handler and self._budget_test(stmt):
            return None  # the time budget is checked by max_elapsed, not simulated
        if isinstance(stmt, cst.If) and in_handler and self._conditional_repair(stmt):
            self._repair(stmt)  # `if isinstance(e, Gone): self.pending.add(q)`: before_retry
            return None
        guarded = self._guarded_sleep(stmt)
        if guarded is not None:
            # `if delay: sleep(delay)`: a delay of 0 (or None) sleeps nothing, as
            # `sleep(delay or 0)` does; the value is a delay, not a flag
            self.cm._guarded_delays.add(guarded)
            self._add_draw(self._draw(f"({guarded}) or 0", "sleep is not a backoff: the delay"))
            return None
        if isinstance(stmt, cst.If):
            test = ev.flatten_attributes(ev.parse(code(stmt.test)))
            for name in _flags_in(test):
                if (
                    name in self.symbols
                    and name not in self.counted
                    and not isinstance(self.symbols[name], bool)
                ):
                    raise _FlagNeeded(name)  # simulated again with True and with False
            if self._eval(stmt.test, "the retry decision"):
                return self._block(stmt.body.body, in_handler)  # type: ignore[arg-type]
            orelse = stmt.orelse
            if isinstance(orelse, cst.If):
                return self._statement(orelse, [orelse], in_handler)
            if isinstance(orelse, cst.Else):
                return self._block(orelse.body.body, in_handler)  # type: ignore[arg-type]
            return None
        if not isinstance(stmt, cst.SimpleStatementLine):
            raise Skip(f"the handler runs `{_first_line(code(stmt))}` between attempts")
        for small in stmt.body:
            result = self._small(small, block, in_handler)
            if result is not None:
                return result
        return None

    def _small(
        self, small: cst.BaseSmallStatement, block: Sequence[cst.BaseStatement], in_handler: bool
    ) -> _Exit | Literal["continue"] | None:
        code = self.cm.source_module.code_for_node
        if isinstance(small, cst.Pass):
            return None
        if isinstance(small, cst.Continue):
            return "continue"
        if isinstance(small, cst.Break):
            raise Skip("the handler breaks out of the loop")
        if isinstance(small, cst.Expr):
            sleep = self.cm.is_sleep(small.value)
            if sleep is not None:
                if len(sleep.args) != 1 and not self.cm.sleep_like:
                    raise Skip("sleep is not a backoff: unusual sleep call")
                arg = sleep.args[0].value
                what = "sleep is not a backoff: the delay"
                read = ev.names(ev.parse(code(arg)))
                if in_handler and isinstance(arg, cst.Name) and arg.value in self.from_failure:
                    arg = self.from_failure[arg.value]  # `delay = int(e.headers[...])`
                    read = ev.names(ev.parse(code(arg)))
                if in_handler and read & ({self.as_name, self.saved} - {None}):
                    # `sleep(e.retry_after)`: the failure supplies the delay (delay_from)
                    if self.supplied not in (None, arg):
                        raise Skip("the handler sleeps delays read from the failure in two places")
                    self.supplied = arg
                    self.supplied_now = True
                    return None
                if isinstance(arg, cst.Name) and arg.value in self.drawn:
                    self._add_draw(self.drawn[arg.value])  # `time.sleep(wait_time)`
                else:
                    self._add_draw(self._draw(code(arg), what))
                return None
            if self.cm._is_log(small):
                return None
            if isinstance(small.value, cst.Call) and not self.in_pre:
                self._repair(small)  # work for the next attempt: before_retry
                return None
            raise Skip(f"the handler runs `{_first_line(code(small))}` between attempts")
        if (
            isinstance(small, cst.Del)
            and in_handler
            and not self.in_pre
            and all(isinstance(t.value, cst.Attribute) for t in _del_targets(small))
        ):
            self._repair(small)  # `del self.connection`: a repair, delattr() in before_retry
            return None
        if isinstance(small, cst.Raise):
            exc = small.exc
            if exc is None and in_handler:
                return _Exit("reraise")
            names = {self.as_name, self.saved} - {None}
            if (
                isinstance(exc, cst.Name)
                and exc.value in names
                and (in_handler or exc.value == self.saved)
            ):
                return _Exit("reraise")
            if not in_handler:
                raise Skip("raises outside the handler when attempts run out")
            return _Exit("code", self._last_pass(block))
        if isinstance(small, cst.Return):
            if not in_handler:
                raise Skip("returns outside the handler when attempts run out")
            return _Exit("code", self._last_pass(block))
        if isinstance(small, cst.Assign) and len(small.targets) == 1:
            target = small.targets[0].target
            if isinstance(target, cst.Name):
                if target.value == self.saved:
                    return None
                if _is_text(small.value):
                    return None  # a message for a log call; a reader elsewhere is refused
                value_source = code(small.value)
                if any(ev.is_random_call(n) for n in ast.walk(ev.parse(value_source))):
                    # a random delay kept for a sleep: only the sleep may read it
                    self.drawn[target.value] = self._draw(value_source, f"`{target.value}`")
                    self.env.pop(target.value, None)
                    return None
                self.drawn.pop(target.value, None)
                self.from_failure.pop(target.value, None)
                failure = {self.as_name, self.saved} - {None}
                if (
                    in_handler
                    and target.value not in self.symbols
                    and ev.names(ev.parse(value_source)) & failure
                ):
                    # a delay read from the failure, kept for a sleep: only the sleep may
                    # read it (anything else needs its value and is refused)
                    self.from_failure[target.value] = small.value
                    self.env.pop(target.value, None)
                    return None
                value = self._eval(small.value, f"`{target.value}`")
                self.env[target.value] = value
                return None
        if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name):
            name = small.target.value
            op = _AUG_OPS.get(type(small.operator))
            if op is None:
                raise Skip(f"the handler runs `{_first_line(code(small))}`")
            expr = f"{name} {op} ({code(small.value)})"
            self.env[name] = self._eval_source(expr, f"`{name}`")
            return None
        if self.in_pre:  # code in the loop before the try: it runs before every attempt
            raise Skip(f"the loop runs `{_first_line(code(small))}` before every attempt")
        raise Skip(f"the handler runs `{_first_line(code(small))}` between attempts")


def _retries_here(stmt: cst.BaseStatement) -> bool:
    return any(isinstance(n, cst.Continue) for n in [stmt, *_walk_statement(stmt)])


def _walk_statement(node: cst.CSTNode) -> list[cst.CSTNode]:
    out: list[cst.CSTNode] = []
    stack = list(node.children)
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(child.children)
    return out


def _small_statements_of(stmt: cst.If) -> list[cst.BaseSmallStatement]:
    out: list[cst.BaseSmallStatement] = []
    branch: cst.If | cst.Else | None = stmt
    while branch is not None:
        for inner in branch.body.body:
            if isinstance(inner, cst.SimpleStatementLine):
                out.extend(inner.body)
        branch = branch.orelse if isinstance(branch, cst.If) else None
    return out


def _del_targets(small: cst.Del) -> list[cst.BaseElement]:
    target = small.target
    if isinstance(target, cst.Tuple):
        return list(target.elements)
    return [cst.Element(value=target)]


_AUG_OPS: dict[type, str] = {
    cst.AddAssign: "+",
    cst.SubtractAssign: "-",
    cst.MultiplyAssign: "*",
    cst.DivideAssign: "/",
    cst.FloorDivideAssign: "//",
    cst.PowerAssign: "**",
}
