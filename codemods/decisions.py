"""The codemods' decision on each retry site of a file, without writing anything.

:func:`decide` is what ``durable audit`` asks to fill a hotspot's "fixable by": the
same code that rewrites decides, so the audit and the codemod never disagree.
"""

from __future__ import annotations

from ._base import Site


def decide(source: str, path: str | None = None) -> list[Site]:
    """One :class:`Site` per retry site the codemods find in ``source``, in line order.

    Runs every codemod in memory (nothing is written). ``Site.action`` is
    ``rewritten`` when ``durable codemod`` would rewrite the site, else ``reason``
    says why not; ``line``..``end_line`` is the site's range and ``policy`` the
    policy read. Never raises: a file that does not parse (or a codemod failure)
    gives an empty list.
    """
    from .runner import transform_source  # runner imports the codemods package

    try:
        _code, sites = transform_source(source, filename=path or "<string>")
    except Exception:
        return []
    return sites


__all__ = ["decide"]
