"""The Python scanner: one ``ast`` pass per file, no imports, no execution.

Fixability mirrors what the codemods (selectors ``retry-loop``, ``tenacity``,
``backoff``) rewrite and refuse; it is decided here with ``ast`` rules, the
codemods are never imported.
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from codemods._result_shape import ast_result_retry, value_flag
from codemods.audit import jobscan, libraries, tables
from codemods.audit.astutil import excerpt as _excerpt
from codemods.audit.astutil import walk_local as _walk_local
from codemods.audit.effects import Effects, dotted, find_effects, merge
from codemods.audit.model import Fix, Hotspot, Kind, Risk
from codemods.audit.newsyntax import parse_python
from codemods.audit.project import HelperDef, UseSite, module_of
from codemods.audit.textscan import (
    STATUS_COLUMNS,
)

_SLEEPS = frozenset({"sleep", "wait"})
_LOG_NAMES = re.compile(r"log|warn|debug|info|error|exception|print|critical|metric|incr|stat")
_RETRYISH = re.compile(r"retr|attempt|tries|try_", re.I)
_TIME_KW = re.compile(r"(_at|_on|time|timestamp|heartbeat|updated|modified|started)__lte?$")
_TRANSIENT = re.compile(
    r"Connection|Timeout|TimedOut|Unavailable|Throttl|RateLimit|Transient|Temporar|Retry|"
    r"Deadlock|OperationalError|InterfaceError|HTTPError|URLError|RequestException|^OSError$|"
    r"^IOError$|^error$|socket|BrokenPipe|Disconnect|Network|ServerError|ServiceError|"
    r"APIError|ClientError|BotoCoreError|Busy|LockError|Refused|Reset"
)
_TIME_BOUND = re.compile(
    r"time\(\)|monotonic\(\)|perf_counter\(\)|now\(\)|deadline|timeout|elapsed|budget|"
    r"expire|max_time|max_delay",
    re.I,
)
_SWEEP_HINT = re.compile(r"update")
_AGE_HINT = re.compile(r"__lte?\b|interval|heartbeat|_at\b|timedelta|cutoff|now\(\)|<")
_DEAD_HINT = re.compile(r"failed|dead|dlq|bur(?:y|ied)|graveyard|poison|on_failure|exhausted")
# a count going down or up, or a wait before calling itself again (a Retry-After)
_RECURSE_HINT = re.compile(r"(?:retr|attempt|tries|count|left)\w*['\"\]]*\s*[-+]=?\s*1|\bsleep\(")
_HARMLESS = frozenset(
    {"min", "max", "int", "float", "str", "repr", "len", "isinstance", "type", "format", "round",
     "random.uniform", "random.random", "random.randint", "time.time", "time.monotonic"}
)  # fmt: skip
_SELECT_BY_STATUS = re.compile(
    r"\bselect\b[\s\S]*\bfrom\b[\s\S]*\bwhere\b[\s\S]*\b(status|state)\b", re.I
)
_MUTATORS = frozenset({"pop", "popleft", "append", "remove", "extend", "insert", "clear", "rotate"})

_FACADE_TEXT = re.compile(r"Retrying|retry\(|wrap_db_retry|on_exception|on_predicate|Retry\(")
#: ``for attempt in X(...): with attempt:`` blocks, by the library that drives them
_ATTEMPT_BLOCKS = {
    "tenacity.Retrying": "tenacity",
    "tenacity.AsyncRetrying": "tenacity",
    "stamina.retry_context": "stamina",
}


def _hit_lines(text: str, pattern: re.Pattern[str]) -> list[int]:
    """Sorted 1-based line numbers where ``pattern`` matches in ``text``."""
    lines: list[int] = []
    last_pos, last_line = 0, 1
    for m in pattern.finditer(text):
        last_line += text.count("\n", last_pos, m.start())
        last_pos = m.start()
        if not lines or lines[-1] != last_line:
            lines.append(last_line)
    return lines


def _in_range(lines: list[int], node: ast.stmt) -> bool:
    """True when one of ``lines`` falls inside ``node`` (decorators included)."""
    if not lines:
        return False
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    i = bisect.bisect_left(lines, start)
    return i < len(lines) and lines[i] <= (node.end_lineno or node.lineno)


def _a(noun: str) -> str:
    """``noun`` with its indefinite article."""
    return ("an " if noun[:1].lower() in "aeiouh" and not noun.startswith("ho") else "a ") + noun


def _attrs_in(node: ast.AST) -> set[str]:
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _is_sleep(call: ast.Call) -> bool:
    """``time.sleep``, ``asyncio.sleep``, and sleeps through helpers (``self._jitter_sleep(i)``,
    ``backoff(attempt)``): a helper that waits counts as backoff."""
    name = dotted(call.func)
    last = name.rsplit(".", 1)[-1]
    if last in _SLEEPS and (last == "sleep" or name.startswith(("time.", "asyncio."))):
        return True
    low = last.lower()
    return "sleep" in low or low.endswith("backoff") or low.startswith(("backoff", "_backoff"))


def _incremented(stmts: list[ast.stmt]) -> set[str]:
    """Names counted up or down in ``stmts``: ``n += 1`` and ``n = n + 1`` alike."""
    out: set[str] = set()
    for n in _walk_local(list(stmts)):
        if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
            out.add(n.target.id)
        elif (
            isinstance(n, ast.Assign)
            and len(n.targets) == 1
            and isinstance(n.targets[0], ast.Name)
            and isinstance(n.value, ast.BinOp)
            and isinstance(n.value.op, ast.Add | ast.Sub)
            and n.targets[0].id in _names_in(n.value)
        ):
            out.add(n.targets[0].id)
    return out


def _loop_local(stmts: list[ast.stmt]) -> Iterator[ast.AST]:
    """Nodes under ``stmts`` that belong to this loop level (no nested loops or defs)."""
    stack: list[ast.AST] = list(stmts)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(
                child,
                ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
                | ast.For | ast.AsyncFor | ast.While,
            ):  # fmt: skip
                stack.append(child)


def _leaves(stmts: list[ast.stmt]) -> bool:
    """A ``return`` or ``break`` of this loop somewhere in ``stmts``.

    An exit under ``if <call>():`` does not count: leaving when a check comes
    true is polling for readiness, not success of an attempt.
    """
    stack: list[ast.AST] = list(stmts)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return | ast.Break):
            return True
        if isinstance(node, ast.If) and any(isinstance(c, ast.Call) for c in ast.walk(node.test)):
            stack.extend(node.orelse)
            continue
        for child in ast.iter_child_nodes(node):
            if not isinstance(
                child,
                ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
                | ast.For | ast.AsyncFor | ast.While,
            ):  # fmt: skip
                stack.append(child)
    return False


def _has_continue(stmts: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Continue) for n in _loop_local(stmts))


def _exits(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Return | ast.Break | ast.Raise)


@dataclass
class _Loop:
    node: ast.For | ast.AsyncFor | ast.While
    qualname: str | None
    func: ast.FunctionDef | ast.AsyncFunctionDef | None
    parents: list[ast.FunctionDef | ast.AsyncFunctionDef]
    outer_loops: list[ast.AST] = field(default_factory=list)


@dataclass
class _LoopFacts:
    pattern: str
    region: list[ast.stmt]
    counter: str | None
    forever: bool
    sleep: str  # none | constant | exponential | server | other
    catch: str  # bare | broad | specific | none
    refusal: str | None
    silent_give_up: bool
    caught: tuple[str, ...] = ()


_DELAYISH = re.compile(r"sleep|backoff|delay", re.I)
_RETRY_KW_TEXT = re.compile(r"(?:retry\w*|retries|max_retries)\s*=\s*[\w.]*(?:Retry|retr|\{)")
_CONFLICT = re.compile(
    r"Conflict|StaleData|Version|Concurrent|Duplicate|IntegrityError|UniqueViolation|"
    r"OptimisticLock|ObjectChanged|CasMismatch|PreconditionFailed"
)
_DEADLOCK = re.compile(r"Deadlock|Serializ|TransactionRollback|LockWait|OperationalError")
_TXN_BLOCK = re.compile(r"atomic|begin|transaction|session_scope|writer|using\(|commit")


class PythonScanner:
    """Scans one parsed module; ``hotspots`` is filled by :meth:`run`."""

    def __init__(self, path: str, text: str, tree: ast.Module) -> None:
        self.path = path
        self.text = text
        self.lines = text.splitlines()
        self.tree = tree
        self.hotspots: list[Hotspot] = []
        self.imports: dict[str, str] = {}
        self.funcs: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str, list[ast.AST]]] = []
        self.classes: list[tuple[ast.ClassDef, str]] = []
        self.loops: list[_Loop] = []
        self.consumed: set[int] = set()
        self.homemade: dict[str, str] = {}
        self.triggers: dict[str, str] = {}
        self.sweepers_seen: set[str] = set()
        self.job_classes: set[str] = set()
        self._by_name: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] | None = None
        self._func_effects: dict[int, Effects] = {}
        self._why: list[str] = []
        self.module = module_of(path)
        self.helpers: list[HelperDef] = []
        self.uses: list[UseSite] = []
        self.reported_funcs: set[int] = set()
        self.func_class: dict[int, str] = {}
        self.is_command = "/management/commands/" in "/" + path
        self._nodes: list[ast.AST] | None = None
        self._eintr: set[str] | None = None
        self.local: dict[int, list[ast.AST]] = {}
        low = text.lower()
        self.may_status = "status" in low or "state" in low
        self.sweep_lines = (
            _hit_lines(low, _SWEEP_HINT)
            if self.may_status and "update" in low and _AGE_HINT.search(low)
            else []
        )
        self.dead_lines = _hit_lines(low, _DEAD_HINT)
        self.recurse_lines = _hit_lines(low, _RECURSE_HINT)
        self.job_lines = _hit_lines(low, jobscan.HINT)
        self.facade_lines = _hit_lines(text, _FACADE_TEXT)
        self.celery_lines = _hit_lines(text, re.compile(r"\.retry\("))
        self.may_status = "status" in low or "state" in low

    # ------------------------------------------------------------------ setup
    def _collect(self) -> None:
        """One pass over the statements (not expressions): imports, defs, classes, loops."""

        class_names: set[str] = set()

        def visit(
            stmts: list[ast.stmt],
            scope: list[str],
            parents: list[ast.FunctionDef | ast.AsyncFunctionDef],
            loops: list[ast.AST],
        ) -> None:
            for child in stmts:
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        self.imports[alias.asname or alias.name.split(".")[0]] = (
                            alias.name if alias.asname else alias.name.split(".")[0]
                        )
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        pkg = self.module.split(".") if self.module else []
                        if not self.path.endswith("__init__.py"):
                            pkg = pkg[:-1]
                        pkg = pkg[: len(pkg) - (child.level - 1)] if child.level > 1 else pkg
                        base = ".".join([*pkg, base] if base else pkg)
                    if base:
                        for alias in child.names:
                            self.imports[alias.asname or alias.name] = f"{base}.{alias.name}"
                elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.funcs.append((child, ".".join([*scope, child.name]), list(parents)))
                    if scope and scope[-1] in class_names:
                        self.func_class[id(child)] = scope[-1]
                    visit(child.body, [*scope, child.name], [*parents, child], [])
                elif isinstance(child, ast.ClassDef):
                    self.classes.append((child, ".".join([*scope, child.name])))
                    class_names.add(child.name)
                    visit(child.body, [*scope, child.name], parents, [])
                elif isinstance(child, ast.For | ast.AsyncFor | ast.While):
                    self.loops.append(
                        _Loop(
                            child,
                            ".".join(scope) or None,
                            parents[-1] if parents else None,
                            list(parents),
                            list(loops),
                        )
                    )
                    visit(child.body, scope, parents, [*loops, child])
                    visit(child.orelse, scope, parents, loops)
                else:
                    for name in ("body", "orelse", "finalbody"):
                        sub = getattr(child, name, None)
                        if sub:
                            visit(sub, scope, parents, loops)
                    for h in getattr(child, "handlers", ()):
                        visit(h.body, scope, parents, loops)
                    for case in getattr(child, "cases", ()):
                        visit(case.body, scope, parents, loops)

        visit(self.tree.body, [], [], [])

    @property
    def nodes(self) -> list[ast.AST]:
        """Every node of the module (computed on first use)."""
        if self._nodes is None:
            self._nodes = list(ast.walk(self.tree))
        return self._nodes

    def local_nodes(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
        """Nodes of ``func``'s body, nested defs excluded (cached)."""
        key = id(func)
        if key not in self.local:
            self.local[key] = list(_walk_local(list(func.body)))
        return self.local[key]

    def effects(self, nodes: Sequence[ast.AST], depth: int = 2) -> Effects:
        """Side effects of ``nodes``, seen through the functions this file defines (2 levels)."""
        base = find_effects(nodes)
        if depth <= 0:
            return base
        if self._by_name is None:
            self._by_name = {}
            for f, _q, _p in self.funcs:
                self._by_name.setdefault(f.name, f)
        called: list[tuple[str, Effects]] = []
        seen: set[str] = set()
        for n in _walk_local(list(nodes)):
            if not isinstance(n, ast.Call):
                continue
            name = dotted(n.func)
            head, _, last = name.rpartition(".")
            if head not in ("", "self", "cls") or last in seen:
                continue
            target = self._by_name.get(last)
            if target is None or any(target is x for x in nodes):
                continue
            seen.add(last)
            key = id(target)
            if key not in self._func_effects:
                self._func_effects[key] = Effects((), False)  # recursion guard
                self._func_effects[key] = self.effects(list(target.body), depth - 1)
            called.append((f"{last}()", self._func_effects[key]))
        return merge(base, called) if called else base

    def resolve(self, node: ast.AST) -> str:
        """Dotted name of ``node`` with its first segment resolved through the imports."""
        name = dotted(node.func if isinstance(node, ast.Call) else node)
        head, _, rest = name.partition(".")
        full = self.imports.get(head, head)
        return f"{full}.{rest}" if rest else full

    def add(
        self,
        kind: Kind,
        pattern: str,
        start: int,
        end: int,
        function: str | None,
        risk: Risk,
        reason: str,
        fix: Fix,
        *,
        refusal: str | None = None,
        effects: Effects | None = None,
        removable: int = 0,
        why: tuple[str, ...] = (),
        group: str | None = None,
        node: ast.AST | None = None,
    ) -> None:
        if not why:
            why = tuple(self._why) or (reason[:1].upper() + reason[1:] + ".",)
        self._why = []
        start_col = end_col = 0
        if node is not None:
            start_col = getattr(node, "col_offset", 0) or 0
            end_col = getattr(node, "end_col_offset", 0) or 0
        elif 0 < start <= len(self.lines):
            line = self.lines[start - 1]
            start_col = len(line) - len(line.lstrip())
            last = self.lines[end - 1] if 0 < end <= len(self.lines) else line
            end_col = len(last.rstrip())
        self.hotspots.append(
            Hotspot(
                kind=kind,
                pattern=pattern,
                path=self.path,
                start_line=start,
                end_line=end,
                function=function,
                excerpt=_excerpt(self.lines, start, end),
                risk=risk,
                reason=reason,
                fix=fix,
                refusal=refusal,
                side_effects=effects.labels if effects else (),
                removable_lines=removable if fix.automatic else 0,
                start_col=start_col,
                end_col=end_col,
                group=group,
                why=why,
            )
        )

    # -------------------------------------------------------------- the run
    def run(self) -> list[Hotspot]:
        """Scan the module once and return its hotspots (unsorted)."""
        self._collect()
        libraries.scan_triggers(
            self,
        )
        libraries.scan_homemade_definitions(
            self,
        )
        for cls, qual in self.classes:
            if not tables.scan_model(self, cls, qual) and (
                _in_range(self.job_lines, cls) or jobscan.DEAD_CLASS.match(cls.name)
            ):
                jobscan.scan_class(self, cls, qual)
        for func, qual, _ancestors in self.funcs:
            before = len(self.hotspots)
            if func.decorator_list:
                libraries.scan_decorators(self, func, qual)
            if _in_range(self.sweep_lines, func):
                tables.scan_sweeper(self, func, qual)
            if _in_range(self.dead_lines, func):
                tables.scan_dead_letter_code(self, func, qual)
            if _in_range(self.recurse_lines, func):
                self._scan_recursive_retry(func, qual, _ancestors)
            if func.name not in self.homemade and _in_range(self.facade_lines, func):
                libraries.scan_facade(self, func, qual, _ancestors)
            if id(func) not in self.reported_funcs and _in_range(self.celery_lines, func):
                libraries.scan_celery_helper(self, func, qual, _ancestors)
            if len(self.hotspots) > before:
                self.reported_funcs.add(id(func))
        for loop in self.loops:
            if id(loop.node) not in self.consumed:
                self._scan_loop(loop)
        adapter_kinds = (Kind.STATUS_POLLER, Kind.STATUS_TABLE, Kind.CRON_SWEEPER, Kind.DEAD_LETTER)
        taken = sorted(h.start_line for h in self.hotspots if h.kind in adapter_kinds)
        for func, qual, _ancestors in self.funcs:
            if not (_in_range(self.job_lines, func) or jobscan.wants(func.name)):
                continue
            if _in_range(taken, func):
                continue  # one finding per site: a poller loop inside was reported
            jobscan.scan_function(self, func, qual, self.func_class.get(id(func)))
        libraries.scan_module_retry_objects(
            self,
        )
        if "retry_call" in self.text:
            libraries.scan_retry_calls(self)
        if _RETRY_KW_TEXT.search(self.text):
            libraries.scan_retry_kwargs(
                self,
            )
        if "except" in self.text:
            self._scan_retry_once()
        tables.scan_table_calls(self)
        tables.scan_strings(self)
        return self.hotspots

    def _scan_retry_once(self) -> None:
        """A call tried once more in its own except handler, after a repair: the shape
        the retry-loop codemod reads as a two-attempt loop (``codemods._retry_once``)."""
        from codemods._retry_once import find_candidates  # the same reading as the codemod

        tries = {n.lineno: n for n in self.nodes if isinstance(n, ast.Try)}
        for cand in find_candidates(self.text):
            node = tries.get(cand.start)
            if node is None or any(
                h.kind is Kind.RETRY_LOOP and h.start_line <= cand.end and h.end_line >= cand.start
                for h in self.hotspots
            ):
                continue
            where = next(
                (
                    qual
                    for func, qual, _ in reversed(self.funcs)
                    if func.lineno <= cand.start <= (func.end_lineno or func.lineno)
                ),
                None,
            )
            effects = self.effects([node])
            self._why = [
                "It tries the call once more in its except handler, right after a repair:"
                " a retry of one more attempt, written without a loop."
            ]
            risk, reason = self._effects_risk(
                effects, Risk.LOW, "tries the call once more after a repair, in its except handler"
            )
            self.add(
                Kind.RETRY_LOOP,
                "retry once",
                cand.start,
                cand.end,
                where,
                risk,
                reason,
                self._fix_for(
                    effects,
                    Fix("codemod", "retry-loop", True, "durable codemod --select retry-loop"),
                ),
                effects=effects,
                node=node,
            )

    # ------------------------------------------------------------ triggers
    # -------------------------------------------------------- decorators
    def _outermost(
        self, func: ast.FunctionDef | ast.AsyncFunctionDef, qual: str, parents: Sequence[ast.AST]
    ) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]:
        """The decorator (factory) a nested wrapper belongs to: what the project calls."""
        outer = parents[0] if parents else None
        if isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef):
            quals = {id(f): q for f, q, _ in self.funcs}
            return outer, quals[id(outer)]
        return func, qual

    # ------------------------------------------------------------ loops
    def _broad(self, node: ast.AST | None) -> bool:
        if node is None:
            return True
        names = [dotted(n) for n in (node.elts if isinstance(node, ast.Tuple) else [node])]
        return any(n.rsplit(".", 1)[-1] in ("Exception", "BaseException") for n in names)

    def _loop_facts(self, loop: _Loop) -> _LoopFacts | None:
        """The retry shape of a loop, or None when it is not a retry loop."""
        node = loop.node
        counter: str | None = None
        forever = False
        pattern: str
        if isinstance(node, ast.For | ast.AsyncFor):
            it = node.iter
            target = dotted(node.target)
            it_name = self.resolve(it) if isinstance(it, ast.Call) else ""
            if it_name in _ATTEMPT_BLOCKS:
                return None
            if it_name in ("range", "builtins.range", "six.moves.range", "xrange"):
                pattern, counter = "for-range", target
            elif it_name in ("itertools.count", "count"):
                pattern, counter, forever = "for-count", target, True
            elif (
                _RETRYISH.search(target)
                or _RETRYISH.search(dotted(it))
                or _DELAYISH.search(f"{target} {dotted(it)}")  # over a sleep-time generator
            ):
                pattern, counter = "for-custom-iterator", target
            else:
                return None  # loops over hosts, items, pages: alternatives, not attempts
        else:
            test = node.test
            if isinstance(test, ast.Constant) and test.value:
                pattern, forever = "while-true", True
            elif isinstance(test, ast.Compare) and isinstance(test.left, ast.Name):
                pattern, counter = "while-counter", test.left.id
            else:
                pattern = "while-condition"
        tries = [s for s in node.body if isinstance(s, ast.Try | ast.TryStar)]
        for s in node.body:
            if isinstance(s, ast.With | ast.AsyncWith):
                tries += [b for b in s.body if isinstance(b, ast.Try | ast.TryStar)]
        if not tries:
            return None
        tnode = tries[0]
        # a handler that re-raises only on the last attempt still retries (guarded continue)
        swallowing = [
            h
            for h in tnode.handlers
            if not (h.body and _exits(h.body[-1])) or _has_continue(h.body)
        ]
        if not swallowing:
            return None
        if all(self._interrupted_call(h) for h in swallowing):
            return None  # EINTR: Python retries an interrupted system call itself (PEP 475)
        idx = node.body.index(tnode) if tnode in node.body else -1
        after = node.body[idx + 1 :] if idx >= 0 else []
        # success may leave from inside an `if`/`with` in the try, or from its `else`
        success_exit = _leaves(tnode.body) or _leaves(tnode.orelse)
        handler_continue = any(_has_continue(h.body) for h in swallowing)
        if not success_exit and handler_continue:
            success_exit = _leaves(after)
        if not success_exit and isinstance(node, ast.While):
            # success signalled by a flag the loop condition reads (`while not done`)
            flags = _names_in(node.test)
            success_exit = any(
                isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Constant)
                and any(isinstance(t, ast.Name) and t.id in flags for t in n.targets)
                for s in [*tnode.body, *tnode.orelse, *after]
                for n in _walk_local([s])
            )
        if not success_exit and isinstance(node, ast.While) and isinstance(tnode, ast.Try):
            # `while conn is None:` whose try ends with `conn = connect()`: a value flag
            flag = value_flag(node, tnode)
            if flag is not None:
                success_exit = True
                if _names_in(node.test) == {flag}:  # nothing else: it retries until a value
                    pattern, counter, forever = "while-condition", None, True
        if not success_exit:
            return None  # polling, worker main loops: exit depends on a result or never
        if pattern == "while-condition" and isinstance(node, ast.While):
            # `while self.running:` around a try is a supervisor, unless the condition
            # counts attempts or is the success flag the attempt sets
            test_names = " ".join(sorted(_names_in(node.test) | _attrs_in(node.test)))
            flags = _names_in(node.test)
            sets_flag = any(
                isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id in flags for t in n.targets)
                for n in _walk_local(list(node.body))
            )
            if not (_RETRYISH.search(test_names) or _TIME_BOUND.search(ast.unparse(node.test))
                    or sets_flag):  # fmt: skip
                return None
        # time-bounded while loops (deadline) and counters bound forever-ness
        if pattern == "while-true":
            incremented = _incremented(node.body)
            bounded = any(
                isinstance(n, ast.If)
                and (_names_in(n.test) & incremented)
                and any(isinstance(x, ast.Raise | ast.Return | ast.Break) for x in n.body)
                for n in _walk_local(node.body)
            )
            if bounded:
                pattern, forever = "while-true-counter", False
                counter = next(iter(incremented), None)
            elif any(
                isinstance(n, ast.If)
                and _TIME_BOUND.search(ast.unparse(n.test))
                and any(isinstance(x, ast.Raise | ast.Return | ast.Break) for x in n.body)
                for n in _walk_local(node.body)
            ):
                pattern, forever = "while-true-deadline", False
        if pattern == "for-count":
            forever = not any(
                isinstance(n, ast.If) and counter in _names_in(n.test)
                for n in _walk_local(node.body)
            )
        # sleep
        sleeps = [n for n in _walk_local(node.body) if isinstance(n, ast.Call) and _is_sleep(n)]
        sleep = "none"
        if sleeps:
            arg = sleeps[0].args[0] if sleeps[0].args else None
            helper = dotted(sleeps[0].func).rsplit(".", 1)[-1]
            if helper != "sleep" and re.search(r"backoff|jitter|exp", helper, re.I):
                sleep = "exponential"  # a backoff helper
            else:
                sleep = self._sleep_kind(arg, counter, node)
        # catch
        catches = ["bare" if h.type is None else "broad" if self._broad(h.type) else "specific"
                   for h in swallowing]  # fmt: skip
        catch = "bare" if "bare" in catches else "broad" if "broad" in catches else "specific"
        region: list[ast.stmt] = list(tnode.body) + list(tnode.orelse)
        if sleep == "none" and not self._looks_transient(node, swallowing, counter, region):
            return None  # trying alternatives or repairing input, not retrying a failure
        refusal = self._refusal(loop, pattern, tnode, swallowing, counter, sleep, region)
        silent = not any(isinstance(s, ast.Raise) for s in _walk_local(list(node.body))) and not (
            node.orelse and any(isinstance(s, ast.Raise) for s in node.orelse)
        )
        if silent:
            nxt = self._next_statement(loop)
            silent = nxt is None or (
                isinstance(nxt, ast.Return)
                and (nxt.value is None or isinstance(nxt.value, ast.Constant))
            )
        caught = tuple(
            dotted(t).rsplit(".", 1)[-1]
            for h in swallowing
            if h.type is not None
            for t in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type])
        )
        return _LoopFacts(pattern, region, counter, forever, sleep, catch, refusal, silent, caught)

    def _interrupted_call(self, handler: ast.ExceptHandler) -> bool:
        """The handler retries only a system call interrupted by a signal: ``except
        InterruptedError``, a test on ``errno.EINTR``, or a helper of this module that
        tests it (``if _is_resumable(error): continue``). Not a failure to retry."""
        if handler.type is not None:
            kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            if all(dotted(t).rsplit(".", 1)[-1] == "InterruptedError" for t in kinds):
                return True
        if any(
            isinstance(n, ast.Attribute | ast.Name) and dotted(n).endswith("EINTR")
            for n in ast.walk(handler)
        ):
            return True
        called = {
            dotted(n.func).rsplit(".", 1)[-1] for n in ast.walk(handler) if isinstance(n, ast.Call)
        }
        return bool(called & self._eintr_helpers())

    def _eintr_helpers(self) -> set[str]:
        """Functions of this module whose code or docstring speaks of EINTR."""
        if self._eintr is None:
            self._eintr = {
                n.name
                for n in ast.walk(self.tree)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                and "EINTR" in "\n".join(self.lines[n.lineno - 1 : n.end_lineno or n.lineno])
            }
        return self._eintr

    def _looks_transient(
        self,
        node: ast.AST,
        swallowing: list[ast.ExceptHandler],
        counter: str | None,
        region: list[ast.stmt],
    ) -> bool:
        """Evidence that a loop without a sleep retries a transient failure.

        Any of: a transient-looking exception type, a retry-ish counter or bound
        name, a side effect in an attempt body that catches every exception.
        """
        for h in swallowing:
            if h.type is None:
                continue
            types = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
            for t in types:
                name = dotted(t).rsplit(".", 1)[-1]
                if _TRANSIENT.search(name) or _CONFLICT.search(name):
                    return True
        head = ""
        if isinstance(node, ast.For | ast.AsyncFor):
            head = (
                dotted(node.iter.args[0])
                if isinstance(node.iter, ast.Call) and node.iter.args
                else ""
            )
        elif isinstance(node, ast.While):
            head = " ".join(sorted(_names_in(node.test)))
        if _RETRYISH.search(f"{counter or ''} {head}"):
            return True
        broad = any(h.type is None or self._broad(h.type) for h in swallowing)
        return broad and bool(self.effects(region).labels)

    def _next_statement(self, loop: _Loop) -> ast.stmt | None:
        """The statement run after the loop falls through (None: end of the function)."""
        scope: ast.AST = loop.func or self.tree
        for parent in ast.walk(scope):
            for _name, value in ast.iter_fields(parent):
                if isinstance(value, list) and loop.node in value:
                    i = value.index(loop.node)
                    if i + 1 < len(value):
                        return value[i + 1]
                    if parent is scope:
                        return None
                    return ast.Pass()  # end of an inner block: unknown, not silent
        return None

    def _sleep_kind(self, arg: ast.AST | None, counter: str | None, loop: ast.AST) -> str:
        if arg is None or isinstance(arg, ast.Constant):
            return "constant"
        text = ast.unparse(arg)
        names = _names_in(arg)
        if re.search(r"retry_after|Retry-After|headers|flood|\.seconds|\.delay\b", text, re.I):
            return "server"
        if "**" in text or "pow(" in text or (counter and counter in names):
            return "exponential"
        if isinstance(arg, ast.Name):
            multiplied = any(
                isinstance(n, ast.AugAssign)
                and isinstance(n.target, ast.Name)
                and n.target.id == arg.id
                and isinstance(n.op, ast.Mult)
                for n in ast.walk(loop)
            )
            return "exponential" if multiplied else "constant"
        if re.search(r"random|uniform|min\(|max\(", text):
            return "exponential"
        if isinstance(arg, ast.Attribute | ast.BinOp):
            return "constant"
        return "other"

    def _refusal(
        self,
        loop: _Loop,
        pattern: str,
        tnode: ast.Try | ast.TryStar,
        swallowing: list[ast.ExceptHandler],
        counter: str | None,
        sleep: str,
        region: list[ast.stmt],
    ) -> str | None:
        """Why the ``retry-loop`` codemod would refuse this loop (None: it rewrites it)."""
        node = loop.node
        holder = next(
            (w for w in node.body if isinstance(w, ast.With | ast.AsyncWith) and tnode in w.body),
            None,
        )
        if holder is not None:
            items = ", ".join(ast.unparse(i) for i in holder.items)
            return (
                f"its try sits inside `with {items}:` (the handler catches the error inside"
                " the block; in a step the error would pass through the block's exit)"
            )
        if pattern in (
            "for-custom-iterator",
            "for-count",
            "while-condition",
            "while-true",
            "while-true-deadline",
        ):
            return {
                "while-true-deadline": "a time budget, not an attempt counter",
                "for-custom-iterator": "loops over a custom retry iterator, not range()",
                "for-count": "unbounded itertools.count() loop",
                "while-condition": "loop condition is not an attempt counter",
                "while-true": "while True with no attempt counter",
            }[pattern]
        if any(isinstance(n, ast.Yield | ast.YieldFrom) for n in _walk_local(list(node.body))):
            return "the loop body yields"
        for outer in loop.outer_loops:
            if isinstance(outer, ast.For | ast.AsyncFor | ast.While) and any(
                isinstance(n, ast.Try | ast.TryStar) for n in outer.body
            ):
                return "nested retries: this loop runs inside another retry loop"
        if any(
            isinstance(n, ast.For | ast.AsyncFor | ast.While) and n is not node
            for n in _walk_local(list(tnode.body))
        ) and any(isinstance(n, ast.Try) for n in _walk_local(list(tnode.body))):
            return "nested retries: the attempt body has its own retry loop"
        if sleep == "server":
            return "sleep is not a backoff (delay comes from the server)"
        if sleep == "other":
            return "sleep is not a backoff"
        if counter and any(counter in _names_in(s) for s in tnode.body):
            return f"the body uses the attempt counter `{counter}`"
        loaded_before = {
            n.id
            for n in _walk_local(list(tnode.body))
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        }
        for n in _walk_local(list(tnode.body)):
            if (
                isinstance(n, ast.AugAssign)
                and isinstance(n.target, ast.Name)
                and n.target.id != counter
            ):
                return f"the body mutates `{n.target.id}`, read by the next attempt"
            if (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr in _MUTATORS
                and isinstance(n.func.value, ast.Name)
            ):
                return f"the body mutates `{n.func.value.id}`, read by the next attempt"
        for h in swallowing:
            in_sleep = {
                id(x)
                for c in _walk_local(list(h.body))
                if isinstance(c, ast.Call) and _is_sleep(c)
                for x in ast.walk(c)
            }
            for n in _walk_local(list(h.body)):
                if id(n) in in_sleep:
                    continue
                if isinstance(n, ast.Assign | ast.AugAssign):
                    targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                    for t in targets:
                        for name in _names_in(t):
                            if name in loaded_before and name != counter:
                                return f"the handler changes `{name}` before the next attempt"
                if isinstance(n, ast.Call) and not _is_sleep(n):
                    callee = dotted(n.func)
                    if callee not in _HARMLESS and not _LOG_NAMES.search(callee.lower()):
                        return f"the handler calls `{callee}` between attempts (repair or failover)"
        return None

    def _scan_loop(self, loop: _Loop) -> None:
        node = loop.node
        if (
            isinstance(node, ast.For | ast.AsyncFor)
            and isinstance(node.iter, ast.Call)
            and self.resolve(node.iter) in _ATTEMPT_BLOCKS
        ):
            self._report_attempt_block(loop, _ATTEMPT_BLOCKS[self.resolve(node.iter)])
            return
        facts = self._loop_facts(loop)
        if facts is None:
            (
                self._scan_status_code_retry(loop)
                or self._scan_result_retry(loop)
                or self._scan_poller(loop)
            )
            return
        effects = self.effects(facts.region)
        shape = ""
        if facts.caught and all(_CONFLICT.search(c) for c in facts.caught):
            shape = "conflict"
        elif any(_DEADLOCK.search(c) for c in facts.caught) and any(
            isinstance(n, ast.With | ast.AsyncWith)
            and _TXN_BLOCK.search(" ".join(ast.unparse(i.context_expr) for i in n.items))
            for n in _walk_local(facts.region)
        ):
            shape = "transaction"
        risk, reason = self._retry_risk(
            facts.forever, facts.sleep, facts.catch, effects, "", shape=shape
        )
        if facts.silent_give_up and risk is Risk.LOW:
            risk, reason = Risk.MEDIUM, "gives up silently: the caller never learns it failed"
            self._why.append("When attempts run out it returns quietly: the caller never learns.")
        if facts.refusal is None:
            fix = Fix("codemod", "retry-loop", True, "durable codemod --select retry-loop")
        else:
            fix = Fix("codemod", "retry-loop", False, f"the codemod refuses: {facts.refusal}")
        fix = self._fix_for(effects, fix)
        start, end = node.lineno, node.end_lineno or node.lineno
        body_lines = sum((s.end_lineno or s.lineno) - s.lineno + 1 for s in facts.region)
        self.add(
            Kind.RETRY_LOOP,
            facts.pattern,
            start,
            end,
            loop.qualname,
            risk,
            reason,
            fix,
            refusal=facts.refusal,
            effects=effects,
            removable=max(0, end - start + 1 - body_lines),
        )

    def _report_attempt_block(self, loop: _Loop, lib: str) -> None:
        node = loop.node
        assert isinstance(node, ast.For | ast.AsyncFor) and isinstance(node.iter, ast.Call)
        call = node.iter
        kw = {k.arg: k.value for k in call.keywords if k.arg}
        effects = self.effects(node.body)
        if loop.func is not None and len(loop.parents) >= 2:
            # `for attempt in Retrying(...)` inside a decorator's wrapper: the decorator is
            # the project's helper, applied elsewhere
            outer, oqual = self._outermost(loop.func, loop.qualname or "", loop.parents)
            if outer.name not in self.homemade:
                self.homemade[outer.name] = oqual
                self.helpers.append(HelperDef(self.module, outer.name, oqual, f"wraps {lib}"))
        if lib == "stamina":  # stamina.retry_context(on=..., attempts=10, ...)
            attempts = kw.get("attempts")
            forever = isinstance(attempts, ast.Constant) and attempts.value is None
            sleep, catch = "exponential", "specific"
        else:
            forever = "stop" not in kw
            sleep = "exponential" if "wait" in kw else "none"
            catch = "broad" if "retry" not in kw else "specific"
        risk, reason = self._retry_risk(forever, sleep, catch, effects, lib)
        start, end = node.lineno, node.end_lineno or node.lineno
        self.add(
            Kind.RETRY_DECORATOR,
            f"{lib} {'Retrying' if lib == 'tenacity' else 'retry_context'} block",
            start,
            end,
            loop.qualname,
            risk,
            reason,
            self._fix_for(effects, Fix("codemod", lib, True, f"durable codemod --select {lib}")),
            effects=effects,
            removable=2,
        )

    def _scan_status_code_retry(self, loop: _Loop) -> bool:
        """A retry decided by an HTTP status, not an exception (over range or a counter)."""
        node = loop.node
        if not self.may_status and ".ok" not in self.text:
            return False
        if isinstance(node, ast.For | ast.AsyncFor):
            it = self.resolve(node.iter) if isinstance(node.iter, ast.Call) else ""
            if it not in ("range", "builtins.range"):
                return False
        elif not (isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name)):
            return False
        body = list(node.body)
        has_sleep = any(isinstance(n, ast.Call) and _is_sleep(n) for n in _walk_local(body))
        tests = [
            ast.unparse(n.test)
            for n in _walk_local(body)
            if isinstance(n, ast.If) and any(isinstance(x, ast.Return | ast.Break) for x in n.body)
        ]
        tests = [t for t in tests if re.search(r"status_code|\.ok\b|\.status\b", t)]
        effects = self.effects(body)
        if not (has_sleep and tests and effects.labels):
            return False
        # waiting for a 200 from a GET is a readiness poll; a retry looks at 429/5xx
        # or repeats a call with side effects
        if not effects.external and not any(re.search(r"\b(429|5\d\d)\b", t) for t in tests):
            return False
        risk, reason = self._retry_risk(False, "constant", "specific", effects, "")
        self.add(
            Kind.RETRY_LOOP,
            "status-code retry",
            node.lineno,
            node.end_lineno or node.lineno,
            loop.qualname,
            risk,
            reason,
            self._fix_for(
                effects,
                Fix(
                    "codemod", "retry-loop", False, "the codemod refuses: retry decided by a status"
                ),
            ),
            refusal="retry decided by the HTTP status, not by an exception",
            effects=effects,
        )
        return True

    def _scan_result_retry(self, loop: _Loop) -> bool:
        """A retry decided by a returned value (``future = send(); if future.succeeded():
        break``): the shape the retry-loop codemod analyses (one test for both, see
        :mod:`codemods._result_shape`); whether it is fixable is the codemod's answer."""
        node = loop.node
        if not ast_result_retry(node):
            return False
        effects = self.effects(list(node.body))
        # `while True:` counting but never leaving between attempts: no limit
        forever = (
            isinstance(node, ast.While)
            and isinstance(node.test, ast.Constant)
            and bool(node.test.value)
            and not any(
                isinstance(n, ast.Raise | ast.Return | ast.Break)
                for s in node.body
                if not (
                    isinstance(s, ast.If)
                    and s.body
                    and isinstance(s.body[-1], ast.Return | ast.Break)
                )
                for n in _walk_local([s])
            )
        )
        risk, reason = self._retry_risk(forever, "constant", "specific", effects, "")
        if reason == "bounded retry with backoff on specific exceptions":
            reason = "bounded retry with a pause, decided by the returned value"
        self.add(
            Kind.RETRY_LOOP,
            "retry decided by a returned value",
            node.lineno,
            node.end_lineno or node.lineno,
            loop.qualname,
            risk,
            reason,
            self._fix_for(
                effects, Fix("codemod", "retry-loop", True, "durable codemod --select retry-loop")
            ),
            effects=effects,
        )
        return True

    def _scan_poller(self, loop: _Loop) -> bool:
        """A worker loop that selects job rows by status and sleeps between polls."""
        node = loop.node
        if (
            not self.may_status
            or loop.outer_loops
            or not (
                isinstance(node, ast.While)
                or self.resolve(getattr(node, "iter", node)) == "itertools.count"
            )
        ):
            return False
        body = list(node.body)
        nodes = list(_walk_local(body))
        if not any(isinstance(n, ast.Call) and _is_sleep(n) for n in nodes):
            return False
        query = False
        for n in nodes:
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                if n.func.attr in ("filter", "filter_by", "exclude", "where", "select_for_update"):
                    if any((k.arg or "").split("__")[0] in STATUS_COLUMNS for k in n.keywords):
                        query = True
                    if any(
                        isinstance(a, ast.Compare)
                        and isinstance(a.left, ast.Attribute)
                        and a.left.attr in STATUS_COLUMNS
                        for a in n.args
                    ):
                        query = True
            elif (
                isinstance(n, ast.Constant)
                and isinstance(n.value, str)
                and _SELECT_BY_STATUS.search(n.value)
            ):
                query = True
        if not query:
            return False
        src = ast.get_source_segment(self.text, node) or ""
        guarded = GUARD_TEXT.search(src) is not None
        risk = Risk.LOW if guarded else Risk.MEDIUM
        reason = (
            "polls a job table by status and claims rows with a lock"
            if guarded
            else "polls a job table by status with no row lock: two workers can claim the same job"
        )
        self.add(
            Kind.STATUS_POLLER,
            "status polling loop",
            node.lineno,
            node.end_lineno or node.lineno,
            loop.qualname,
            risk,
            reason,
            Fix(
                "adapter",
                "status-column",
                False,
                "rows become durable workflows; workers use leases",
            ),
        )
        return True

    # ------------------------------------------------------------ risk
    def _effects_risk(self, effects: Effects, default: Risk, what: str) -> tuple[Risk, str]:
        if effects.external and not effects.idempotency_key:
            return Risk.HIGH, (
                f"retries {_a(effects.external[0])} with no idempotency key (at-least-once)"
            )
        if effects.db_write:
            return Risk.MEDIUM, "retries a database write: a partial attempt may be written twice"
        return default, what

    def _retry_risk(
        self,
        forever: bool,
        sleep: str,
        catch: str,
        effects: Effects | None,
        lib: str,
        *,
        shape: str = "",
    ) -> tuple[Risk, str]:
        """Rank a retry and say why (the first, worst reason wins).

        Returns the level and a one-line reason; the plain sentences behind it
        are kept for the next :meth:`add` (``Hotspot.why``).
        """
        external = effects.external if effects else ()
        keyed = effects.idempotency_key if effects else False
        via = f" (through {', '.join(effects.via)})" if effects and effects.via else ""
        why: list[str] = []
        if external:
            why.append(
                f"Each attempt makes {_a(external[0])}{via}; after a timeout the first attempt "
                "may have gone through, so a retry can do it twice"
                + (", and no idempotency key lets the other side drop the repeat." if not keyed
                   else "; it passes an idempotency key, so the other side can drop a repeat.")
            )  # fmt: skip
        elif effects and effects.db_write:
            why.append(
                f"It writes to the database{via}; an attempt that failed half-way can leave a "
                "partial write that the next attempt repeats."
            )
        if shape == "conflict":
            why.append(
                "It retries at once on a version conflict: the usual optimistic-locking loop "
                "(read again, apply again), so no pause is needed."
            )
        elif shape == "transaction":
            why.append(
                "It re-runs the whole transaction after a deadlock or serialization failure: "
                "the database rolled the failed attempt back, so nothing is written twice."
            )
        elif forever:
            why.append("Nothing stops it: there is no attempt limit and no time limit.")
        elif sleep == "none":
            why.append("It retries at once with no pause, hammering a service that is failing.")
        elif sleep == "exponential":
            why.append("It is bounded and waits longer after each failure (backoff).")
        elif sleep in ("constant", "server", "other"):
            why.append("It is bounded and waits between attempts.")
        if catch in ("bare", "broad"):
            why.append("It catches every exception, so programming errors are retried too.")
        self._why = why
        if external and not keyed:
            return (
                Risk.HIGH,
                f"retries {_a(external[0])}{via} with no idempotency key (at-least-once)",
            )
        if shape == "transaction":
            return Risk.LOW, "re-runs the whole transaction on deadlock (rolled back first)"
        if forever:
            return Risk.HIGH, "retries forever: no attempt or time limit"
        if sleep == "none" and shape != "conflict":
            return Risk.HIGH, "no backoff between attempts (hot loop)"
        if catch in ("bare", "broad") and effects and effects.non_idempotent:
            which = "bare `except:`" if catch == "bare" else "`Exception`"
            return Risk.HIGH, f"retries on {which} around non-idempotent work"
        if effects and effects.db_write:
            if shape == "conflict":
                return Risk.MEDIUM, "retries a database write at once on a version conflict"
            return Risk.MEDIUM, "retries a database write: a partial attempt may be written twice"
        if external:
            return Risk.MEDIUM, f"retries {_a(external[0])} (idempotency key present)"
        if catch in ("bare", "broad"):
            return Risk.MEDIUM, "catches every exception: bugs are retried too"
        if shape == "conflict":
            return Risk.LOW, "retries at once on a version conflict (optimistic locking)"
        return Risk.LOW, "bounded retry with backoff on specific exceptions"

    def _fix_for(self, effects: Effects, fix: Fix) -> Fix:
        """``@transaction`` when the only side effect is a write to the same database."""
        if effects.db_write and not effects.external:
            note = "the write and its checkpoint commit together: exactly-once"
            if fix.automatic:
                note += f"; then durable codemod --select {fix.name}"
            return Fix("decorator", "@transaction", False, note)
        if effects.external and not effects.idempotency_key:
            note = f"{fix.note}; pass current_step().idempotency_key to the API".lstrip("; ")
            return Fix(fix.kind, fix.name, fix.automatic, note)
        return fix

    # ------------------------------------------------------- sweepers & DLQ
    def _scan_recursive_retry(
        self, func: ast.FunctionDef | ast.AsyncFunctionDef, qual: str, parents: list[ast.AST]
    ) -> None:
        """A function that calls itself again from its exception handler, counting attempts."""
        for n in self.local_nodes(func):
            if not isinstance(n, ast.ExceptHandler):
                continue
            handler = list(_walk_local(list(n.body)))
            counted = any(
                (
                    isinstance(c, ast.AugAssign)
                    and isinstance(c.value, ast.Constant)
                    and c.value.value == 1
                )
                or (
                    isinstance(c, ast.Call | ast.Assign | ast.keyword)
                    and _RECURSE_HINT.search(ast.unparse(c)) is not None
                )
                for c in handler
            )
            again = any(
                isinstance(c, ast.Call) and dotted(c.func).rsplit(".", 1)[-1] == func.name
                for c in handler
            )
            if not (counted and again):
                continue
            effects = self.effects(func.body)
            # a wrapper inside a decorator (factory): the decorator is the helper
            outer = parents[0] if parents else None
            if isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef):
                quals = {id(f): q for f, q, _ in self.funcs}
                self.helpers.append(
                    HelperDef(self.module, outer.name, quals[id(outer)], "retry by recursion")
                )
                self.homemade.setdefault(outer.name, quals[id(outer)])
                start, end, where = outer.lineno, outer.end_lineno or outer.lineno, quals[id(outer)]
                start = min([start] + [d.lineno for d in outer.decorator_list])
                pattern = "recursive retry decorator"
            else:
                start, end, where = func.lineno, func.end_lineno or func.lineno, qual
                pattern = "recursive retry"
            risk, reason = self._retry_risk(False, "constant", "specific", effects, "")
            self.add(
                Kind.RETRY_LOOP,
                pattern,
                start,
                end,
                where,
                risk,
                reason,
                self._fix_for(
                    effects,
                    Fix("codemod", "retry-loop", False, "the codemod refuses: recursion"),
                ),
                refusal="retried by recursion, not a loop",
                effects=effects,
            )
            return

    # ------------------------------------------------------------ tables


def scan_python(path: str, source: bytes) -> PythonScanner:
    """Scan one Python file; the scanner holds its hotspots, helpers and decorator uses.

    Raises SyntaxError/ValueError for a file that does not parse.
    """
    tree = parse_python(source, path)  # ast, or libcst for syntax newer than this Python
    text = source.decode("utf-8", errors="replace")
    scanner = PythonScanner(path, text, tree)
    scanner.run()
    return scanner


def scan_python_source(path: str, source: bytes) -> tuple[list[Hotspot], int]:
    """Hotspots in one Python file and its line count. Raises SyntaxError/ValueError."""
    scanner = scan_python(path, source)
    return scanner.hotspots, scanner.text.count("\n") + 1


def excerpt(lines: list[str], start: int, end: int) -> str:
    """The excerpt shown for a hotspot spanning ``start..end`` (capped)."""
    return _excerpt(lines, start, end)


broker_hotspot = tables.broker_hotspot
GUARD_TEXT = tables.GUARD_TEXT
PERIODIC = tables.PERIODIC
