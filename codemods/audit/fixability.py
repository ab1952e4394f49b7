"""'Fixable by': the codemods' own decision on each retry hotspot, never a second opinion.

:func:`apply_decisions` asks :func:`codemods.decide` about a file that holds a
retry hotspot (once per file) and sets each retry hotspot's fix from the
sites that overlap it: automatic iff one of them is ``rewritten``; otherwise
the fix note and ``refusal`` carry the codemod's reason. The fix note also
carries the retry policy the codemod read.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace

from codemods.audit.model import Fix, Hotspot, Kind

RETRY_KINDS = frozenset({Kind.RETRY_LOOP, Kind.RETRY_DECORATOR, Kind.CELERY_RETRY})


_REWRITABLE = re.compile(
    r"^(?:tenacity|backoff|retrying|retry|stamina|google\.api_core)\b|home-made|recursive|"
    r"^oslo\.service @(?:\w+\.)*RetryDecorator\b|"
    r"over (?:tenacity|backoff|retrying|stamina|google)"
)


def is_candidate(h: Hotspot) -> bool:
    """True when one of the codemods may rewrite ``h`` (so it is worth asking them).

    Loops and the libraries the codemods know (tenacity, backoff, retrying, retry,
    stamina, google-api-core, oslo.service's RetryDecorator); not Celery, AWSRetry,
    oslo.db, dramatiq or client policies, for which no codemod exists.
    """
    if h.kind is Kind.RETRY_LOOP:
        return True
    return h.kind is Kind.RETRY_DECORATOR and _REWRITABLE.search(h.pattern) is not None


def focus(source: str, tree: ast.Module, keep: list[tuple[int, int]]) -> str:
    """``source`` with every top-level def/class that overlaps none of ``keep`` blanked out.

    Lines keep their numbers (removed lines become empty), imports and module-level
    assignments stay, so the codemods read the kept sites exactly as in the file.
    """
    lines = source.splitlines(keepends=True)
    # the functions holding a site: a definition calling one stays (a recursion's counter
    # is private only when no caller passes it, codemods/_recursion.py)
    kept_names = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(a <= (node.end_lineno or node.lineno) and b >= node.lineno for a, b in keep)
    }
    alternatives = "|".join(map(re.escape, sorted(kept_names)))
    calls = re.compile(rf"\b(?:{alternatives})\(") if kept_names else None
    # functions the kept sites name (an on_giveup= or before= hook) stay: the codemods read them
    # (and so do the functions that use those, which decide whether a hook can be adapted)
    words = set(re.findall(r"\w+", "".join(line for a, b in keep for line in lines[a - 1 : b])))
    tops = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    named = words & tops

    def blank(body: list[ast.stmt], inner: bool) -> None:
        for node in body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            end = node.end_lineno or node.lineno
            if any(a <= end and b >= start for a, b in keep):
                # a class holding a site: only its members that hold one stay
                if (
                    isinstance(node, ast.ClassDef)
                    and not inner
                    and not any(a <= node.lineno and b >= end for a, b in keep)
                ):
                    blank(node.body, True)
                continue
            if any("RetryError" in line for line in lines[start - 1 : end]):
                continue  # the codemods look for code that handles exhausted retries
            if calls is not None and any(calls.search(line) for line in lines[start - 1 : end]):
                continue
            if (
                named
                and not inner
                and (
                    getattr(node, "name", "") in named
                    or named & set(re.findall(r"\w+", "".join(lines[start - 1 : end])))
                )
            ):
                continue
            for i in range(start - 1, min(end, len(lines))):
                lines[i] = "\n"

    blank(tree.body, False)
    return "".join(lines)


def _overlap(h: Hotspot, line: int, end_line: int) -> bool:
    return line <= h.end_line and max(end_line, line) >= h.start_line


def apply_decisions(
    hotspots: list[Hotspot], source: str, path: str, tree: ast.Module | None = None
) -> list[Hotspot]:
    """``hotspots`` with the fix of each retry hotspot set by the codemods' decision.

    The codemods are asked only about files with a candidate (a loop, a tenacity
    or backoff site), and only about the top-level definitions holding one
    (``tree`` given); every other retry hotspot is not automatic.
    """
    if not any(h.kind in RETRY_KINDS for h in hotspots):
        return hotspots
    keep = [(h.start_line, h.end_line) for h in hotspots if is_candidate(h)]
    sites = []
    if keep:
        from codemods import decide  # the codemods (libcst) load only when asked

        sites = decide(focus(source, tree, keep) if tree is not None else source, path)
    out: list[Hotspot] = []
    for h in hotspots:
        if h.kind not in RETRY_KINDS:
            out.append(h)
            continue
        near = [s for s in sites if _overlap(h, s.line, s.end_line)]
        # the site that starts closest to the hotspot is its own (nested sites come later)
        near.sort(key=lambda s: (abs(s.line - h.start_line), s.line))
        done = [s for s in near if s.action == "rewritten"]
        policy = next((s.policy for s in near if s.policy), "")
        read = f"; policy read: {policy}" if policy else ""
        if done:
            site = done[0]
            note = f"durable codemod --select {site.selector} rewrites it{read}"
            if h.fix.kind == "decorator":  # @transaction advice stays; the loop goes by codemod
                note = f"{h.fix.note}; durable codemod --select {site.selector}{read}"
            elif "idempotency_key" in h.fix.note:
                note += "; pass current_step().idempotency_key to the API"
            manual = h.fix.kind == "decorator"
            fix = Fix(
                h.fix.kind if manual else "codemod",
                h.fix.name if manual else site.selector,
                True,
                note,
            )
            out.append(replace(h, fix=fix, refusal=None))
        elif near:
            site = near[0]
            reason = site.reason or f"the {site.selector} codemod leaves it as it is"
            base = h.fix.note.split("; policy read:")[0]
            note = f"{base}; the {site.selector} codemod leaves it: {reason}{read}".lstrip("; ")
            out.append(
                replace(
                    h,
                    fix=replace(h.fix, automatic=False, note=note),
                    refusal=reason,
                    removable_lines=0,
                )
            )
        else:
            refusal = h.refusal or "no codemod handles this shape"
            fix = replace(h.fix, automatic=False)
            if fix.kind == "codemod":  # never name a codemod that does not report the site
                fix = Fix("manual", "@step", False, f"by hand: no codemod reports it ({refusal})")
            out.append(replace(h, fix=fix, refusal=refusal, removable_lines=0))
    return out
