"""Report writers: terminal (rich), Markdown, JSON, SARIF 2.1.0 and HTML.

Every writer is a pure function of the :class:`AuditReport`; only the
terminal writer prints, the others return text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from rich.console import Console
from rich.table import Table
from rich.text import Text

from codemods.audit.model import KIND_TITLES, AuditReport, Hotspot, Kind, Risk

SCHEMA_VERSION = "1.0"
FORMATS = ("terminal", "markdown", "json", "sarif", "html")
RISK_STYLE = {Risk.HIGH: "bold red", Risk.MEDIUM: "yellow", Risk.LOW: "green"}
RISK_COLOR = {Risk.HIGH: "#c62828", Risk.MEDIUM: "#ef8f00", Risk.LOW: "#2e7d32"}
SARIF_LEVEL = {Risk.HIGH: "error", Risk.MEDIUM: "warning", Risk.LOW: "note"}
KIND_HELP: dict[Kind, str] = {
    Kind.RETRY_LOOP: "A hand-rolled loop that retries a call on exceptions.",
    Kind.RETRY_DECORATOR: "A retry decorator (tenacity, backoff, retrying, stamina, home-made).",
    Kind.CELERY_RETRY: "A Celery task retried by autoretry_for or self.retry.",
    Kind.STATUS_TABLE: "A job table with a status column and retry bookkeeping.",
    Kind.STATUS_POLLER: "A worker loop that polls a job table by status.",
    Kind.CRON_SWEEPER: "A scheduled job that requeues stale or failed rows.",
    Kind.DEAD_LETTER: "Dead-letter tables, queues and code that parks failures.",
}


def tool_version() -> str:
    """The installed durable-toolkit version ("0" when not installed)."""
    try:
        return metadata.version("durable-toolkit")
    except metadata.PackageNotFoundError:
        return "0"


def schema_path(name: str = "audit-report.v1.schema.json") -> Path:
    """Path of a schema file shipped in ``codemods/audit/schemas``."""
    return Path(str(files("codemods.audit").joinpath("schemas", name)))


def _location(h: Hotspot) -> str:
    return f"{h.path}:{h.start_line}" + (f"-{h.end_line}" if h.end_line != h.start_line else "")


# ----------------------------------------------------------------- terminal
def render_terminal(report: AuditReport, console: Console, limit: int | None = None) -> None:
    """Print the summary and a table of hotspots, worst first."""
    s = report.summary()
    console.print(
        f"[bold]durable audit[/] {report.root}: {s['files_scanned']} files, "
        f"{s['lines_scanned']:,} lines in {s['seconds']:.2f}s"
    )
    risks = "  ".join(
        f"[{RISK_STYLE[r]}]{r.value} {s['by_risk'][r.value]}[/]" for r in reversed(Risk)
    )
    console.print(
        f"{s['hotspots']} hotspots: {risks}; {s['fixable_by_codemod']} fixable by a codemod, "
        f"{s['retry_lines_removable']} lines of retry code would go"
    )
    kinds = ", ".join(
        f"{KIND_TITLES[k].lower()} {s['by_kind'][k.value]}" for k in Kind if s["by_kind"][k.value]
    )
    if kinds:
        console.print(f"by kind: {kinds}")
    if report.hotspots:
        wide = console.width >= 140
        table = Table(show_lines=False, header_style="bold")
        table.add_column("Risk", no_wrap=True)
        table.add_column("Kind", no_wrap=True)
        table.add_column("Location", overflow="fold", ratio=1)
        if wide:
            table.add_column("Function", overflow="fold")
        table.add_column("Fix", overflow="fold")
        table.add_column("Why", overflow="fold", ratio=2)
        shown = report.hotspots if limit is None else report.hotspots[:limit]
        for h in shown:
            cells = [
                Text(h.risk.value, style=RISK_STYLE[h.risk]),
                h.kind.value,
                _location(h),
                *([h.function or ""] if wide else []),
                h.fix.label(),
                h.reason,
            ]
            table.add_row(*cells)
        console.print(table)
        if limit is not None and len(report.hotspots) > limit:
            console.print(f"... and {len(report.hotspots) - limit} more (use --format json|html)")
    for e in report.errors:
        console.print(f"[red]not parsed[/] {e.path}:{e.line or '?'}: {e.message}")


# ----------------------------------------------------------------- markdown
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: AuditReport) -> str:
    """A Markdown document: summary, a table by kind and risk, then each hotspot."""
    s = report.summary()
    out = [
        "# durable audit",
        "",
        f"Scanned `{report.root}`: {s['files_scanned']} files, {s['lines_scanned']:,} lines.",
        "",
        f"- **{s['hotspots']} hotspots**: high {s['by_risk']['high']}, medium "
        f"{s['by_risk']['medium']}, low {s['by_risk']['low']}",
        f"- fixable by a codemod: {s['fixable_by_codemod']}; lines of retry code that would go: "
        f"{s['retry_lines_removable']} (of {s['retry_lines_total']})",
        f"- files that did not parse: {s['files_failed']}",
        "",
        "| Kind | High | Medium | Low |",
        "| --- | ---: | ---: | ---: |",
    ]
    for k in Kind:
        c = s["by_kind_and_risk"][k.value]
        out.append(f"| {KIND_TITLES[k]} | {c['high']} | {c['medium']} | {c['low']} |")
    out += ["", "## Hotspots (worst first)", ""]
    out += [
        "| Risk | Kind | Location | Function | Fix | Why |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for h in report.hotspots:
        out.append(
            f"| {h.risk.value} | {h.kind.value} | `{_location(h)}` | {_md_cell(h.function or '')} "
            f"| {_md_cell(h.fix.label())} | {_md_cell(h.reason)} |"
        )
    for i, h in enumerate(report.hotspots, 1):
        out += [
            "",
            f"### {i}. {h.risk.value}: {KIND_TITLES[h.kind]} in `{_location(h)}`",
            "",
            f"{h.reason}. Fix: {h.fix.label()}" + (f" ({h.fix.note})" if h.fix.note else "") + ".",
        ]
        if h.refusal:
            out.append(f"Not rewritten automatically: {h.refusal}.")
        lang = "sql" if h.path.endswith(".sql") else "python" if h.path.endswith(".py") else ""
        fence = "````" if "```" in h.excerpt else "```"
        out += ["", f"{fence}{lang}", h.excerpt, fence]
    if report.errors:
        out += ["", "## Files that did not parse", ""]
        out += [f"- `{e.path}:{e.line or '?'}`: {e.message}" for e in report.errors]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------- json
def report_document(report: AuditReport) -> dict[str, Any]:
    """The JSON report as a dict (valid against ``audit-report.v1.schema.json``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "durable-toolkit", "version": tool_version()},
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "root": report.root,
        "summary": report.summary(),
        "hotspots": [h.to_dict() for h in report.hotspots],
        "errors": [e.to_dict() for e in report.errors],
    }


def render_json(report: AuditReport) -> str:
    """The versioned JSON report (see ``docs/audit.md``)."""
    return json.dumps(report_document(report), indent=2) + "\n"


# ----------------------------------------------------------------- sarif
def sarif_document(report: AuditReport, root: Path | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one rule per kind, one result per hotspot.

    Paths are relative URIs against ``%SRCROOT%`` (the scanned folder), as
    GitHub code scanning expects; parse errors become tool notifications.
    """
    rules = [
        {
            "id": f"durable/{k.value}",
            "name": KIND_TITLES[k].title().replace(" ", "").replace("-", ""),
            "shortDescription": {"text": KIND_TITLES[k]},
            "fullDescription": {"text": KIND_HELP[k]},
            "defaultConfiguration": {"level": "warning"},
            "help": {"text": KIND_HELP[k] + " Run `durable audit` for the fix of each site."},
        }
        for k in Kind
    ]
    index = {k: i for i, k in enumerate(Kind)}
    results = []
    for h in report.hotspots:
        msg = f"{h.risk.value} risk: {h.reason}. Fix: {h.fix.label()}."
        if h.refusal:
            msg += f" Not rewritten automatically: {h.refusal}."
        results.append(
            {
                "ruleId": f"durable/{h.kind.value}",
                "ruleIndex": index[h.kind],
                "level": SARIF_LEVEL[h.risk],
                "message": {"text": msg},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": quote(h.path), "uriBaseId": "%SRCROOT%"},
                            "region": {
                                "startLine": h.start_line,
                                "endLine": h.end_line,
                                "snippet": {"text": h.excerpt},
                            },
                        },
                        **(
                            {"logicalLocations": [{"fullyQualifiedName": h.function}]}
                            if h.function
                            else {}
                        ),
                    }
                ],
                "partialFingerprints": {"durableHotspot/v1": h.id},
                "properties": {
                    "risk": h.risk.value,
                    "pattern": h.pattern,
                    "fix": h.fix.label(),
                    "fixable": h.fixable,
                    "tags": [h.kind.value, f"risk-{h.risk.value}"],
                },
            }
        )
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{e.path}: {e.message}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": quote(e.path), "uriBaseId": "%SRCROOT%"},
                        **({"region": {"startLine": e.line}} if e.line else {}),
                    }
                }
            ],
        }
        for e in report.errors
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "durable-audit",
                "organization": "durable-toolkit",
                "semanticVersion": tool_version(),
                "rules": rules,
            }
        },
        "results": results,
        "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
    }
    if root is not None and root.is_dir():
        run["originalUriBaseIds"] = {"%SRCROOT%": {"uri": root.resolve().as_uri() + "/"}}
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    }


def render_sarif(report: AuditReport, root: Path | None = None) -> str:
    """SARIF 2.1.0 text for GitHub code scanning."""
    return json.dumps(sarif_document(report, root), indent=2) + "\n"


# ----------------------------------------------------------------- html
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


def render_html(report: AuditReport) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts, no network)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("codemods.audit", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("report.html.j2")
    return template.render(
        report=report,
        summary=report.summary(),
        hotspots=report.hotspots,
        errors=report.errors,
        chart=_chart(report),
        titles={k.value: t for k, t in KIND_TITLES.items()},
        colors={r.value: c for r, c in RISK_COLOR.items()},
        version=tool_version(),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        location=_location,
    )
