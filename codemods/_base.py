"""What the three codemods share: the report of each site, the imports, ``--annotate``."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import libcst as cst
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.metadata import GlobalScope, PositionProvider, ScopeProvider

from . import _evaluate as ev
from ._policy import Policy
from ._project import first_party_modules

SCRATCH_KEY = "durable.sites"
ANNOTATION_PREFIX = "# durable: "

Action = Literal["rewritten", "skipped", "kept"]


@dataclass(frozen=True)
class Site:
    """One place a codemod looked at, and what it did there.

    ``rewritten``: replaced by a durable step; ``skipped``: left as it was, ``reason`` says
    why; ``kept``: a retry decorator left in place because an option has no equivalent.
    ``notes`` lists what a reviewer should know about a rewrite (for example dropped logging).
    """

    selector: str
    line: int
    action: Action
    reason: str
    notes: tuple[str, ...] = ()
    #: last line of the site (the loop, the decorated function), 0 when unknown
    end_line: int = 0
    #: a short human summary of the policy read ("5 attempts, 1s doubling to 60s, on
    #: ConnectionError"), "" when nothing could be read
    policy: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


#: the retry log a rewritten loop gains: the step logs each retry (toolkit/engine.py)
LOGGED_NOTE = (
    "the log calls of the handler were dropped: the step logs each retry as a WARNING"
    " on the `toolkit` logger"
)
SILENT_NOTE = (
    "the step logs each retry as a WARNING on the `toolkit` logger;"
    " the legacy code retried silently"
)


def sites_of(context: CodemodContext) -> list[Site]:
    """The sites recorded so far in this context (one file)."""
    sites: list[Site] = context.scratch.setdefault(SCRATCH_KEY, [])
    return sites


class DurableCodemod(VisitorBasedCodemodCommand):
    """Base class: report each site, add ``from toolkit import step, RetryPolicy`` once."""

    SELECTOR: ClassVar[str] = ""
    METADATA_DEPENDENCIES: ClassVar[tuple[Any, ...]] = (PositionProvider, ScopeProvider)

    def __init__(self, context: CodemodContext, annotate: bool = False) -> None:
        super().__init__(context)
        self.annotate = annotate
        self.step_name = "step"
        self.policy_name = "RetryPolicy"
        self.current_step_name = "current_step"
        #: the site being read calls ``current_step()``: imported once it is rewritten
        self._step_context_wanted = False
        self._imports_scheduled = False

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        """Options for ``python -m libcst.tool codemod``."""
        arg_parser.add_argument(
            "--annotate",
            action="store_true",
            help="leave a '# durable: ...' comment on each site that is not rewritten",
        )

    @classmethod
    def might_apply(cls, source: str) -> bool:
        """A cheap text check: False means the codemod surely finds nothing in ``source``."""
        return True

    def transform_module(self, tree: cst.Module) -> cst.Module:
        """As libcst's, with the import block kept in its sections: no blank lines left at
        the top where a removed import stood, the blank line above a removed import kept
        for the one after it, and ``from toolkit import`` set apart from a stdlib block."""
        result = super().transform_module(tree)
        if result is tree or not result.body or not tree.body:
            return result
        first_party = first_party_modules(self.context.filename or "")
        result = _keep_import_sections(tree, result, first_party)
        first, was_first = result.body[0], tree.body[0]
        had_blank = any(line.comment is None for line in was_first.leading_lines)
        lines = list(first.leading_lines)
        if not had_blank and not result.header and lines and lines[0].comment is None:
            while lines and lines[0].comment is None:
                lines.pop(0)
            result = result.with_changes(
                body=[first.with_changes(leading_lines=lines), *result.body[1:]]
            )
        return result

    # -- names -----------------------------------------------------------------
    def visit_Module(self, node: cst.Module) -> bool:
        scope = self.get_metadata(ScopeProvider, node, None)
        if isinstance(scope, GlobalScope):
            self.step_name = _free_name(scope, "step", "durable_step")
            self.policy_name = _free_name(scope, "RetryPolicy", "DurableRetryPolicy")
            self.current_step_name = _free_name(scope, "current_step", "durable_current_step")
        return True

    def decorator_for(self, policy: Policy) -> cst.Decorator:
        """``@step(retry=RetryPolicy(...))`` with the import scheduled."""
        self.need_imports()
        return policy.decorator(self.step_name, self.policy_name)

    def need_imports(self) -> None:
        """Schedule ``from toolkit import step, RetryPolicy`` (added once per file)."""
        if self._imports_scheduled:
            return
        self._imports_scheduled = True
        for obj, local in (("step", self.step_name), ("RetryPolicy", self.policy_name)):
            AddImportsVisitor.add_needed_import(
                self.context, "toolkit", obj, None if obj == local else local
            )

    def need_current_step(self) -> str:
        """The name to call ``toolkit.current_step`` by in the site being read; it is
        imported when that site is recorded as rewritten."""
        self._step_context_wanted = True
        return self.current_step_name

    def drop_if_unused(self, module: str, obj: str | None = None) -> None:
        """Remove ``import module`` / ``from module import obj`` if nothing uses it any more."""
        RemoveImportsVisitor.remove_unused_import(self.context, module, obj)

    # -- report ----------------------------------------------------------------
    def line_of(self, node: cst.CSTNode) -> int:
        """1-based line of ``node`` in the file as it was read."""
        return int(self.get_metadata(PositionProvider, node).start.line)

    def record(
        self,
        node: cst.CSTNode,
        action: Action,
        reason: str,
        notes: tuple[str, ...] | list[str] = (),
        policy: str = "",
        end: cst.CSTNode | None = None,
    ) -> None:
        """Add a report entry for ``node`` (lines up to the end of ``end`` or ``node``);
        also a libcst warning so ``libcst.tool`` shows it."""
        wanted, self._step_context_wanted = self._step_context_wanted, False
        if wanted and action == "rewritten":
            local = self.current_step_name
            AddImportsVisitor.add_needed_import(
                self.context, "toolkit", "current_step", None if local == "current_step" else local
            )
        line = self.line_of(node)
        end_line = int(self.get_metadata(PositionProvider, end or node).end.line)
        site = Site(self.SELECTOR, line, action, reason, tuple(notes), end_line, policy)
        sites = sites_of(self.context)
        if site in sites:  # nested calls of one construct (`retry(...)(f)(x)`): one site
            return
        sites.append(site)
        if action != "rewritten":
            self.warn(f"line {line}: {self.SELECTOR}: {action}: {reason}")

    def annotated(self, node: Any, reason: str, policy: str = "") -> Any:
        """``node`` with a ``# durable: <selector> not rewritten: <reason> [policy read: ...]``
        comment above it, only with ``--annotate``. An earlier comment of this codemod is
        replaced, so a second run changes nothing."""
        if not self.annotate:
            return node
        text = f"{ANNOTATION_PREFIX}{self.SELECTOR} not rewritten: {reason}"
        if policy:
            text += f" (policy read: {policy})"
        text = " ".join(text.split())
        mine = f"{ANNOTATION_PREFIX}{self.SELECTOR} not rewritten:"
        leading = [
            line
            for line in node.leading_lines
            if line.comment is None or not line.comment.value.startswith(mine)
        ]
        comment = cst.EmptyLine(comment=cst.Comment(text))
        return node.with_changes(leading_lines=[*leading, comment])


_BLANK = cst.EmptyLine(indent=False)


def _import_section(stmt: cst.CSTNode) -> str | None:
    """``future``, ``stdlib`` or ``other`` for a top-level import line, else None."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    node = stmt.body[0]
    if isinstance(node, cst.Import):
        name = node.names[0].name
    elif isinstance(node, cst.ImportFrom):
        if node.relative or node.module is None:
            return "other"
        name = node.module
    else:
        return None
    head: cst.BaseExpression = name
    while isinstance(head, cst.Attribute):
        head = head.value
    top = head.value if isinstance(head, cst.Name) else ""
    if top == "__future__":
        return "future"
    return "stdlib" if top in sys.stdlib_module_names else "other"


def _bare(stmt: cst.SimpleStatementLine | cst.BaseCompoundStatement) -> str:
    return cst.Module(body=[stmt.with_changes(leading_lines=[])]).code


def _blank_above(stmt: cst.SimpleStatementLine | cst.BaseCompoundStatement) -> bool:
    return any(line.comment is None for line in stmt.leading_lines)


def _keep_import_sections(
    before: cst.Module, after: cst.Module, first_party: frozenset[str] = frozenset()
) -> cst.Module:
    """Blank lines between import sections that removing or adding imports disturbed.

    Only the import lines next to a removed or added import are touched: a file whose
    sections were not separated before keeps its layout.
    """
    old = [_bare(stmt) for stmt in before.body]
    old_set = set(old)
    inherit: set[str] = set()  # imports that follow a removed import with a blank line above
    kept = {_bare(stmt) for stmt in after.body}
    for i, stmt in enumerate(before.body[:-1]):
        if _import_section(stmt) and old[i] not in kept and _blank_above(stmt):
            follower = before.body[i + 1]
            if _import_section(follower) and not _blank_above(follower):
                inherit.add(old[i + 1])
    body = list(after.body)
    for i, stmt in enumerate(body):
        section = _import_section(stmt)
        if section is None or i == 0 or _blank_above(stmt):
            continue
        code = _bare(stmt)
        added = code not in old_set
        previous = _import_section(body[i - 1])
        if code in inherit or (added and previous is not None and previous != section):
            body[i] = stmt.with_changes(leading_lines=[_BLANK, *stmt.leading_lines])
    return after.with_changes(body=_place_toolkit_import(before.body, old, body, first_party))


def _import_blocks(body: list[Any]) -> list[tuple[int, int]]:
    """(start, end) of each run of top-level import lines with no blank line between."""
    blocks: list[tuple[int, int]] = []
    i = 0
    while i < len(body):
        if _import_section(body[i]) is None:
            i += 1
            continue
        start, i = i, i + 1
        while i < len(body) and _import_section(body[i]) and not _blank_above(body[i]):
            i += 1
        blocks.append((start, i))
    return blocks


def _absolute_other(stmt: Any) -> bool:
    """A non-stdlib import that is not relative (third-party, or the project's own)."""
    node = stmt.body[0] if _import_section(stmt) == "other" else None
    return node is not None and not (isinstance(node, cst.ImportFrom) and node.relative)


def _imported_module(stmt: Any) -> str:
    """The dotted module of an absolute import line ("" for a relative one)."""
    node = stmt.body[0]
    if isinstance(node, cst.Import):
        return cst.Module(body=[]).code_for_node(node.names[0].name)
    return _from_module(stmt) or ""


def _project_own(stmt: Any, first_party: frozenset[str]) -> bool:
    """A relative import, or one of a module ``first_party`` names or matches (a glob)."""
    if _import_section(stmt) != "other":
        return False
    module = _imported_module(stmt)
    return not module or any(_names_module(name, module) for name in first_party)


def _names_module(name: str, module: str) -> bool:
    if any(ch in name for ch in "*?["):
        return fnmatch.fnmatchcase(module, name) or fnmatch.fnmatchcase(module.split(".")[0], name)
    return module == name or module.startswith(name + ".")


def _from_module(stmt: Any) -> str | None:
    node = stmt.body[0]
    if isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None:
        return cst.Module(body=[]).code_for_node(node.module)
    return None


def _removed_import_block(
    before: Sequence[Any], old: list[str], codes: list[str], blocks: list[tuple[int, int]]
) -> tuple[int, int] | None:
    """The block (in ``codes``) where a removed third-party import stood beside survivors."""
    kept = set(codes)
    for i, stmt in enumerate(before):
        if _import_section(stmt) != "other" or old[i] in kept:
            continue
        beside = []  # the import lines next to it in its own block
        if i > 0 and not _blank_above(stmt):
            beside.append(i - 1)
        if i + 1 < len(before) and not _blank_above(before[i + 1]):
            beside.append(i + 1)
        for j in beside:
            if _import_section(before[j]) and old[j] in kept:
                at = codes.index(old[j])
                return next((b for b in blocks if b[0] <= at < b[1]), None)
    return None


def _place_toolkit_import(
    before: Sequence[Any], old: list[str], body: list[Any], first_party: frozenset[str]
) -> list[Any]:
    """Move an added ``from toolkit import`` into the third-party block, in sorted order.

    The block is the one a removed third-party import (tenacity, backoff) stood in,
    else the first block of absolute imports that are neither stdlib nor the
    project's own (``first_party``). With no such block but a block of the
    project's own, it becomes a block of its own just before that one. Else the
    first block of absolute non-stdlib imports (the project does not separate
    them, or no project was found); with none, it stays where it is, set apart.
    """
    old_set = set(old)
    added = [
        i
        for i, stmt in enumerate(body)
        if _import_section(stmt) == "other"
        and _is_toolkit(stmt.body[0])
        and _bare(stmt) not in old_set
    ]
    if len(added) != 1:
        return body
    stmt = body[added[0]]
    rest = body[: added[0]] + body[added[0] + 1 :]
    blocks = _import_blocks(rest)

    def third_party(k: int) -> bool:
        return _absolute_other(rest[k]) and not _project_own(rest[k], first_party)

    target = _removed_import_block(before, old, [_bare(s) for s in rest], blocks) or next(
        (b for b in blocks if all(third_party(k) for k in range(*b))), None
    )
    own = next(
        (b for b in blocks if all(_project_own(rest[k], first_party) for k in range(*b))), None
    )
    if target is None and own is not None:
        start = own[0]  # a block of its own: the blank lines above the project's block
        leading = rest[start].leading_lines
        stmt = stmt.with_changes(leading_lines=[line for line in leading if line.comment is None])
        comments = [line for line in leading if line.comment is not None]
        rest[start] = rest[start].with_changes(leading_lines=[_BLANK, *comments])
        return [*rest[:start], stmt, *rest[start:]]
    if target is None:  # e.g. one block mixing third-party and the project's own
        target = next((b for b in blocks if all(_absolute_other(rest[k]) for k in range(*b))), None)
    if target is None:
        return body
    start, end = target
    # isort and ruff compare module names without case by default
    at = next(
        (k for k in range(start, end) if (_from_module(rest[k]) or "").lower() > "toolkit"), end
    )
    if at == start:  # first of its block: it takes the block's leading lines
        stmt = stmt.with_changes(leading_lines=rest[start].leading_lines)
        rest[start] = rest[start].with_changes(leading_lines=[])
    else:
        stmt = stmt.with_changes(leading_lines=[])
    return [*rest[:at], stmt, *rest[at:]]


def _free_name(scope: GlobalScope, wanted: str, fallback: str) -> str:
    """``wanted`` unless the module already binds it to something else than toolkit's."""
    for assignment in scope.assignments[wanted]:
        node = getattr(assignment, "node", None)
        if isinstance(node, cst.ImportFrom) and _is_toolkit(node):
            continue
        return fallback
    return wanted


def _is_toolkit(node: cst.CSTNode) -> bool:
    if not isinstance(node, cst.ImportFrom):
        return False
    module = node.module
    return isinstance(module, cst.Name) and module.value == "toolkit" and node.relative == ()


def module_constants(module: cst.Module, scope: GlobalScope) -> dict[str, ev.Number]:
    """Module-level names bound once to a number: their values, for evaluating policies."""
    constants: dict[str, ev.Number] = {}
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Assign | cst.AnnAssign):
                targets = (
                    [t.target for t in small.targets]
                    if isinstance(small, cst.Assign)
                    else [small.target]
                )
                value = small.value
                if value is None or len(targets) != 1 or not isinstance(targets[0], cst.Name):
                    continue
                name = targets[0].value
                if len(scope.assignments[name]) != 1:
                    continue
                try:
                    result = ev.evaluate(ev.parse(module.code_for_node(value)), constants)
                except (ev.Unknown, SyntaxError):
                    continue
                if isinstance(result, int | float) and not isinstance(result, bool):
                    constants[name] = result
    return constants


def module_sequences(module: cst.Module, scope: GlobalScope) -> dict[str, cst.Tuple | cst.List]:
    """Module-level names bound once to a literal tuple of numbers (``DELAYS = (1, 2, 4)``),
    or to a list of them under a constant's name (``RETRY_DELAYS = [1, 5]``): the literal,
    for a loop over its values (``for delay in DELAYS:``)."""
    out: dict[str, cst.Tuple | cst.List] = {}
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if not isinstance(small, cst.Assign) or len(small.targets) != 1:
                continue
            target, value = small.targets[0].target, small.value
            if not isinstance(target, cst.Name) or len(scope.assignments[target.value]) != 1:
                continue
            if isinstance(value, cst.List) and not target.value.isupper():
                continue  # a list under another name may be changed
            if (
                isinstance(value, cst.Tuple | cst.List)
                and value.elements
                and all(
                    isinstance(e, cst.Element) and isinstance(e.value, cst.Integer | cst.Float)
                    for e in value.elements
                )
            ):
                out[target.value] = value
    return out


def is_docstring(stmt: cst.CSTNode) -> bool:
    """A statement that is only a string: a docstring when it comes first."""
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )
