"""libcst codemods that turn hand-rolled retry logic into durable steps.

Each codemod is a :class:`libcst.codemod.VisitorBasedCodemodCommand`, so it runs
from ``durable codemod`` (see :mod:`codemods.runner`) and from libcst's own
``python -m libcst.tool codemod -x codemods.retry_loop.RetryLoopCodemod PATH``.
"""

from __future__ import annotations

from ._base import DurableCodemod, Site
from .backoff_retry import BackoffCodemod
from .decisions import decide
from .framework_retry import FrameworkRetryCodemod
from .google_retry import GoogleRetryCodemod
from .project_retry import ProjectRetryCodemod
from .retry_loop import RetryLoopCodemod
from .retry_package import RetryPackageCodemod
from .retrying_retry import RetryingCodemod
from .stamina_retry import StaminaCodemod
from .tenacity_retry import TenacityCodemod

#: selector (``--select``, and the name the audit gives the fix) -> codemod class,
#: in the order they run on a file
CODEMODS: dict[str, type[DurableCodemod]] = {
    "retry-loop": RetryLoopCodemod,
    "tenacity": TenacityCodemod,
    "backoff": BackoffCodemod,
    "retrying": RetryingCodemod,
    "retry": RetryPackageCodemod,
    "stamina": StaminaCodemod,
    "google-retry": GoogleRetryCodemod,
    "framework-retry": FrameworkRetryCodemod,
    "project-retry": ProjectRetryCodemod,
}

__all__ = [
    "CODEMODS",
    "BackoffCodemod",
    "DurableCodemod",
    "FrameworkRetryCodemod",
    "GoogleRetryCodemod",
    "ProjectRetryCodemod",
    "RetryLoopCodemod",
    "RetryPackageCodemod",
    "RetryingCodemod",
    "Site",
    "StaminaCodemod",
    "TenacityCodemod",
    "decide",
]
