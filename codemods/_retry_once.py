"""A call tried once more in its own ``except`` handler, after a repair: a retry without a loop.

::

    try:
        return self.conn.execute(query)
    except OperationalError:
        self.reconnect()
        return self.conn.execute(query)

is the loop ``for attempt in range(2)`` whose handler re-raises after the second failure
and otherwise repairs (``before_retry``). :func:`retry_once` writes each such ``try`` as
that loop, lets the retry-loop codemod decide it as it decides any loop, and keeps the
loop form only where the codemod rewrites it; elsewhere the code stays as written and
the site is listed with the codemod's reason. So a site is rewritten exactly when the
equivalent loop would be, with the same notes.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from ._base import Site

SELECTOR = "retry-loop"
#: the counter of the loop form; never left in the code (a rewritten loop loses it)
COUNTER = "_durable_retry_once_attempt"

Run = Callable[[str], tuple[str, list[Site]]]


@dataclass(frozen=True)
class Candidate:
    """One ``try`` whose handler repeats the attempt: its lines and what the loop form
    inserts and drops (1-based lines of the original source)."""

    start: int  # the `try:` line
    end: int  # the handler's last line
    repeat: tuple[int, int]  # the repeated statement in the handler, dropped
    give_up_before: int  # the handler body's first line: the re-raise goes before it
    give_up_indent: int
    break_after: int  # the attempt's last line, when it does not return (0: it returns)
    break_indent: int
    indent: int
    repair: str  # the first repair call, for the reason ("" when there is none)


def find_candidates(source: str) -> list[Candidate]:
    """The retries-once of ``source`` (empty when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source.splitlines()
    out: list[Candidate] = []
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in _own_tries(func.body):
                found = _candidate(node, lines)
                if found is not None:
                    out.append(found)
    return sorted(out, key=lambda c: c.start)


def _own_tries(stmts: Sequence[ast.stmt]) -> Iterator[ast.Try]:
    """The ``try`` statements of a function body, outside loops and nested definitions."""
    for stmt in stmts:
        if isinstance(stmt, ast.Try):
            yield stmt
        if isinstance(
            stmt,
            ast.For
            | ast.AsyncFor
            | ast.While
            | ast.FunctionDef
            | ast.AsyncFunctionDef
            | ast.ClassDef,
        ):
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                blocks = [h.body for h in inner] if field == "handlers" else [inner]
                for block in blocks:
                    yield from _own_tries([s for s in block if isinstance(s, ast.stmt)])


def _candidate(node: ast.Try, lines: list[str]) -> Candidate | None:
    if len(node.handlers) != 1 or node.orelse or node.finalbody or len(node.body) != 1:
        return None
    handler = node.handlers[0]
    attempt = node.body[0]
    if handler.type is None or not handler.body or len(handler.body) > 4:
        return None
    if not _is_attempt(attempt) or ast.dump(handler.body[-1]) != ast.dump(attempt):
        return None
    repairs = handler.body[:-1]
    if not all(isinstance(s, ast.Expr) and _is_call(s.value) for s in repairs):
        return None  # only calls between the two tries (a log, a reconnect)
    if handler.name and handler.name in {
        n.id for n in ast.walk(attempt) if isinstance(n, ast.Name)
    }:
        return None
    end = handler.end_lineno or handler.lineno
    if not lines[node.lineno - 1].strip().startswith("try:") or attempt.lineno == node.lineno:
        return None
    if handler.body[0].lineno == handler.lineno:
        return None  # `except E: call()` on one line
    region = ast.Module(body=[node], type_ignores=[])
    if any(
        isinstance(n, ast.Constant | ast.JoinedStr) and (n.end_lineno or n.lineno) > n.lineno
        for n in ast.walk(region)
    ):
        return None  # a string over several lines: indenting it would change it
    repeat = handler.body[-1]
    returns = isinstance(attempt, ast.Return)
    return Candidate(
        start=node.lineno,
        end=end,
        repeat=(repeat.lineno, repeat.end_lineno or repeat.lineno),
        give_up_before=handler.body[0].lineno,
        give_up_indent=handler.body[0].col_offset,
        break_after=0 if returns else (attempt.end_lineno or attempt.lineno),
        break_indent=attempt.col_offset,
        indent=node.col_offset,
        repair=ast.unparse(repairs[-1]).splitlines()[0] if repairs else "",
    )


def _is_call(node: ast.expr | None) -> bool:
    return isinstance(node.value if isinstance(node, ast.Await) else node, ast.Call)


def _is_attempt(stmt: ast.stmt) -> bool:
    """``return <call>``, ``name = <call>`` or ``<call>``."""
    if isinstance(stmt, ast.Return):
        return _is_call(stmt.value)
    if isinstance(stmt, ast.Assign):
        return (
            len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and _is_call(stmt.value)
        )
    return isinstance(stmt, ast.Expr) and _is_call(stmt.value)


def loop_form(source: str, candidates: Sequence[Candidate]) -> tuple[str, dict[int, int]]:
    """``source`` with each candidate written as a two-attempt loop, and the line of each
    loop header in the new text -> its candidate's ``try`` line."""
    lines = source.splitlines(keepends=True)
    by_start = {c.start: c for c in candidates}
    out: list[str] = []
    headers: dict[int, int] = {}
    index = 0
    while index < len(lines):
        number = index + 1
        cand = by_start.get(number)
        if cand is None:
            out.append(lines[index])
            index += 1
            continue
        pad = " " * cand.indent
        headers["".join(out).count("\n") + 1] = cand.start
        out.append(f"{pad}for {COUNTER} in range(2):\n")
        for inner in range(cand.start, cand.end + 1):
            text = lines[inner - 1]
            if inner == cand.give_up_before:
                give_up = " " * (cand.give_up_indent + 4)
                out.append(f"{give_up}if {COUNTER} == 1:\n{give_up}    raise\n")
            if cand.repeat[0] <= inner <= cand.repeat[1]:
                continue
            out.append("    " + text if text.strip() else text)
            if inner == cand.break_after:
                out.append(" " * (cand.break_indent + 4) + "break\n")
        index = cand.end
    return "".join(out), headers


def retry_once(
    source: str, code: str, sites: list[Site], run: Run
) -> tuple[str, list[Site], list[Site]]:
    """The codemods' result for ``source`` with its retries-once decided as loops: the
    code, every site, and the sites of the retries-once left as written (listed).

    ``code`` and ``sites`` are what the codemods made of ``source``; ``run`` runs them on
    another text (sites on that text's lines). A candidate overlapping a site already
    found is left to that site."""
    taken = [(s.line, s.end_line or s.line) for s in sites]
    candidates = [
        c for c in find_candidates(source) if not any(a <= c.end and b >= c.start for a, b in taken)
    ]
    if not candidates:
        return code, sites, []
    decided = _decide(source, candidates, run)
    accepted = [c for c in candidates if decided[c.start].action == "rewritten"]
    listed = [_listed(c, decided[c.start]) for c in candidates if c not in accepted]
    if not accepted:
        return code, [*sites, *listed], listed
    text, headers = loop_form(source, accepted)
    new_code, new_sites = run(text)
    mapped = _to_source_lines(new_sites, headers, accepted, source, text)
    return new_code, [*mapped, *listed], listed


def _decide(source: str, candidates: Sequence[Candidate], run: Run) -> dict[int, Site]:
    text, headers = loop_form(source, candidates)
    _code, found = run(text)
    decided: dict[int, Site] = {}
    for start in headers.values():
        decided[start] = Site(SELECTOR, start, "skipped", "the loop form was not analysed")
    for header, start in headers.items():
        # the loop's own site, or the function's when the loop is its whole body
        around = [
            site
            for site in found
            if site.selector == SELECTOR and site.line <= header <= max(site.end_line, site.line)
        ]
        if around:
            decided[start] = max(around, key=lambda site: site.line)
    return decided


def _listed(cand: Candidate, site: Site) -> Site:
    after = f" after `{cand.repair}`" if cand.repair else ""
    return Site(
        SELECTOR,
        cand.start,
        "skipped",
        f"tried once more in its except handler{after}: {site.reason}",
        end_line=cand.end,
        policy=site.policy,
    )


def _to_source_lines(
    sites: list[Site],
    headers: dict[int, int],
    accepted: Sequence[Candidate],
    source: str,
    text: str,
) -> list[Site]:
    """Sites on the loop form's lines, on the source's lines."""
    import difflib

    ends = {c.start: c.end for c in accepted}
    mapping: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(a=source.splitlines(), b=text.splitlines(), autojunk=False)
    for _tag, a0, a1, b0, b1 in matcher.get_opcodes():
        for j in range(b0, b1):
            mapping[j + 1] = min(a0 + (j - b0), max(a1 - 1, a0)) + 1
    out: list[Site] = []
    for site in sites:
        start = headers.get(site.line)
        if start is not None:
            out.append(replace(site, line=start, end_line=ends[start]))
            continue
        line = mapping.get(site.line, site.line)
        end = mapping.get(site.end_line, site.end_line) if site.end_line else 0
        out.append(replace(site, line=line, end_line=end))
    return out
