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

import re
from typing import Any, ClassVar

import libcst as cst
from libcst.metadata import PositionProvider

from ._base import DurableCodemod, Site, sites_of
from ._use_sites import Use, find_uses

#: scratch keys the runner fills: the sites the other codemods found in this file (lines
#: of the original source), that source, and the run's :class:`ProjectIndex`
EARLIER_SITES = "durable.earlier_sites"
ORIGINAL_SOURCE = "durable.original_source"
PROJECT_INDEX = "durable.project_index"

_SIGNS = re.compile(r"retr", re.IGNORECASE)


class ProjectRetryCodemod(DurableCodemod):
    """Report every use of a project's own retry decorator, with its definition's decision.

    The analysis is :func:`codemods._use_sites.find_uses` (``ast``); the codemod records
    its sites and, with ``--annotate``, leaves the comment above each function."""

    SELECTOR = "project-retry"
    DESCRIPTION = "Report each use of a project's own retry decorator (never rewritten)."
    METADATA_DEPENDENCIES: ClassVar[tuple[Any, ...]] = (PositionProvider,)

    def __init__(self, context: cst.codemod.CodemodContext, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.uses: dict[int, Use] = {}

    @classmethod
    def might_apply(cls, source: str) -> bool:
        return "@" in source and _SIGNS.search(source) is not None

    def transform_module(self, tree: cst.Module) -> cst.Module:
        code = tree.code
        filename = self.context.filename or "<string>"
        scratch = self.context.scratch
        if EARLIER_SITES in scratch:
            earlier = list(scratch[EARLIER_SITES])
        else:  # run alone (libcst.tool, a test): ask the other codemods now
            earlier = _other_sites(code, filename)
        uses = find_uses(
            code, filename, earlier, scratch.get(PROJECT_INDEX), scratch.get(ORIGINAL_SOURCE)
        )
        sites = sites_of(self.context)
        for use in uses:
            sites.append(use_site(use))
            self.warn(f"line {use.line}: {self.SELECTOR}: skipped: {use.reason}")
        if not self.annotate or not uses:
            return tree
        self.uses = {use.def_line: use for use in uses}
        return super().transform_module(tree)

    def visit_Module(self, node: cst.Module) -> bool:
        return True  # nothing to name: this codemod adds no import

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        use = self.uses.get(self.line_of(original_node))
        if use is None:
            return updated_node
        return self.annotated(updated_node, use.reason, use.policy)


def use_site(use: Use) -> Site:
    """The report entry of a use (``skipped``: listed, never rewritten)."""
    return Site(
        ProjectRetryCodemod.SELECTOR, use.line, "skipped", use.reason, (), use.end_line, use.policy
    )


def _other_sites(code: str, filename: str) -> list[Site]:
    from . import CODEMODS
    from .runner import transform_source

    others = tuple(s for s in CODEMODS if s != ProjectRetryCodemod.SELECTOR)
    try:
        return transform_source(code, others, filename)[1]
    except Exception:
        return []


__all__ = ["ProjectRetryCodemod", "use_site"]
