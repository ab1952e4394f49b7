"""Inline suppression: ``# durable: ignore[kind, ...]`` or a bare ``# durable: ignore``.

The comment silences a finding when it is on the finding's first line, or
alone on the line just above it. ``--`` starts the comment in SQL files.
A bracketed list silences only those kinds; the bare form silences all.
"""

from __future__ import annotations

import re

from codemods.audit.model import Hotspot

_COMMENT = re.compile(r"(?:#|--)\s*durable:\s*ignore\b(?:\[([^\]]*)\])?")
_ALONE = re.compile(r"^\s*(?:#|--)")

#: every kind (the bare comment)
ALL: frozenset[str] = frozenset({"*"})


def ignored_kinds(line: str) -> frozenset[str] | None:
    """The kinds a line's suppression comment names, ``ALL`` for a bare one, None if none."""
    m = _COMMENT.search(line)
    if m is None:
        return None
    if m.group(1) is None:
        return ALL
    return frozenset(k.strip() for k in m.group(1).split(",") if k.strip())


def is_suppressed(h: Hotspot, lines: list[str]) -> bool:
    """True when a suppression comment on or above ``h``'s first line names its kind."""
    candidates = []
    if 0 < h.start_line <= len(lines):
        candidates.append(lines[h.start_line - 1])
    if 1 < h.start_line <= len(lines) + 1 and _ALONE.match(lines[h.start_line - 2]):
        candidates.append(lines[h.start_line - 2])
    for line in candidates:
        kinds = ignored_kinds(line)
        if kinds is not None and (kinds is ALL or h.kind.value in kinds):
            return True
    return False
