"""Test helpers for codemods in libcst's CodemodTest style: the source before and after."""

from __future__ import annotations

import textwrap

import libcst as cst
from libcst.codemod import CodemodContext, CodemodTest

from ._base import Site, sites_of


class DurableCodemodTest(CodemodTest):
    """``assertCodemod`` from libcst, plus a check that a site is left alone with a reason."""

    #: the file name the codemod is told (a path such as ``shop/api.py`` names the package)
    FILENAME = "case.py"

    def run_codemod(self, before: str, **kwargs: object) -> tuple[str, list[Site]]:
        context = CodemodContext(filename=self.FILENAME)
        transform = self.TRANSFORM(context, **kwargs)
        module = transform.transform_module(cst.parse_module(textwrap.dedent(before)))
        return module.code, sites_of(context)

    def assertUnchanged(self, before: str, reasons: list[str], **kwargs: object) -> None:
        """The code stays as it is and each site is reported with these reasons."""
        code, sites = self.run_codemod(before, **kwargs)
        self.assertEqual(code, textwrap.dedent(before))
        self.assertEqual([s.reason for s in sites if s.action != "rewritten"], reasons)
