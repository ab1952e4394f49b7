"""The HTML report: one self-contained page (inline CSS, SVG and script; no network).

Summary first (cards, a chart by kind and risk, the "start here" list), then
the findings as a compact table that filters (risk, kind, directory, text),
sorts and groups (helper, file, directory, kind, risk) in the browser, 50
rows a page and groups collapsed, so 1,000 findings stay a short page. The
findings are embedded as JSON and written into the page with ``textContent``
only: code and paths are never interpreted as HTML.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jinja2

from codemods.audit.model import KIND_TITLES, AuditReport, Hotspot, Kind, Risk
from codemods.audit.reports import RISK_COLOR, counts_line, tool_version
from codemods.audit.triage import EFFORT_LABEL, directory, effort, start_here

PAGE_SIZE = 50


def _chart(report: AuditReport) -> dict[str, Any]:
    s = report.summary()["by_kind_and_risk"]
    top = max([sum(c.values()) for c in s.values()] + [1])
    width = 420.0
    rows = []
    for k in Kind:
        x = 0.0
        segs = []
        for r in (Risk.HIGH, Risk.MEDIUM, Risk.LOW):
            n = s[k.value][r.value]
            w = width * n / top
            if n:
                segs.append({"risk": r.value, "n": n, "x": round(x, 1), "w": round(w, 1),
                             "color": RISK_COLOR[r]})  # fmt: skip
            x += w
        rows.append({"title": KIND_TITLES[k], "kind": k.value, "total": sum(s[k.value].values()),
                     "segments": segs})  # fmt: skip
    return {"rows": rows, "width": width, "height": 26 * len(rows) + 10}


def _folders(report: AuditReport) -> list[str]:
    """Every folder holding a finding, and their parents (the directory filter's choices)."""
    found: set[str] = set()
    for h in report.hotspots:
        parts = directory(h).split("/")
        found.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(found)


def _finding(h: Hotspot) -> dict[str, Any]:
    return {
        "id": h.id,
        "risk": h.risk.value,
        "rank": h.risk.rank,
        "kind": h.kind.value,
        "pattern": h.pattern,
        "title": KIND_TITLES[h.kind],
        "path": h.path,
        "dir": directory(h),
        "line": h.start_line,
        "loc": h.location,
        "function": h.function or "",
        "reason": h.reason,
        "why": list(h.why),
        "fix": h.fix.label() + (f": {h.fix.note}" if h.fix.note else ""),
        "effort": effort(h),
        "effortLabel": EFFORT_LABEL[effort(h)],
        "refusal": h.refusal or "",
        "effects": list(h.side_effects),
        "group": h.group or "",
        "also": list(h.also_at),
        "excerpt": h.excerpt,
    }


def _script_json(data: object) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(report: AuditReport) -> str:
    """The standalone HTML page for ``report``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("codemods.audit", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("report.html.j2")
    data = [_finding(h) for h in report.hotspots]
    return template.render(
        report=report,
        summary=report.summary(),
        counts=counts_line(report),
        start=start_here(report.hotspots),
        errors=report.errors,
        chart=_chart(report),
        kinds=[(k.value, KIND_TITLES[k]) for k in Kind],
        dirs=_folders(report),
        colors={r.value: c for r, c in RISK_COLOR.items()},
        version=tool_version(),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        data=_script_json(data),
        page_size=PAGE_SIZE,
    )
