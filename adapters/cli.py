"""``durable dlq``: dead letters (failed workflows), and imports from legacy dead-letter stores."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console

from toolkit import Durable, WorkflowFailedError
from toolkit.cli import database_url_option, load_app, local_time, short_text
from toolkit.cli.common import announce_database, iso, json_option, print_json, read_only
from toolkit.errors import DurableError, WorkflowCancelledError

from .dead_letter import (
    DeadLetter,
    DeadLetterError,
    DeadLetterTable,
    ImportResult,
    get_dead_letter,
    list_dead_letters,
    payload_of,
    purge_dead_letters,
    retry_dead_letter,
)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _session(
    database_url: str | None, app_path: str | None = None, *, read_only_: bool = False
) -> Iterator[Durable]:
    """The app (``--app`` or a bare one on ``--database-url``); errors become one line.

    ``read_only_``: the database is checked first and nothing is created or upgraded
    (a database without the toolkit's tables is a one-line error)."""
    if read_only_:
        with read_only(database_url):  # says which database with -v
            pass
    try:
        if app_path is not None:
            app = load_app(app_path)
            app.configure(url=database_url)
        else:
            app = Durable(database_url)
        if not read_only_:
            announce_database(app.database_url)
    except (DurableError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield app
    except DurableError as exc:
        raise click.ClickException(str(exc)) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise click.ClickException(f"database error: {_one_line(exc)}") from exc
    finally:
        app.close()


@click.group()
def dlq() -> None:
    """Dead letters: failed workflows, native or imported from legacy dead-letter stores."""


# -- list / show --------------------------------------------------------------------------


def _error_text(d: DeadLetter) -> str:
    return f"{d.error_type}: {d.error_message}" if d.error_type else d.error_message


def _list_error(d: DeadLetter) -> str:
    # an imported dead letter's type is its source, shown in its own column
    type_is_source = d.error_type.startswith("rabbitmq ") or d.error_type == d.details.get("table")
    return d.error_message if d.imported and type_is_source else _error_text(d)


@dlq.command("list")
@database_url_option
@click.option("--name", help="Only dead letters of this workflow name.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
def dlq_list(database_url: str | None, name: str | None, limit: int, as_json: bool) -> None:
    """List failed workflows (native and imported), newest failure first.

    Two lines each: the id, when it failed, its workflow and where it came
    from; then its error. Creates nothing.
    """
    with _session(database_url, read_only_=True) as app:
        letters = list_dead_letters(app, name=name, limit=limit)
        database = app.url
    if as_json:
        print_json("dead_letters", database=database, dead_letters=[_json(d) for d in letters])
        return
    if not letters:
        click.echo("no dead letters")
        return
    width = max(len(d.workflow_id) for d in letters)
    for d in letters:
        origin = "" if d.source == "native" else f"  from {d.source}"
        click.echo(f"{d.workflow_id:<{width}}  {local_time(d.failed_at)}  {d.name}{origin}")
        click.echo(f"    {short_text(_list_error(d), 96)}")


def _json(d: DeadLetter) -> dict[str, Any]:
    """The JSON object of one dead letter (``details``: what the import kept)."""
    return {
        "workflow_id": d.workflow_id,
        "name": d.name,
        "status": d.status,
        "source": d.source,
        "failed_at": iso(d.failed_at),
        "error": {"type": d.error_type, "message": d.error_message},
        "details": d.details,
    }


def _show_details(console: Console, details: dict[str, Any]) -> None:
    if details.get("source") == "table":
        console.print(f"table:    {details.get('table')} in {details.get('database')}")
        console.print(f"key:      {details.get('key')}   failed at: {details.get('failed_at')}")
        for column, value in (details.get("columns") or {}).items():
            console.print(f"  {column}: {value}", markup=False)
    elif details.get("source") == "rabbitmq":
        console.print(f"queue:    {details.get('queue')} at {details.get('broker')}")
        if details.get("message_id"):
            console.print(f"message:  {details['message_id']}", markup=False)
        console.print(
            f"origin:   exchange {details.get('exchange')!r}, "
            f"routing key {details.get('routing_key')!r}",
            markup=False,
        )
        for death in details.get("x_death") or []:
            when = death.get("time")
            when = when.get("$datetime") if isinstance(when, dict) else when
            console.print(
                f"  x-death: {death.get('reason')} x{death.get('count')} from queue "
                f"{death.get('queue')!r} (exchange {death.get('exchange')!r}, routing keys "
                f"{death.get('routing-keys')}) at {when}",
                markup=False,
            )


def _readable(payload: Any, d: DeadLetter) -> Any:
    """A message kept for republishing shows its body as text, not base64."""
    if d.details.get("source") != "rabbitmq" or not isinstance(payload, dict):
        return payload
    try:
        body = base64.b64decode(payload.get("body", ""), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, TypeError):
        return payload
    return {**payload, "body": body}


@dlq.command("show")
@database_url_option
@click.argument("workflow_id")
@json_option
def dlq_show(database_url: str | None, workflow_id: str, as_json: bool) -> None:
    """Show one dead letter: its error, payload, origin and recorded steps. Creates nothing."""
    with _session(database_url, read_only_=True) as app:
        d = get_dead_letter(app, workflow_id)
        steps = app.list_steps(workflow_id)
        try:
            payload = json.dumps(_readable(payload_of(app, d.record), d), default=str)
        except (TypeError, ValueError):
            payload = d.inputs or ""
    if as_json:
        from toolkit.cli.workflows import step_json

        doc = _json(d)
        doc["error"]["traceback"] = d.traceback
        try:
            doc["payload"] = json.loads(payload)
        except ValueError:
            doc["payload"] = payload
        print_json("dead_letter", dead_letter=doc, steps=[step_json(s) for s in steps])
        return
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]{d.workflow_id}[/]  {d.name}")
    console.print(f"status:   {d.status}")
    console.print(f"source:   {d.source}")
    console.print(f"failed:   {local_time(d.failed_at)}")
    _show_details(console, d.details)
    console.print(f"payload:  {short_text(payload, 400)}", markup=False)
    if d.record.output is not None:
        console.print(f"output:   {short_text(d.record.output, 200)}", markup=False)
    if d.error_type or d.error_message:
        console.print(f"error:    {_error_text(d)}", markup=False, style="red")
        if d.traceback:
            console.print(d.traceback.rstrip(), markup=False, style="dim")
    for s in steps:
        detail = f"{s.error.get('type', '')}: {s.error.get('message', '')}" if s.error else s.output
        console.print(
            f"step {s.step_number} {s.name}: {s.status} after {s.attempts} attempt(s) "
            f"{short_text(detail, 80)}",
            markup=False,
        )


# -- retry / purge ----------------------------------------------------------------------------


def _selected(
    app: Durable, workflow_ids: tuple[str, ...], all_: bool, name: str | None
) -> list[str]:
    if all_ and workflow_ids:
        raise click.UsageError("give workflow ids or --all, not both")
    if not all_ and not workflow_ids:
        raise click.UsageError("give at least one workflow id, or --all")
    if name is not None and not all_:
        raise click.UsageError("--name selects with --all only")
    if all_:
        return [d.workflow_id for d in list_dead_letters(app, name=name)]
    return list(workflow_ids)


def _register_republishers(app: Durable, ids: list[str], amqp_url: str | None) -> None:
    """Make the republish workflows of RabbitMQ dead letters runnable here (``--amqp-url``)."""
    from .rabbitmq import REPUBLISH_PREFIX, RabbitMQDeadLetters

    queues = set()
    for wid in ids:
        record = app.storage.get_workflow(wid)
        if record is not None and record.name.startswith(REPUBLISH_PREFIX):
            queues.add(record.name[len(REPUBLISH_PREFIX) :])
    if amqp_url is not None:
        for queue in sorted(queues):
            RabbitMQDeadLetters(app, url=amqp_url, queue=queue)  # no-op if the app has it


@dlq.command("retry")
@database_url_option
@click.argument("workflow_ids", nargs=-1, metavar="[WORKFLOW_ID]...")
@click.option("--all", "all_", is_flag=True, help="Retry every dead letter (see --name).")
@click.option("--name", help="With --all: only dead letters of this workflow name.")
@click.option(
    "--app",
    "app_path",
    metavar="MODULE:ATTR",
    help="Run the retried workflows here with this Durable application and wait for them "
    "(default: leave them pending for a worker that has their code).",
)
@click.option(
    "--amqp-url",
    envvar="DURABLE_AMQP_URL",
    metavar="URL",
    help="Broker to republish RabbitMQ dead letters to, running them here "
    "(default: $DURABLE_AMQP_URL).",
)
@click.option(
    "--wait",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for each workflow run here.",
)
def dlq_retry(
    database_url: str | None,
    workflow_ids: tuple[str, ...],
    all_: bool,
    name: str | None,
    app_path: str | None,
    amqp_url: str | None,
    wait: float,
) -> None:
    """Retry dead letters: each runs again from where it failed.

    An imported dead letter runs its workflow from the start with the legacy
    payload. Workflows whose code is here (--app, or --amqp-url for RabbitMQ
    republishing) run at once and the command prints how they ended; the
    others become pending and a worker that has their code runs them.
    """
    failures = 0
    with _session(database_url, app_path) as app:
        ids = _selected(app, workflow_ids, all_, name)
        if not ids:
            click.echo("no dead letters")
            return
        _register_republishers(app, ids, amqp_url)
        handles = []
        for wid in ids:
            try:
                handle = retry_dead_letter(app, wid)
            except DeadLetterError as exc:  # e.g. already retried: carry on with the others
                failures += 1
                click.echo(f"{wid}: skipped: {exc}")
                continue
            handles.append((handle, app.get_workflow(wid).name))
        for handle, wf_name in handles:
            wid = handle.workflow_id
            record = app.get_workflow(wid)
            if record.status == "enqueued":  # back in its queue, under its limits
                click.echo(
                    f"{wid}: enqueued (a worker serving queue {record.queue_name} will run it)"
                )
                continue
            if not app.has_workflow(wf_name) or (
                record.status == "pending" and record.owner is None
            ):
                click.echo(f"{wid}: pending (a worker serving {wf_name} will run it)")
                continue
            try:
                handle.result(timeout=wait)
                click.echo(f"{wid}: succeeded")
            except WorkflowFailedError as exc:
                failures += 1
                click.echo(f"{wid}: failed again: {exc.error_type}: {exc.error_message}")
            except WorkflowCancelledError:
                click.echo(f"{wid}: cancelled")
            except TimeoutError:
                click.echo(f"{wid}: still running after {wait:g}s (it goes on in a worker)")
    if failures:
        raise click.ClickException(
            f"{failures} of {len(ids)} dead letter(s) failed again or could not be retried"
        )


@dlq.command("purge")
@database_url_option
@click.argument("workflow_ids", nargs=-1, metavar="[WORKFLOW_ID]...")
@click.option("--all", "all_", is_flag=True, help="Purge every dead letter (see --name).")
@click.option("--name", help="With --all: only dead letters of this workflow name.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(
    database_url: str | None,
    workflow_ids: tuple[str, ...],
    all_: bool,
    name: str | None,
    yes: bool,
) -> None:
    """Delete dead letters for good: the failed workflows with their steps.

    Only failed workflows are deleted. The legacy table or queue they were
    imported from is not touched.
    """
    with _session(database_url) as app:
        ids = _selected(app, workflow_ids, all_, name)
        if not ids:
            click.echo("no dead letters")
            return
        if not yes:
            click.confirm(f"Delete {len(ids)} dead letter(s) for good?", abort=True)
        deleted = set(purge_dead_letters(app, ids))
        for wid in ids:
            if wid in deleted:
                continue
            record = app.storage.get_workflow(wid)
            why = "no such workflow" if record is None else f"its status is {record.status}"
            click.echo(f"{wid}: not purged ({why})")
    click.echo(f"purged {len(deleted)} dead letter(s)")
    if len(deleted) < len(ids) and not all_:
        raise click.exceptions.Exit(1)


# -- imports and exports ------------------------------------------------------------------------


def _table_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--legacy-url",
            metavar="URL",
            help="Database of the legacy table (default: the --database-url one).",
        ),
        click.option("--schema", help="Schema of the legacy table."),
        click.option("--table", required=True, help="The legacy dead-letter table."),
        click.option("--key", required=True, metavar="COLUMN", help="Its key column."),
        click.option(
            "--payload", required=True, metavar="COLUMN", help="Its payload column (JSON)."
        ),
        click.option("--error", required=True, metavar="COLUMN", help="Its error column."),
        click.option(
            "--failed-at", required=True, metavar="COLUMN", help="Its failure time column."
        ),
        click.option(
            "--workflow",
            required=True,
            metavar="NAME",
            help="Registered name of the workflow that retries a row (it gets the payload).",
        ),
        click.option(
            "--workflow-id-column",
            metavar="COLUMN",
            help="Column holding the workflow id of exported rows (default: the key column).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _table(app: Durable, **kw: Any) -> DeadLetterTable:
    return DeadLetterTable(
        app,
        table=kw["table"],
        key=kw["key"],
        payload=kw["payload"],
        error=kw["error"],
        failed_at=kw["failed_at"],
        workflow=kw["workflow"],
        url=kw["legacy_url"],
        schema=kw["schema"],
        columns=kw.get("columns", ()),
        workflow_id_column=kw["workflow_id_column"],
        export_values=kw.get("export_values"),
    )


def _report(result: ImportResult, source: str, removed: str) -> None:
    verb = "would import" if result.shadow else "imported"
    click.echo(
        f"{verb} {len(result.imported)} dead letter(s) from {source}"
        f" ({len(result.already)} already imported, {len(result.skipped)} skipped"
        + (f", {result.removed} {removed}" if result.removed else "")
        + ")"
    )
    for key, why in result.skipped[:20]:
        click.echo(f"  skipped {key}: {why}")
    if len(result.skipped) > 20:
        click.echo(f"  ... and {len(result.skipped) - 20} more skipped")


@dlq.command("import-table")
@database_url_option
@_table_options
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="COLUMN",
    help="Keep this column's value too (repeat).",
)
@click.option(
    "--delete",
    is_flag=True,
    help="Delete imported rows from the legacy table (a move; one transaction if it is "
    "in the durable database).",
)
@click.option("--limit", type=int, help="Import at most this many rows.")
@click.option("--shadow", is_flag=True, help="Report what would be imported; change nothing.")
def dlq_import_table(
    database_url: str | None,
    delete: bool,
    limit: int | None,
    shadow: bool,
    **kw: Any,
) -> None:
    """Import the rows of a legacy dead-letter table as failed workflows.

    Idempotent: a row imported before creates nothing new.
    """
    with _session(database_url) as app:
        table = _table(app, **kw)
        try:
            result = table.import_rows(
                mode="shadow" if shadow else "takeover", delete=delete, limit=limit
            )
        finally:
            table.close()
    _report(result, f"table {table.qualified_name}", "deleted from the legacy table")


def _assignments(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise click.BadParameter(f"expected COLUMN=VALUE, not {item!r}", param_hint="--set")
        out[column] = value
    return out


@dlq.command("export-table")
@database_url_option
@_table_options
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="A constant for a further column of exported rows (repeat).",
)
@click.option("--limit", type=int, help="Export at most this many workflows.")
@click.option("--shadow", is_flag=True, help="Report what would be written; change nothing.")
def dlq_export_table(
    database_url: str | None,
    assignments: tuple[str, ...],
    limit: int | None,
    shadow: bool,
    **kw: Any,
) -> None:
    """Write the failed workflows of --workflow into the legacy table.

    For consumers that still read the table. Idempotent: a workflow already in
    the table is not written again; rows imported from the table are not
    exported back.
    """
    export_values = _assignments(assignments)
    with _session(database_url) as app:
        table = _table(app, export_values=export_values, **kw)
        try:
            result = table.export(mode="shadow" if shadow else "takeover", limit=limit)
        finally:
            table.close()
    verb = "would write" if result.shadow else "wrote"
    click.echo(
        f"{verb} {len(result.written)} failed workflow(s) into table {table.qualified_name} "
        f"({len(result.already)} already there)"
    )


@dlq.command("import-rabbitmq")
@database_url_option
@click.option(
    "--amqp-url",
    envvar="DURABLE_AMQP_URL",
    required=True,
    metavar="URL",
    help="The broker, amqp://user:password@host:5672/vhost (default: $DURABLE_AMQP_URL).",
)
@click.option("--queue", required=True, help="The dead-letter queue.")
@click.option(
    "--workflow",
    metavar="NAME",
    help="Registered name of the workflow that retries a message (it gets the body); "
    "default: retrying republishes the message.",
)
@click.option("--limit", type=int, help="Import at most this many messages.")
@click.option("--batch", type=int, default=100, show_default=True, help="Messages per transaction.")
@click.option(
    "--shadow",
    is_flag=True,
    help="Report what would be imported; the messages go back to the queue.",
)
def dlq_import_rabbitmq(
    database_url: str | None,
    amqp_url: str,
    queue: str,
    workflow: str | None,
    limit: int | None,
    batch: int,
    shadow: bool,
) -> None:
    """Import a RabbitMQ dead-letter queue as failed workflows, acknowledging after the commit."""
    from .rabbitmq import RabbitMQDeadLetters

    with _session(database_url) as app:
        adapter = RabbitMQDeadLetters(app, url=amqp_url, queue=queue, workflow=workflow)
        try:
            result = adapter.import_messages(
                mode="shadow" if shadow else "takeover", limit=limit, batch=batch
            )
        except ValueError as exc:
            raise DeadLetterError(str(exc)) from exc
    _report(result, f"RabbitMQ queue {queue}", "acknowledged")
