"""The ``durable audit`` command."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from codemods.audit.model import Risk
from codemods.audit.reports import (
    FORMATS,
    render_html,
    render_json,
    render_markdown,
    render_sarif,
    render_terminal,
)
from codemods.audit.scanner import run_audit


@click.command("audit")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="terminal",
    show_default=True,
    help="Report format.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice([r.value for r in Risk]),
    default=None,
    help="Exit 1 when a hotspot of this risk or worse is found.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: all cores).",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Skip files and folders matching GLOB (repeatable).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: when standard error is a terminal).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Terminal format: show at most this many rows.",
)
def audit(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    jobs: int | None,
    exclude: tuple[str, ...],
    progress: bool | None,
    limit: int | None,
) -> None:
    """Find retry hotspots under PATHS and rank them by risk, worst first.

    Exit status: 0, or 1 when --fail-on is given and a hotspot at that risk or
    worse exists. Files that do not parse are reported and skipped.
    """
    err = Console(stderr=True)
    show = err.is_terminal if progress is None else progress
    with Progress(
        TextColumn("[bold]scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task("scan", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = run_audit(list(paths), jobs=jobs, excludes=exclude, on_progress=on_progress)

    root = paths[0] if len(paths) == 1 else None
    if fmt == "terminal":
        if output is None:
            render_terminal(report, Console(), limit)
        else:
            with output.open("w", encoding="utf-8") as fh:
                render_terminal(report, Console(file=fh, width=160), limit)
    else:
        text = {
            "markdown": lambda: render_markdown(report),
            "json": lambda: render_json(report),
            "sarif": lambda: render_sarif(report, root),
            "html": lambda: render_html(report),
        }[fmt]()
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            s = report.summary()
            err.print(
                f"wrote {output} ({fmt}): {s['hotspots']} hotspots "
                f"(high {s['by_risk']['high']}, medium {s['by_risk']['medium']}, "
                f"low {s['by_risk']['low']}) in {s['files_scanned']} files"
            )
    if fail_on is not None:
        threshold = Risk(fail_on).rank
        worst = report.worst_risk()
        if worst is not None and worst.rank >= threshold:
            err.print(f"[red]failing: a {worst.value}-risk hotspot exists (--fail-on {fail_on})")
            raise SystemExit(1)
