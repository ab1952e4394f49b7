"""Excerpts that show the retry lines of a long site, not only its head.

A site longer than the excerpt (a decorated 80-line function, a sweeper, a
long loop) is shown as its first lines (the ``def``, the decorator or the
loop header), a ``...`` line, then the window of lines with the most retry
vocabulary (sleep, except, raise, retry, attempt, status updates...).
Guarantees: the excerpt's first line is the site's first line; it has at most
``max_lines`` code lines plus marker lines saying how many lines were left out.
"""

from __future__ import annotations

import re

EXCERPT_LINES = 14
_HEAD = 2
_WEIGHTS = (
    (re.compile(r"\b(?:time\.)?sleep\(|backoff|jitter|wait_\w+\("), 3),
    (re.compile(r"\bretr(?:y|ies|ied|ying)\w*|attempts?\b|tries\b|max_tries", re.I), 3),
    (re.compile(r"^\s*except\b|^\s*raise\b|\bcontinue\b|\bbreak\b"), 2),
    (re.compile(r"\b(?:status|state)\b|\bUPDATE\b|\bSKIP LOCKED\b|dead|failed", re.I), 2),
    (re.compile(r"^\s*(?:for|while|try)\b"), 1),
    (re.compile(r"\.(?:post|put|patch|delete|send|publish|charge|create)\("), 1),
)


def _score(line: str) -> int:
    return sum(weight for pattern, weight in _WEIGHTS if pattern.search(line))


def site_excerpt(lines: list[str], start: int, end: int, max_lines: int = EXCERPT_LINES) -> str:
    """The excerpt of ``lines[start-1:end]`` (1-based, inclusive), at most ``max_lines`` lines."""
    end = min(end, len(lines))
    span = end - start + 1
    if span <= max_lines:
        return "\n".join(line.rstrip() for line in lines[start - 1 : end])
    size = max_lines - _HEAD
    scores = [_score(line) for line in lines[start - 1 + _HEAD : end]]
    best, best_at, window = -1, 0, sum(scores[:size])
    for i in range(len(scores) - size + 1):
        if i:
            window += scores[i + size - 1] - scores[i - 1]
        if window > best:
            best, best_at = window, i
    first = start + _HEAD + best_at  # 1-based first line of the window
    out = [line.rstrip() for line in lines[start - 1 : start - 1 + _HEAD]]
    if first > start + _HEAD:
        out.append(f"... ({first - start - _HEAD} lines)")
    out += [line.rstrip() for line in lines[first - 1 : first - 1 + size]]
    last = first + size - 1
    if last < end:
        out.append(f"... ({end - last} more lines)")
    return "\n".join(out)
