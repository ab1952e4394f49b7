"""``durable workflows prune``: delete finished workflows older than a duration.

A command of its own module, registered on the ``workflows`` group by
:mod:`toolkit.cli`; it imports nothing from there.
"""

from __future__ import annotations

import json

import click

from .app import Durable
from .errors import DurableError
from .retention import describe_duration, parse_duration
from .storage.retention import FINISHED_STATUSES, PruneCounts


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _summary(counts: PruneCounts) -> str:
    return (
        f"{counts.workflows} workflow(s), {counts.steps} step(s), "
        f"{counts.events} event(s), {counts.messages} message(s)"
    )


@click.command("prune")
@click.option(
    "--database-url",
    envvar="DURABLE_DATABASE_URL",
    default=None,
    metavar="URL",
    help="Database of the workflow state (default: $DURABLE_DATABASE_URL, "
    "else sqlite:///.durable/state.db).",
)
@click.option(
    "--older-than",
    required=True,
    callback=_duration,
    metavar="DURATION",
    help="Delete workflows that finished longer ago than this: 7d, 12h, 30m, 90s, 1d12h.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(FINISHED_STATUSES),
    help="Only workflows that ended so (repeatable; default: succeeded, failed and cancelled).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def workflows_prune(
    database_url: str | None,
    older_than: float,
    statuses: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete finished workflows older than --older-than, with their steps, events and
    messages (failed ones are the dead letters). Enqueued and pending workflows are never
    deleted. Batches of 500, one short transaction each: safe while workers run."""
    chosen = [s for s in FINISHED_STATUSES if s in statuses] if statuses else FINISHED_STATUSES
    try:
        app = Durable(database_url)
    except DurableError as exc:
        raise click.ClickException(str(exc)) from exc
    per_status: dict[str, PruneCounts] = {}
    try:
        for status in chosen:
            per_status[status] = app.prune(older_than, status=status, dry_run=dry_run)
    except DurableError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        app.close()
    total = PruneCounts()
    for counts in per_status.values():
        total.add(counts)
    if as_json:
        shape = {
            "version": 1,
            "dry_run": dry_run,
            "older_than_seconds": older_than,
            "total": total.as_dict(),
            "by_status": {s: c.as_dict() for s, c in per_status.items()},
        }
        click.echo(json.dumps(shape))
        return
    if len(per_status) > 1:
        for status, counts in per_status.items():
            click.echo(f"{status}: {_summary(counts)}")
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {_summary(total)} ({', '.join(chosen)}; finished more than "
        f"{describe_duration(older_than)} ago)"
    )
