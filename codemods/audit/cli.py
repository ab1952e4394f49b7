"""The ``durable audit`` command.

Exit status: 0 no failing finding; 1 a finding at or above ``--fail-on``
(findings in the baseline never count); 2 a usage error, a bad
``[tool.durable.audit]`` table or an unreadable baseline.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from codemods.audit.baseline import BaselineError, read_baseline, write_baseline
from codemods.audit.config import (
    AuditConfig,
    ConfigError,
    find_config,
    load_config,
    parse_kinds,
    parse_risk,
)
from codemods.audit.htmlreport import render_html
from codemods.audit.model import AuditReport, Kind, Risk
from codemods.audit.pipeline import audit as run_pipeline
from codemods.audit.reports import (
    FORMATS,
    counts_line,
    github_blob_url,
    render_github,
    render_json,
    render_lines,
    render_markdown,
    render_table,
)
from codemods.audit.sarif import render_sarif

RISKS = [r.value for r in Risk]


class BadInput(click.ClickException):
    """A bad configuration, kind or baseline: one ``Error: ...`` line, exit status 2."""

    exit_code = 2


KINDS = [k.value for k in Kind]


def _config(
    paths: tuple[Path, ...],
    config_file: Path | None,
    no_config: bool,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    min_risk: str | None,
    include_tests: bool | None,
    fail_on: str | None,
    baseline: Path | None,
) -> AuditConfig:
    """The project's settings with the command-line options applied over them."""
    found = None if no_config else (config_file or find_config(paths[0]))
    config = load_config(found) if found else AuditConfig()
    changes: dict[str, object] = {}
    if select:
        changes["select"] = parse_kinds(select, "--select")
    if ignore:
        changes["ignore"] = config.ignore | parse_kinds(ignore, "--ignore")
    if min_risk:
        changes["min_risk"] = parse_risk(min_risk, "--min-risk")
    if include_tests is not None:
        changes["include_tests"] = include_tests
    if fail_on:
        changes["fail_on"] = parse_risk(fail_on, "--fail-on")
    if baseline is not None:
        changes["baseline"] = baseline
    return replace(config, **changes)  # type: ignore[arg-type]


def _render(fmt: str, report: AuditReport, limit: int | None, details_url: str | None) -> str:
    if fmt == "terminal":
        return render_lines(report)
    if fmt == "github":
        return render_github(report)
    if fmt == "markdown":
        return render_markdown(report, limit or 25, details_url, github_blob_url())
    if fmt == "json":
        return render_json(report)
    if fmt == "sarif":
        return render_sarif(report)
    return render_html(report)


@click.command("audit")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="terminal",
    show_default=True,
    help="Report format (terminal: a table on a terminal, one line per finding otherwise).",
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
    type=click.Choice(RISKS),
    default=None,
    help="Exit 1 when a new finding of this risk or worse exists.",
)
@click.option("--select", multiple=True, metavar="KIND", help="Report only these kinds.")
@click.option("--ignore", multiple=True, metavar="KIND", help="Do not report these kinds.")
@click.option(
    "--min-risk", type=click.Choice(RISKS), default=None, help="Report only this risk or worse."
)
@click.option(
    "--include-tests/--exclude-tests",
    default=None,
    help="Scan test files too (default: excluded).",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Report only findings not recorded in this baseline file.",
)
@click.option(
    "--write-baseline",
    "write_baseline_flag",
    is_flag=True,
    help="Record every current finding in the --baseline file and exit 0.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Read [tool.durable.audit] from this pyproject.toml (default: found upward).",
)
@click.option("--no-config", is_flag=True, help="Ignore every pyproject.toml.")
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
    help="Terminal table and Markdown: show at most this many findings.",
)
@click.option(
    "--details-url",
    metavar="URL",
    default=None,
    help="Markdown: link the findings left out to this URL (the full report).",
)
def audit(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    min_risk: str | None,
    include_tests: bool | None,
    baseline: Path | None,
    write_baseline_flag: bool,
    config_file: Path | None,
    no_config: bool,
    jobs: int | None,
    exclude: tuple[str, ...],
    progress: bool | None,
    limit: int | None,
    details_url: str | None,
) -> None:
    """Find retry hotspots under PATHS and rank them by risk, worst first.

    Exit status: 0; 1 when a new finding at or above --fail-on exists;
    2 for a usage error, a bad [tool.durable.audit] table or baseline.
    """
    err = Console(stderr=True, soft_wrap=True)  # messages are never folded
    try:
        config = _config(paths, config_file, no_config, select, ignore, min_risk,
                         include_tests, fail_on, baseline)  # fmt: skip
        if write_baseline_flag and config.baseline is None:
            raise BadInput("--write-baseline needs --baseline FILE (or baseline = in the config)")
        known = None
        if config.baseline is not None and not write_baseline_flag:
            known = read_baseline(config.baseline)
    except (ConfigError, BaselineError) as exc:
        raise BadInput(str(exc)) from None

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

        if config.baseline is not None:  # never audit the baseline file itself
            exclude = (*exclude, config.baseline.name)
        report = run_pipeline(list(paths), config, jobs=jobs, excludes=exclude,
                              baseline_ids=known, on_progress=on_progress)  # fmt: skip
    if config.baseline is not None and known is not None:
        report.baseline_file = str(config.baseline)

    if write_baseline_flag:
        assert config.baseline is not None
        write_baseline(config.baseline, report.hotspots)
        err.print(
            f"wrote baseline {config.baseline}: {len(report.hotspots)} findings", markup=False
        )
        return

    out = Console() if output is None else None
    if fmt == "terminal" and out is not None and out.is_terminal:
        render_table(report, out, limit)
    else:
        text = _render(fmt, report, limit, details_url)
        if output is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            output.write_text(text, encoding="utf-8")
            err.print(
                f"wrote {output} ({fmt}): {counts_line(report)}", markup=False, highlight=False
            )
    if config.fail_on is not None:
        worst = report.worst_risk()
        if worst is not None and worst.rank >= config.fail_on.rank:
            err.print(
                f"failing: a new {worst.value}-risk finding exists "
                f"(--fail-on {config.fail_on.value})",
                style="red",
                markup=False,
            )
            raise SystemExit(1)
