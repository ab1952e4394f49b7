"""``durable codemod``: the command line of the codemods (a click command).

Prints a unified diff by default and changes nothing; ``--write`` rewrites the
files in place. The summary (to stderr, so the diff can be piped to a file)
lists files scanned, rewritten, skipped and failed, and every site that was not
rewritten with its reason.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

import click
from rich.console import Console
from rich.table import Table

from . import CODEMODS
from .runner import FileResult, run


def _selectors(value: str | None) -> list[str]:
    if not value:
        return list(CODEMODS)
    chosen = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in CODEMODS]
    if unknown:
        raise click.BadParameter(
            f"unknown codemod {unknown[0]!r}; choose from {', '.join(CODEMODS)}",
            param_hint="--select",
        )
    return [s for s in CODEMODS if s in chosen]  # always in the canonical order


@click.command("codemod")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--diff/--write", "diff", default=True, help="Print a diff (default) or rewrite.")
@click.option(
    "--select",
    metavar="NAMES",
    help=f"Comma-separated codemods to run (default all: {','.join(CODEMODS)}).",
)
@click.option("--jobs", "-j", type=int, default=None, help="Worker processes (default: CPUs).")
@click.option("--annotate", is_flag=True, help="Leave a '# durable: ...' comment where skipped.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, no diff.")
@click.option("--quiet", "-q", is_flag=True, help="Only the totals, not each skipped site.")
def codemod(
    paths: tuple[str, ...],
    diff: bool,
    select: str | None,
    jobs: int | None,
    annotate: bool,
    exclude: tuple[str, ...],
    as_json: bool,
    quiet: bool,
) -> None:
    """Rewrite hand-rolled retry loops, tenacity and backoff retries into durable steps.

    Without --write nothing is changed. Running it twice changes nothing more.
    """
    selectors = _selectors(select)
    workers = jobs if jobs and jobs > 0 else (os.cpu_count() or 1)
    results: list[FileResult] = []
    out = sys.stdout
    for result in run(
        paths, selectors, write=not diff, jobs=workers, annotate=annotate, exclude=exclude
    ):
        results.append(result)
        if diff and result.diff and not as_json:
            out.write(result.diff)
    if as_json:
        click.echo(json.dumps(report(results, write=not diff), indent=2))
        return
    print_summary(results, write=not diff, quiet=quiet)


def report(results: list[FileResult], write: bool) -> dict[str, object]:
    """The run as a JSON-ready dict: totals, then each file with its sites."""
    statuses = Counter(r.status for r in results)
    actions = Counter(s.action for r in results for s in r.sites)
    return {
        "mode": "write" if write else "diff",
        "files": {"scanned": len(results), **{str(k): v for k, v in statuses.items()}},
        "sites": dict(actions),
        "results": [r.as_dict() for r in results if r.sites or r.status != "unchanged"],
    }


def print_summary(results: list[FileResult], write: bool, quiet: bool = False) -> None:
    """Totals and every site not rewritten, on stderr."""
    console = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())
    statuses = Counter(r.status for r in results)
    actions = Counter(s.action for r in results for s in r.sites)
    if not quiet:
        rows: list[tuple[str, str, str, str]] = [
            (f"{result.path}:{site.line}", site.selector, site.action, site.reason)
            for result in results
            for site in result.sites
            if site.action != "rewritten"
        ]
        rows += [(r.path, "-", "failed", r.error or "") for r in results if r.status == "failed"]
        if rows and console.is_terminal:
            table = Table(title="Sites not rewritten")
            for column in ("file:line", "codemod", "action", "reason"):
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(*row)
            console.print(table)
        else:  # one grep-friendly line per site
            for where, selector, action, reason in rows:
                console.print(f"{where}: {selector}: {action}: {reason}", markup=False)
    verb = "rewritten" if write else "would be rewritten"
    console.print(
        f"{len(results)} files scanned: {statuses['rewritten']} {verb}, "
        f"{statuses['unchanged']} unchanged, {statuses['generated']} generated, "
        f"{statuses['excluded']} excluded, {statuses['failed']} failed to parse or transform"
    )
    console.print(
        f"sites: {actions['rewritten']} rewritten, {actions['skipped']} skipped, "
        f"{actions['kept']} kept (option without an equivalent)"
    )
