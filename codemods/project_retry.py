"""Codemod ``project-retry``: each use of a project's own retry decorator is reported.

``@utils.retry(VolumeBackendAPIException)``, ``@retrier(retries=3)``,
``@aws_retry``: the retry lives in a decorator the project wrote once, and
each function it decorates retries. The codemods answer for the definition
(rewritten, or refused with its reason, most often "a retry engine": its
policy comes from its callers); this codemod lists every use (``skipped``,
never rewritten) with a reason naming the decorator and, when the run reaches
the definition, the definition's own decision:

* defined in the same file: the decision the other codemods took on it;
* defined in another file of the run (``durable codemod PROJECT_DIR``): the
  decision :func:`codemods._use_sites.build_index` read before the run;
* else: a decorator imported from the project's own modules (a relative
  import, a first-party module) whose name says retry (``retry``,
  ``retrier``, ``aws_retry``, ``retry_on_db_error``, ``with_retries``; not
  ``retry_after_header`` or ``no_retry``).

A decorator whose definition the run reads and where the codemods find no
retry is reported only when its name says retry. The policy is the decorator
call's arguments as written (and the definition's policy when it was read),
so ``--annotate`` leaves what a person needs to finish by hand.
"""

from __future__ import annotations

import ast
import re
from typing import Any, ClassVar

import libcst as cst
from libcst.metadata import (
    PositionProvider,
    QualifiedName,
    QualifiedNameProvider,
    QualifiedNameSource,
    ScopeProvider,
)

from ._base import DurableCodemod, Site
from ._project import first_party_modules
from ._use_sites import (
    Definition,
    ProjectIndex,
    decision_for,
    definition_spans,
    is_first_party,
    use_reason,
)

#: scratch keys the runner fills: the sites the other codemods found in this file (lines
#: of the original source), that source, and the run's :class:`ProjectIndex`
EARLIER_SITES = "durable.earlier_sites"
ORIGINAL_SOURCE = "durable.original_source"
PROJECT_INDEX = "durable.project_index"

_SIGNS = re.compile(r"retr", re.IGNORECASE)


class ProjectRetryCodemod(DurableCodemod):
    """Report every use of a project's own retry decorator, with its definition's decision."""

    SELECTOR = "project-retry"
    DESCRIPTION = "Report each use of a project's own retry decorator (never rewritten)."
    METADATA_DEPENDENCIES: ClassVar[tuple[Any, ...]] = (
        PositionProvider,
        ScopeProvider,
        QualifiedNameProvider,
    )

    def __init__(self, context: cst.codemod.CodemodContext, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.source_module = cst.Module(body=[])
        self.spans: dict[str, tuple[int, int]] = {}
        self.earlier: list[Site] = []
        self.project: ProjectIndex | None = None
        self.first_party: frozenset[str] = frozenset()

    @classmethod
    def might_apply(cls, source: str) -> bool:
        return "@" in source and _SIGNS.search(source) is not None

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.source_module = node
        scratch = self.context.scratch
        original = scratch.get(ORIGINAL_SOURCE, node.code)
        try:
            self.spans = definition_spans(ast.parse(original))
        except (SyntaxError, ValueError):
            self.spans = {}
        if EARLIER_SITES in scratch:
            self.earlier = list(scratch[EARLIER_SITES])
        else:  # run alone (libcst.tool, a test): ask the other codemods now
            self.earlier = _other_sites(node.code, self.context.filename or "<string>")
        self.project = scratch.get(PROJECT_INDEX)
        self.first_party = first_party_modules(self.filename)
        return True

    @property
    def filename(self) -> str:
        return self.context.filename or "<string>"

    def code(self, node: cst.CSTNode) -> str:
        return " ".join(self.source_module.code_for_node(node).split())

    # -- what a decorator is ---------------------------------------------------
    def definition_of(self, target: cst.BaseExpression) -> tuple[str, Definition | None] | None:
        """(how it was found, the definition reached) for a project decorator, else None."""
        names: set[QualifiedName] = set(self.get_metadata(QualifiedNameProvider, target, set()))
        for qualified in sorted(names, key=lambda q: q.name):
            if qualified.source is QualifiedNameSource.LOCAL:
                span = self.spans.get(qualified.name)
                if span is None:
                    continue
                decision = decision_for(self.earlier, span)
                return "", Definition("", span[0], span[1], decision)
            if qualified.source is not QualifiedNameSource.IMPORT:
                continue
            module = qualified.name.rpartition(".")[0]
            found = self.project.find(qualified.name, self.filename) if self.project else None
            if found is not None:  # a file of the run defines it: the project's own
                return module, found
            if is_first_party(qualified.name, self.filename, self.first_party):
                return module, None
        return None

    def policy_of(self, decorator: cst.Decorator, definition_policy: str) -> str:
        """The decorator call's arguments as written, and the definition's policy."""
        target = decorator.decorator
        parts = []
        if isinstance(target, cst.Call):
            for arg in target.args:
                value = self.code(arg.value)
                if arg.keyword is not None:
                    parts.append(f"{arg.keyword.value}={value}")
                else:
                    parts.append(f"{arg.star}{value}")
        read = ", ".join(parts)
        if isinstance(target, cst.Call) and not read and not definition_policy:
            read = "the decorator's defaults"
        if definition_policy:
            return f"{read} (definition: {definition_policy})" if read else definition_policy
        return read

    # -- the traversal -----------------------------------------------------------
    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        for decorator in original_node.decorators:
            target = decorator.decorator
            func = target.func if isinstance(target, cst.Call) else target
            found = self.definition_of(func)
            if found is None:
                continue
            module, definition = found
            label = self.code(func)
            answer = use_reason(label, module, definition)
            if answer is None:
                continue
            reason, definition_policy = answer
            policy = self.policy_of(decorator, definition_policy)
            self.record(decorator, "skipped", reason, policy=policy, end=original_node)
            return self.annotated(updated_node, reason, policy)
        return updated_node


def _other_sites(code: str, filename: str) -> list[Site]:
    from . import CODEMODS
    from .runner import transform_source

    others = tuple(s for s in CODEMODS if s != ProjectRetryCodemod.SELECTOR)
    try:
        return transform_source(code, others, filename)[1]
    except Exception:
        return []


__all__ = ["ProjectRetryCodemod"]
