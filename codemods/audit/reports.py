"""Report writers: terminal (rich table or one line per finding), GitHub
annotations, Markdown, JSON; SARIF and HTML live in :mod:`sarif` and :mod:`htmlreport`.

Every writer is a pure function of the :class:`AuditReport` and returns text,
except :func:`render_terminal`, which prints. Source text (paths, reasons,
excerpts) is never read as rich markup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from rich.text import Text

from codemods.audit.model import KIND_TITLES, AuditReport, Hotspot, Kind, Risk
from codemods.audit.triage import group_by, start_here

SCHEMA_VERSION = "2.0"
SCHEMA_FILE = "audit-report.v2.schema.json"
FORMATS = ("terminal", "github", "markdown", "json", "sarif", "html")
RISK_STYLE = {Risk.HIGH: "bold red", Risk.MEDIUM: "yellow", Risk.LOW: "green"}
RISK_COLOR = {Risk.HIGH: "#c62828", Risk.MEDIUM: "#ef8f00", Risk.LOW: "#2e7d32"}
KIND_HELP: dict[Kind, str] = {
    Kind.RETRY_LOOP: "A hand-rolled loop that retries a call on exceptions.",
    Kind.RETRY_DECORATOR: "A retry decorator (tenacity, backoff, retrying, stamina, home-made).",
    Kind.CELERY_RETRY: "A Celery task retried by autoretry_for or self.retry.",
    Kind.STATUS_TABLE: "A job table with a status column and retry bookkeeping.",
    Kind.STATUS_POLLER: "A worker loop that polls a job table by status.",
    Kind.CRON_SWEEPER: "A scheduled job that requeues stale or failed rows.",
    Kind.DEAD_LETTER: "Dead-letter tables, queues and code that parks failures.",
}
#: a GitHub pull-request comment holds 65,536 characters; the Markdown report stays under this
MARKDOWN_BUDGET = 60_000


def tool_version() -> str:
    """The installed durable-toolkit version ("0" when not installed)."""
    try:
        return metadata.version("durable-toolkit")
    except metadata.PackageNotFoundError:
        return "0"


def schema_path(name: str = SCHEMA_FILE) -> Path:
    """Path of a schema file shipped in ``codemods/audit/schemas``."""
    return Path(str(files("codemods.audit").joinpath("schemas", name)))


def one_line(text: str) -> str:
    return " ".join(text.split())


def message(h: Hotspot) -> str:
    """The one-line message of a finding: its reason and its fix."""
    text = one_line(h.reason)
    if h.group:
        text += f" (through `{h.group}`)"
    return f"{text}; fix: {h.fix.label()}"


def display_path(report: AuditReport, h_path: str, cwd: Path | None = None) -> str:
    """A finding's path as a linter prints it: relative to the current folder."""
    if not report.base:
        return h_path
    full = Path(report.base) / h_path
    try:
        return Path(os.path.relpath(full, cwd or Path.cwd())).as_posix()
    except ValueError:  # another drive on Windows
        return full.as_posix()


def counts_line(report: AuditReport) -> str:
    s = report.summary()
    r = s["by_risk"]
    text = (
        f"{s['hotspots']} hotspot{'s' if s['hotspots'] != 1 else ''} "
        f"(high {r['high']}, medium {r['medium']}, low {r['low']}) "
        f"in {s['files_scanned']} file{'s' if s['files_scanned'] != 1 else ''}"
    )
    extra = []
    if s["suppressed"]:
        extra.append(f"{s['suppressed']} suppressed by comments")
    if report.baseline_file is not None:
        extra.append(f"{s['in_baseline']} in the baseline not shown")
        if s["baseline_gone"]:
            extra.append(f"{s['baseline_gone']} baseline entries no longer found")
    if s["files_failed"]:
        extra.append(f"{s['files_failed']} files not parsed")
    return text + ("; " + ", ".join(extra) if extra else "")


# ----------------------------------------------------------------- terminal
def render_lines(report: AuditReport, cwd: Path | None = None) -> str:
    """One line per finding, ``path:line:col: risk kind message``, worst first, then totals.

    Columns are 1-based as in compilers and linters; parse errors are
    ``path:line:1: error not-parsed message``.
    """
    out = []
    for h in report.hotspots:
        path = display_path(report, h.path, cwd)
        out.append(f"{path}:{h.start_line}:{h.start_col + 1}: {h.risk.value} {h.kind.value} "
                   f"{message(h)}")  # fmt: skip
    for e in report.errors:
        path = display_path(report, e.path, cwd)
        out.append(f"{path}:{e.line or 1}:1: error not-parsed {one_line(e.message)}")
    out.append(f"Found {counts_line(report)}.")
    return "\n".join(out) + "\n"


def render_table(report: AuditReport, console: Console, limit: int | None = None) -> None:
    """The terminal report: totals, "start here", helpers, then the findings file by file."""
    s = report.summary()
    head = Text("durable audit ", style="bold")
    head.append(
        f"{report.root}: {s['files_scanned']} files, {s['lines_scanned']:,} lines "
        f"in {s['seconds']:.2f}s",
        style="",
    )
    console.print(head)
    risks = Text(f"{s['hotspots']} hotspots: ")
    for i, r in enumerate(reversed(Risk)):
        risks.append(", " if i else "")
        risks.append(f"{r.value} {s['by_risk'][r.value]}", style=RISK_STYLE[r])
    risks.append(
        f"; {s['fixable_by_codemod']} fixable by a codemod, "
        f"{s['retry_lines_removable']} lines of retry code would go"
    )
    console.print(risks)
    kinds = ", ".join(
        f"{KIND_TITLES[k].lower()} {s['by_kind'][k.value]}" for k in Kind if s["by_kind"][k.value]
    )
    if kinds:
        console.print(Text(f"by kind: {kinds}"))
    rest = counts_line(report).partition("; ")[2]
    if rest:
        console.print(Text(rest))
    items = start_here(report.hotspots)
    if items:
        console.print(Text("\nStart here", style="bold"))
        for i, item in enumerate(items, 1):
            line = Text(f"{i}. ")
            line.append(item.risk.value, style=RISK_STYLE[item.risk])
            line.append(f" {item.title}: {one_line(item.first.reason)} ({item.effort})")
            console.print(line)
    helpers = group_by(report.hotspots, "helper")
    if helpers:
        console.print(Text("\nBy helper", style="bold"))
        for g in helpers[:10]:
            files_n = len({h.path for h in g.hotspots})
            console.print(Text(f"  {g.title}: {len(g.hotspots)} sites in {files_n} files"))
    shown = report.hotspots if limit is None else report.hotspots[:limit]
    for g in group_by(shown, "file"):  # worst file first; "stylish", as eslint prints
        console.print(Text(f"\n{display_path(report, g.key)}", style="bold underline"))
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, justify="right")
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=3, overflow="fold")
        table.add_column(ratio=1, overflow="fold", style="dim")
        for h in sorted(g.hotspots, key=lambda h: h.start_line):
            table.add_row(
                Text(f"{h.start_line}:{h.start_col + 1}"),
                Text(h.risk.value, style=RISK_STYLE[h.risk]),
                Text(h.kind.value),
                Text(one_line(h.reason) + (f" (through {h.group})" if h.group else "")),
                Text(h.fix.label()),
            )
        console.print(table)
    if len(shown) < len(report.hotspots):
        console.print(Text(f"\n... and {len(report.hotspots) - len(shown)} more (--format html)"))
    for e in report.errors:
        line = Text("not parsed ", style="red")
        line.append(f"{display_path(report, e.path)}:{e.line or '?'}: {e.message}")
        console.print(line)


def render_terminal(report: AuditReport, console: Console, limit: int | None = None) -> None:
    """A rich table on a terminal; one line per finding otherwise (pipes, files, CI logs)."""
    if console.is_terminal:
        render_table(report, console, limit)
    else:
        console.file.write(render_lines(report))


# ----------------------------------------------------------------- github
_GH_LEVEL = {Risk.HIGH: "error", Risk.MEDIUM: "warning", Risk.LOW: "notice"}


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: AuditReport) -> str:
    """GitHub Actions workflow commands: one ``::error``/``::warning``/``::notice`` per finding.

    ``file`` is relative to the repository root, as GitHub expects.
    """
    out = []
    for h in report.hotspots:
        props = [f"file={_gh_prop(h.path)}", f"line={h.start_line}", f"endLine={h.end_line}"]
        if h.end_col:
            props += [f"col={h.start_col + 1}", f"endColumn={h.end_col + 1}"]
        props.append(f"title={_gh_prop(f'durable audit: {h.risk.value} {KIND_TITLES[h.kind]}')}")
        out.append(f"::{_GH_LEVEL[h.risk]} {','.join(props)}::{_gh_data(message(h))}")
    for e in report.errors:
        out.append(f"::warning file={_gh_prop(e.path)},line={e.line or 1},"
                   f"title=durable audit%3A not parsed::{_gh_data(e.message)}")  # fmt: skip
    return "\n".join(out) + ("\n" if out else "")


# ----------------------------------------------------------------- markdown
def _md(text: str, width: int = 240) -> str:
    text = one_line(text).replace("|", "\\|").replace("<", "&lt;")
    return text if len(text) <= width else text[: width - 1] + "…"


def _md_excerpt(h: Hotspot) -> list[str]:
    lang = "sql" if h.path.endswith(".sql") else "python" if h.path.endswith(".py") else ""
    body = "\n".join(line[:160] for line in h.excerpt.splitlines()[:20])
    fence = "````" if "```" in body else "```"
    return [f"{fence}{lang}", body, fence]


def github_blob_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``https://github.com/OWNER/REPO/blob/SHA`` inside a GitHub Actions job, else None."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    parts = [env.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA")]
    return f"{parts[0]}/{parts[1]}/blob/{parts[2]}" if all(parts) else None


def _md_location(h: Hotspot, blob_url: str | None) -> str:
    text = f"`{_md(h.location, 120)}`"
    if not blob_url:
        return text
    lines = f"L{h.start_line}" + (f"-L{h.end_line}" if h.end_line != h.start_line else "")
    return f"[{text}]({blob_url}/{quote(h.path)}#{lines})"


def render_markdown(
    report: AuditReport,
    top: int = 25,
    details_url: str | None = None,
    blob_url: str | None = None,
) -> str:
    """A pull-request comment: totals, "start here", groups, the top findings; the rest counted.

    Locations link to ``blob_url/PATH#Lstart-Lend`` when given (see :func:`github_blob_url`).
    Stays under :data:`MARKDOWN_BUDGET` characters whatever the number of findings.
    """
    s = report.summary()
    r = s["by_risk"]
    out = [
        f"## durable audit: {s['hotspots']} hotspots (high {r['high']}, medium {r['medium']}, "
        f"low {r['low']})",
        "",
        f"Scanned `{_md(report.root, 200)}`: {s['files_scanned']} files, "
        f"{s['lines_scanned']:,} lines. {counts_line(report).partition('; ')[2]}".rstrip(),
        "",
        f"Fixable by a codemod: **{s['fixable_by_codemod']}** "
        f"({s['retry_lines_removable']} of {s['retry_lines_total']} lines of retry code would go).",
        "",
    ]
    items = start_here(report.hotspots)
    if items:
        out += ["### Start here", ""]
        for i, item in enumerate(items, 1):
            out.append(f"{i}. **{item.risk.value}** {_md(item.title)}: {_md(item.first.reason)} "
                       f"(*{item.effort}*)")  # fmt: skip
        out.append("")
    helpers = group_by(report.hotspots, "helper")
    if helpers:
        out += [
            "### By helper",
            "",
            "| Helper | Sites | Files | Worst |",
            "| --- | ---: | ---: | --- |",
        ]
        for g in helpers[:10]:
            files_n = len({h.path for h in g.hotspots})
            out.append(
                f"| `{_md(g.title, 80)}` | {len(g.hotspots)} | {files_n} | {g.worst.value} |"
            )
        if len(helpers) > 10:
            out.append(f"| ... {len(helpers) - 10} more helpers | | | |")
        out.append("")
    by_file = group_by(report.hotspots, "file")
    if by_file:
        out += ["### By file", "", "| File | High | Medium | Low |", "| --- | ---: | ---: | ---: |"]
        for g in by_file[:10]:
            c = g.counts()
            out.append(f"| `{_md(g.title, 120)}` | {c['high']} | {c['medium']} | {c['low']} |")
        if len(by_file) > 10:
            out.append(f"| ... {len(by_file) - 10} more files | | | |")
        out.append("")
    shown = report.hotspots[:top]
    if shown:
        out += [
            f"### Top {len(shown)} findings",
            "",
            "| Risk | Kind | Location | Why | Fix |",
            "| --- | --- | --- | --- | --- |",
        ]
        for h in shown:
            out.append(f"| {h.risk.value} | {h.kind.value} | {_md_location(h, blob_url)} "
                       f"| {_md(h.reason)} | {_md(h.fix.label(), 80)} |")  # fmt: skip
        out.append("")
        out += ["<details><summary>Code of the top findings</summary>", ""]
        for h in shown[:10]:
            out += [f"**{h.risk.value}** {_md_location(h, blob_url)}", "", *_md_excerpt(h), ""]
        out += ["</details>", ""]
    rest = len(report.hotspots) - len(shown)
    if rest > 0:
        where = (
            f"[the full report]({details_url})"
            if details_url
            else "the full report (`durable audit --format html`)"
        )
        out.append(f"… and **{rest} more findings** in {where}.")
        out.append("")
    if report.errors:
        out.append(f"{len(report.errors)} files did not parse: " + ", ".join(
            f"`{_md(e.path, 100)}`" for e in report.errors[:10]
        ) + (" ..." if len(report.errors) > 10 else "") + ".")  # fmt: skip
    text = "\n".join(out).rstrip() + "\n"
    if len(text) > MARKDOWN_BUDGET and top > 5:
        return render_markdown(report, top // 2, details_url, blob_url)
    return text


# ----------------------------------------------------------------- json
def report_document(report: AuditReport) -> dict[str, Any]:
    """The JSON report as a dict (valid against ``audit-report.v2.schema.json``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "durable-toolkit", "version": tool_version()},
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "root": report.root,
        "base": report.base,
        "config_file": report.config_file,
        "baseline_file": report.baseline_file,
        "summary": report.summary(),
        "start_here": [
            {
                "title": i.title,
                "risk": i.risk.value,
                "effort": i.effort,
                "ids": [h.id for h in i.hotspots],
            }
            for i in start_here(report.hotspots)
        ],
        "groups": {
            by: [
                {
                    "key": g.key,
                    "worst": g.worst.value,
                    "count": len(g.hotspots),
                    "ids": [h.id for h in g.hotspots],
                }
                for g in group_by(report.hotspots, by)
            ]
            for by in ("helper", "file")
        },
        "hotspots": [h.to_dict() for h in report.hotspots],
        "errors": [e.to_dict() for e in report.errors],
    }


def render_json(report: AuditReport) -> str:
    """The versioned JSON report (see ``docs/audit.md``)."""
    return json.dumps(report_document(report), indent=2) + "\n"
