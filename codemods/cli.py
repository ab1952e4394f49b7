"""``durable codemod``: the command line of the codemods (a click command).

Prints a unified diff by default and changes nothing; ``--write`` rewrites the
files in place; ``--check`` changes nothing and exits 1 when something would
change. The summary (to stderr, so the diff can be piped to a file) lists files
scanned, rewritten, skipped and failed, every site that was not rewritten with
its reason, and the notes of the rewritten ones. Source text is never read as
rich markup.

Exit codes: 0 done; 1 ``--check`` found files to rewrite; 2 bad usage; 3 a file
could not be read, parsed or transformed (the others were processed).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from . import CODEMODS
from .runner import FileResult, iter_python_files, run

#: exit codes (documented in docs/codemods.md)
EXIT_OK, EXIT_PENDING, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
#: show a progress bar from this many files on (on a terminal only)
_PROGRESS_FROM = 50


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
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing, print no diff; exit 1 if a file would be rewritten (for CI).",
)
def codemod(
    paths: tuple[str, ...],
    diff: bool,
    select: str | None,
    jobs: int | None,
    annotate: bool,
    exclude: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    check: bool,
) -> None:
    """Rewrite hand-rolled retry loops, tenacity and backoff retries into durable steps.

    Without --write nothing is changed. Running it twice changes nothing more.
    Exit codes: 0 done, 1 --check found files to rewrite, 2 bad usage, 3 a file
    could not be read, parsed or transformed.
    """
    selectors = _selectors(select)
    write = not diff and not check
    workers = jobs if jobs and jobs > 0 else (os.cpu_count() or 1)
    results: list[FileResult] = []
    out = sys.stdout
    console = _console()
    total = 0
    if console.is_terminal and not as_json:
        total = sum(1 for _ in iter_python_files(paths))
    stream = run(paths, selectors, write=write, jobs=workers, annotate=annotate, exclude=exclude)
    with Progress(console=console, transient=True, disable=total < _PROGRESS_FROM) as progress:
        task = progress.add_task("codemod", total=total)
        for result in stream:
            results.append(result)
            progress.advance(task)
            if diff and not check and result.diff and not as_json:
                out.write(result.diff)
    if as_json:
        click.echo(json.dumps(report(results, write=write), indent=2))
    else:
        print_summary(results, write=write, quiet=quiet)
    sys.exit(exit_code(results, check))


def exit_code(results: list[FileResult], check: bool) -> int:
    """3 if a file failed, else 1 with ``check`` when a file would be rewritten, else 0."""
    if any(r.status == "failed" for r in results):
        return EXIT_FAILED
    if check and any(r.status == "rewritten" for r in results):
        return EXIT_PENDING
    return EXIT_OK


def _console() -> Console:
    """stderr, with source text never read as markup or emoji codes (``x.py:100:``)."""
    return Console(
        stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=not sys.stderr.isatty()
    )


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
    console = _console()
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
                table.add_row(*(Text(cell) for cell in row))
            console.print(table)
        else:  # one grep-friendly line per site
            for where, selector, action, reason in rows:
                console.print(Text(f"{where}: {selector}: {action}: {reason}"))
        for result in results:
            for site in result.sites:
                for note in site.notes if site.action == "rewritten" else ():
                    console.print(Text(f"{result.path}:{site.line}: {site.selector}: note: {note}"))
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
