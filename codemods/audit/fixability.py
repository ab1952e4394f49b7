"""'Fixable by': the codemods' own decision on each retry hotspot, never a second opinion.

:func:`apply_decisions` asks :func:`codemods.decide` about a file that holds a
retry hotspot (once per file) and sets each retry hotspot's fix from the
sites that overlap it: automatic iff one of them is ``rewritten``; otherwise
the fix note and ``refusal`` carry the codemod's reason. The fix note also
carries the retry policy the codemod read.
"""

from __future__ import annotations

from dataclasses import replace

from codemods.audit.model import Fix, Hotspot, Kind

RETRY_KINDS = frozenset({Kind.RETRY_LOOP, Kind.RETRY_DECORATOR, Kind.CELERY_RETRY})


def _overlap(h: Hotspot, line: int, end_line: int) -> bool:
    return line <= h.end_line and max(end_line, line) >= h.start_line


def apply_decisions(hotspots: list[Hotspot], source: str, path: str) -> list[Hotspot]:
    """``hotspots`` with the fix of each retry hotspot set by the codemods' decision."""
    if not any(h.kind in RETRY_KINDS for h in hotspots):
        return hotspots
    from codemods import decide  # the codemods (libcst) load only for files with a candidate

    sites = decide(source, path)
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
            keep = h.fix.kind == "decorator"
            fix = Fix(
                h.fix.kind if keep else "codemod", h.fix.name if keep else site.selector, True, note
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
            out.append(
                replace(h, fix=replace(h.fix, automatic=False), refusal=refusal, removable_lines=0)
            )
    return out
