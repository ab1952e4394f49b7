"""The ``durable`` command line.

Commands that belong to other packages (``codemod`` from :mod:`codemods`,
``adapters``) are found by name when they are called, so :mod:`toolkit`
never imports them at module load.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click

from .app import Durable
from .cli_retention import workflows_prune
from .errors import DurableError
from .records import STATUSES

# name -> "module:attribute" of a click command, imported only when used.
LAZY_COMMANDS: dict[str, str] = {
    "codemod": "codemods.cli:codemod",
    "audit": "codemods.audit.cli:audit",
    "dlq": "adapters.cli:dlq",
}


class LazyGroup(click.Group):
    """A click group whose listed subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                raise click.ClickException(
                    f"the '{cmd_name}' command needs the module {module_name!r}: {exc}"
                ) from exc
            command = getattr(module, attr)
            if not isinstance(command, click.Command):
                raise click.ClickException(f"{self.lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS)
@click.version_option(package_name="durable-toolkit")
def main() -> None:
    """durable: move hand-rolled retry logic to durable execution."""


# -- shared options -------------------------------------------------------------------

database_url_option = click.option(
    "--database-url",
    envvar="DURABLE_DATABASE_URL",
    default=None,
    metavar="URL",
    help="Database of the workflow state (default: $DURABLE_DATABASE_URL, "
    "else sqlite:///.durable/state.db).",
)


def _app(database_url: str | None) -> Durable:
    try:
        return Durable(database_url)
    except DurableError as exc:
        raise click.ClickException(str(exc)) from exc


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@contextlib.contextmanager
def _open_app(database_url: str | None) -> Iterator[Durable]:
    """An app on the database; its errors become one-line CLI errors; closed after."""
    app = _app(database_url)
    try:
        yield app
    except DurableError as exc:
        raise _fail(exc) from exc
    finally:
        app.close()


def local_time(value: datetime | None) -> str:
    """A timestamp in local time for tables ("" for none). Shared by every command group."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def short_text(text: str | None, width: int = 60) -> str:
    """``text`` cut to ``width`` characters with an ellipsis ("" for None)."""
    if text is None:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "pending": "cyan",
    "enqueued": "blue",
}


# -- durable db ------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The system tables."""


@db.command("upgrade")
@database_url_option
def db_upgrade(database_url: str | None) -> None:
    """Create or upgrade the system tables to the latest version."""
    with _open_app(database_url) as app:
        applied = app.upgrade()
        version = app.storage.schema_version()
    if applied:
        click.echo(f"applied migrations {', '.join(map(str, applied))}: now at version {version}")
    else:
        click.echo(f"already at version {version}")


# -- durable workflows -------------------------------------------------------------------


@main.group()
def workflows() -> None:
    """Inspect and control workflows."""


workflows.add_command(workflows_prune)  # toolkit/cli_retention.py


@workflows.command("list")
@database_url_option
@click.option("--status", type=click.Choice(STATUSES), help="Only workflows in this status.")
@click.option("--name", help="Only workflows of this name.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
def workflows_list(
    database_url: str | None, status: str | None, name: str | None, limit: int
) -> None:
    """List workflows, newest first."""
    from rich import box  # imported here: a worker process never needs it
    from rich.console import Console
    from rich.table import Table

    with _open_app(database_url) as app:
        records = app.list_workflows(status=status, name=name, limit=limit)
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("workflow id", "name", "status", "created", "updated", "error"):
        table.add_column(column)
    for r in records:
        error = f"{r.error.get('type', '')}: {r.error.get('message', '')}" if r.error else ""
        style = _STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.workflow_id,
            r.name,
            f"[{style}]{r.status}[/]" if style else r.status,
            local_time(r.created_at),
            local_time(r.updated_at),
            short_text(error),
        )
    console = Console()
    if records:
        console.print(table)
    else:
        console.print("no workflows")


@workflows.command("show")
@database_url_option
@click.argument("workflow_id")
def workflows_show(database_url: str | None, workflow_id: str) -> None:
    """Show one workflow: its inputs, result or error, and every step with its attempts."""
    from rich import box  # imported here: a worker process never needs it
    from rich.console import Console
    from rich.table import Table

    with _open_app(database_url) as app:
        record = app.get_workflow(workflow_id)
        steps = app.list_steps(workflow_id)
    console = Console()
    console.print(f"[bold]{record.workflow_id}[/]  {record.name}")
    console.print(f"status:   {record.status}")
    created, updated = local_time(record.created_at), local_time(record.updated_at)
    console.print(f"created:  {created}   updated: {updated}")
    if record.queue_name:
        console.print(f"queue:    {record.queue_name}")
    if record.owner:
        lease = local_time(record.lease_expires_at)
        console.print(f"owner:    {record.owner} (lease until {lease})")
    if record.recoveries:
        console.print(f"recovered {record.recoveries} time(s) after a crash")
    console.print(f"inputs:   {short_text(record.inputs, 200)}", markup=False)
    if record.output is not None:
        console.print(f"output:   {short_text(record.output, 200)}", markup=False)
    if record.error:
        console.print(
            f"error:    {record.error.get('type', '')}: {record.error.get('message', '')}",
            markup=False,
            style="red",
        )
        if record.error.get("traceback"):
            console.print(record.error["traceback"].rstrip(), markup=False, style="dim")
    table = Table(box=box.SIMPLE_HEAD, title="steps", title_justify="left")
    for column in ("#", "name", "status", "attempts", "output / error", "finished"):
        table.add_column(column)
    for s in steps:
        detail = f"{s.error.get('type', '')}: {s.error.get('message', '')}" if s.error else s.output
        if s.status == "retrying" and s.next_attempt_at:
            detail = f"{detail}  (next attempt {local_time(s.next_attempt_at)})"
        table.add_row(
            str(s.step_number),
            s.name,
            s.status,
            str(s.attempts),
            short_text(detail, 80),
            local_time(s.finished_at),
        )
    console.print(table if steps else "no steps recorded")


@workflows.command("cancel")
@database_url_option
@click.argument("workflow_id")
def workflows_cancel(database_url: str | None, workflow_id: str) -> None:
    """Cancel a workflow: it runs no further step."""
    with _open_app(database_url) as app:
        app.cancel(workflow_id)
        status = app.get_workflow(workflow_id).status
    click.echo(f"{workflow_id}: {status}")


@workflows.command("resume")
@database_url_option
@click.argument("workflow_id")
def workflows_resume(database_url: str | None, workflow_id: str) -> None:
    """Resume a failed or cancelled workflow from where it stopped.

    The workflow becomes pending; a process that has its code (recover()
    or a worker) runs it, replaying the steps already recorded.
    """
    with _open_app(database_url) as app:
        app.resume(workflow_id)
        status = app.get_workflow(workflow_id).status
    click.echo(f"{workflow_id}: {status}")


@workflows.command("fork")
@database_url_option
@click.argument("workflow_id")
@click.option(
    "--from-step",
    type=click.IntRange(min=1),
    required=True,
    help="The first step to run again (numbers as in 'durable workflows show').",
)
@click.option("--new-id", default=None, help="Id of the new workflow (default: a fresh one).")
def workflows_fork(
    database_url: str | None, workflow_id: str, from_step: int, new_id: str | None
) -> None:
    """Restart a workflow from a step, as a new workflow; the original stays as it is.

    The new workflow has the same inputs and the recorded outputs of the
    steps before --from-step (replayed, not re-run). A process that has its
    code (recover() or a worker) runs it; one from a queue goes back to it.
    Prints the new workflow's id and status.
    """
    with _open_app(database_url) as app:
        handle = app.fork(workflow_id, from_step, new_id=new_id)
        status = handle.status()
    click.echo(f"{handle.workflow_id}: {status}")


# -- durable worker / queues --------------------------------------------------------------


def load_app(path: str) -> Durable:
    """The ``Durable`` app at ``package.module:attr`` (the current directory importable),
    or a one-line ``ClickException``."""
    import sys

    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise click.ClickException(f"--app must look like package.module:app, not {path!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.ClickException(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, Durable):
        raise click.ClickException(f"{path} is not a toolkit.Durable application")
    return app


@main.command("worker")
@database_url_option
@click.option(
    "--app",
    "app_path",
    required=True,
    metavar="MODULE:ATTR",
    help="The Durable application to serve, e.g. myproject.jobs:app.",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Serve this queue (repeat for several; default: every queue the app declares).",
)
@click.option(
    "--lease-timeout",
    type=float,
    default=None,
    help="Seconds a claimed workflow stays leased without a heartbeat (default: the app's).",
)
@click.option(
    "--shutdown-grace",
    type=float,
    default=30.0,
    show_default=True,
    help="On SIGTERM, seconds to let running workflows finish before releasing them.",
)
@click.option(
    "--report-every",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds between summary lines (claimed, finished, failed, lag percentiles).",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Also log every claim and every finished workflow."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text lines, or one JSON object per line (see docs/operations.md#logs).",
)
def worker_command(
    database_url: str | None,
    app_path: str,
    queues: tuple[str, ...],
    lease_timeout: float | None,
    shutdown_grace: float,
    report_every: float,
    verbose: bool,
    log_format: str,
) -> None:
    """Run workflows from the app's queues and schedules until SIGTERM or Ctrl-C.

    Logs a summary of what it claimed, finished and failed, with the lag from
    enqueue to start, every --report-every seconds; failures at once.
    """
    import logging
    import signal

    from .worker import Worker

    if log_format == "json":  # toolkit/jsonlog.py; basicConfig below then changes nothing
        from .jsonlog import configure_logging

        configure_logging("json", verbose=verbose)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if verbose:
        logging.getLogger("toolkit.worker").setLevel(logging.DEBUG)
    app = load_app(app_path)
    try:
        app.configure(url=database_url, lease_timeout=lease_timeout)
        worker = Worker(
            app, list(queues) or None, shutdown_grace=shutdown_grace, report_every=report_every
        )
    except (DurableError, ValueError) as exc:
        raise _fail(exc) from exc

    def stop(signum: int, _frame: Any) -> None:
        logging.getLogger("toolkit.worker").info("signal %d: stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        worker.run()
    except DurableError as exc:
        raise _fail(exc) from exc
    finally:
        app.close()


@main.group()
def queues() -> None:
    """Inspect queues."""


@queues.command("list")
@database_url_option
def queues_list(database_url: str | None) -> None:
    """Depth and age per queue: enqueued (of which delayed), running, oldest waiting."""
    from rich import box  # imported here: a worker process never needs it
    from rich.console import Console
    from rich.table import Table

    with _open_app(database_url) as app:
        stats = app.storage.queue_stats()
    console = Console()
    if not stats:
        console.print("no queued or running workflows")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("queue", "enqueued", "delayed", "running", "oldest enqueued"):
        table.add_column(column)
    for row in stats:
        table.add_row(
            row["queue"],
            str(row["enqueued"]),
            str(row["delayed"]),
            str(row["running"]),
            local_time(row["oldest"]),
        )
    console.print(table)
