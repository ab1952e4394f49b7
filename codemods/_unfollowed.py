"""Retry loops the audit finds and the retry-loop codemod does not follow: listed, never lost.

The retry-loop codemod analyses loops of the shapes it knows (a ``try`` whose success
leaves the loop, a result-decided retry, a recursion). The audit's scanner
(:mod:`codemods.audit.pyscan`) recognises more loops as retries (poll loops that also
retry on errors, supervisors, loops whose ``try`` sits in a ``with``...). Each of those
is answered here as a ``skipped`` retry-loop site with the scanner's reading, so that
``durable codemod`` lists every retry site ``durable audit`` reports, and the audit's
"fixable by" for them is this same decision.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._base import Site

SELECTOR = "retry-loop"

_PATTERN_WORDS = {
    "for-range": "a counted `for` loop",
    "for-count": "a `for` loop over a counter",
    "for-custom-iterator": "a `for` loop over an attempt iterator",
    "while-true": "a `while True` loop",
    "while-true-counter": "a `while True` loop with a counter",
    "while-true-deadline": "a `while True` loop with a deadline",
    "while-counter": "a `while` loop on a counter",
    "while-condition": "a `while` loop on a condition",
}


def unfollowed_sites(source: str, filename: str, sites: Sequence[Site]) -> list[Site]:
    """A ``skipped`` site for each retry loop of ``source`` that the audit's scanner
    reports and that no site in ``sites`` covers. Never raises: a file the scanner
    cannot read gives no site."""
    from .audit.model import Kind  # the scanner loads only when retry-loop runs
    from .audit.pyscan import scan_python
    from .audit.scanner import worth_parsing

    data = source.encode("utf-8", errors="surrogatepass")
    if not worth_parsing(data):
        return []
    try:
        scanner = scan_python(filename, data)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    covered = [(s.line, s.end_line or s.line) for s in sites]
    out: list[Site] = []
    for hotspot in scanner.hotspots:
        if hotspot.kind is not Kind.RETRY_LOOP:
            continue
        start, end = hotspot.start_line, hotspot.end_line
        if any(a <= end and b >= start for a, b in covered):
            continue
        shape = _PATTERN_WORDS.get(hotspot.pattern, f"a `{hotspot.pattern}` loop")
        why = f": {hotspot.refusal}" if hotspot.refusal else ""
        reason = (
            f"{shape} that retries, in a shape the codemod does not follow{why};"
            " migrate it by hand (a @step with a RetryPolicy)"
        )
        out.append(Site(SELECTOR, start, "skipped", reason, end_line=end))
        covered.append((start, end))
    return out
