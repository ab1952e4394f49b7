"""``durable workflows``: list, show, start, cancel, resume and fork workflows."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import DurableError, WorkflowCancelledError, WorkflowFailedError
from ..records import StepRecord
from ..storage.views import DISPLAY_STATUSES, FILTER_STATUSES, WorkflowView
from ..unregistered import marks as unregistered_marks
from .common import (
    LazyGroup,
    console,
    database_url_option,
    fail,
    iso,
    json_option,
    load_app,
    local_time,
    open_app,
    print_json,
    read_only,
    short_text,
    show,
    stored_json,
    styled,
    table,
)

# Commands of other modules, imported when called.
LAZY_WORKFLOW_COMMANDS = {"prune": "toolkit.cli_retention:workflows_prune"}


@click.group(cls=LazyGroup, lazy=LAZY_WORKFLOW_COMMANDS)
def workflows() -> None:
    """Inspect, start and control workflows."""


# -- JSON shapes ------------------------------------------------------------------------------


def _error_json(error: dict[str, str] | None, *, traceback: bool) -> dict[str, str] | None:
    if not error:
        return None
    out = {"type": error.get("type", ""), "message": error.get("message", "")}
    if traceback:
        out["traceback"] = error.get("traceback", "")
    return out


def workflow_json(view: WorkflowView, *, full: bool = False) -> dict[str, Any]:
    """The JSON object of one workflow (``full``: with inputs, output and traceback)."""
    r = view.record
    out: dict[str, Any] = {
        "workflow_id": r.workflow_id,
        "name": r.name,
        "status": view.status,
        "stored_status": r.status,
        "queue": r.queue_name,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
        "started_at": iso(r.started_at),
        "owner": r.owner,
        "lease_expires_at": iso(r.lease_expires_at),
        "recoveries": r.recoveries,
        "current_step": None
        if view.step is None
        else {
            "number": view.step.number,
            "name": view.step.name,
            "status": view.step.status,
            "wake_at": iso(view.step.wake_at),
        },
        "error": _error_json(r.error, traceback=full),
    }
    if full:
        out["inputs"] = stored_json(r.inputs)
        out["output"] = stored_json(r.output)
    return out


def step_json(s: StepRecord) -> dict[str, Any]:
    return {
        "number": s.step_number,
        "name": s.name,
        "status": s.status,
        "attempts": s.attempts,
        "output": stored_json(s.output),
        "error": _error_json(s.error, traceback=False),
        "started_at": iso(s.started_at),
        "finished_at": iso(s.finished_at),
        "next_attempt_at": iso(s.next_attempt_at),
    }


# -- list / show ------------------------------------------------------------------------------


@workflows.command("list")
@database_url_option
@click.option(
    "--status",
    type=click.Choice(FILTER_STATUSES),
    help="Only workflows in this status (pending: running, sleeping, retrying and waiting).",
)
@click.option("--name", help="Only workflows of this name.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
def workflows_list(
    database_url: str | None, status: str | None, name: str | None, limit: int, as_json: bool
) -> None:
    """List workflows, newest first. Creates nothing."""
    from ..storage.views import list_views

    with read_only(database_url) as storage:
        views = list_views(storage, status=status, name=name, limit=limit)
        database = storage.describe()
    if as_json:
        print_json("workflows", database=database, workflows=[workflow_json(v) for v in views])
        return
    out = console()
    if not views:
        out.print("no workflows")
        return
    t = table(
        ("workflow id", "id"),
        ("name", "text"),
        ("status", "fixed"),
        ("created", "time"),
        ("updated", "time"),
        ("error", "text"),
    )
    for v in views:
        r = v.record
        error = f"{r.error.get('type', '')}: {r.error.get('message', '')}" if r.error else ""
        t.add_row(
            r.workflow_id,
            r.name,
            styled(v.status),
            local_time(r.created_at),
            local_time(r.updated_at),
            short_text(error, 120),
        )
    show(out, t)


def _status_line(view: WorkflowView) -> str:
    r, step = view.record, view.step
    if view.status == "waiting":
        why = "no owner" if r.owner is None else f"the lease of {r.owner} expired"
        return f"waiting   (pending, {why}: a worker that registers {r.name!r} takes it over)"
    if view.status == "sleeping" and step is not None:
        return f"sleeping  (pending, in a durable sleep until {local_time(step.wake_at)})"
    if view.status == "retrying" and step is not None:
        return (
            f"retrying  (pending, step {step.number} {step.name} "
            f"next attempt {local_time(step.wake_at)})"
        )
    if view.status == "running":
        return "running   (pending, held by a live lease)"
    return view.status


@workflows.command("show")
@database_url_option
@click.argument("workflow_id")
@json_option
@click.option(
    "--app",
    "app_path",
    metavar="MODULE:ATTR",
    help="Also say whether this Durable application registers the workflow's name.",
)
def workflows_show(
    database_url: str | None, workflow_id: str, as_json: bool, app_path: str | None
) -> None:
    """Show one workflow: its inputs, result or error, and every step with its attempts."""
    from ..records import StepRecord  # noqa: F401  (the type of steps below)
    from ..storage.views import get_view

    with read_only(database_url) as storage:
        view = get_view(storage, workflow_id)
        if view is None:
            raise click.ClickException(f"no workflow with id {workflow_id!r}")
        steps = list(storage.load_steps(workflow_id).values())
        marks = unregistered_marks(storage, workflow_id)
    registered = None
    if app_path is not None:
        registered = load_app(app_path).has_workflow(view.record.name)
    if as_json:
        print_json(
            "workflow",
            workflow=workflow_json(view, full=True),
            steps=[step_json(s) for s in steps],
            unregistered_in={owner: iso(at) for owner, at in marks.items()},
            registered_in_app=registered,
        )
        return
    record = view.record
    out = console()
    out.print(f"[bold]{record.workflow_id}[/]  {record.name}", markup=True)
    out.print(f"status:   {_status_line(view)}", markup=False)
    created, updated = local_time(record.created_at), local_time(record.updated_at)
    out.print(f"created:  {created}   updated: {updated}")
    if record.queue_name:
        out.print(f"queue:    {record.queue_name}", markup=False)
    if record.owner:
        lease = local_time(record.lease_expires_at)
        out.print(f"owner:    {record.owner} (lease until {lease})", markup=False)
    if record.recoveries:
        out.print(f"recovered {record.recoveries} time(s) after a crash")
    if registered is False:
        out.print(
            f"unknown:  {app_path} does not register {record.name!r}: its workers never run it",
            markup=False,
            style="bold yellow",
        )
    for owner, at in marks.items():
        out.print(
            f"unknown:  worker {owner} does not register {record.name!r} (seen {local_time(at)})",
            markup=False,
            style="bold yellow",
        )
    out.print(f"inputs:   {short_text(record.inputs, 200)}", markup=False)
    if record.output is not None:
        out.print(f"output:   {short_text(record.output, 200)}", markup=False)
    if record.error:
        out.print(
            f"error:    {record.error.get('type', '')}: {record.error.get('message', '')}",
            markup=False,
            style="red",
        )
        if record.error.get("traceback"):
            out.print(record.error["traceback"].rstrip(), markup=False, style="dim")
    if not steps:
        out.print("no steps recorded")
        return
    t = table(
        ("#", "num"),
        ("name", "id"),
        ("status", "fixed"),
        ("attempts", "num"),
        ("output / error", "text"),
        ("finished", "time"),
    )
    t.title, t.title_justify = "steps", "left"
    for s in steps:
        detail = f"{s.error.get('type', '')}: {s.error.get('message', '')}" if s.error else s.output
        detail = short_text(detail, 60)  # whole in --json
        if s.status == "retrying" and s.next_attempt_at:
            detail = f"{detail}  (next attempt {local_time(s.next_attempt_at)})"
        t.add_row(
            str(s.step_number),
            s.name,
            s.status,
            str(s.attempts),
            detail,
            local_time(s.finished_at),
        )
    show(out, t)


# -- start ---------------------------------------------------------------------------------------


def _json_arg(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from None
    if not isinstance(parsed, kind):
        expected = "a JSON array" if kind is list else "a JSON object"
        raise click.BadParameter(f"expected {expected}, not {value!r}", param_hint=what)
    return parsed


@workflows.command("start")
@database_url_option
@click.argument("name")
@click.option(
    "--app",
    "app_path",
    required=True,
    metavar="MODULE:ATTR",
    help="The Durable application that declares the workflow, e.g. myproject.jobs:app.",
)
@click.option(
    "--args", "args_json", metavar="JSON", help='Positional arguments, a JSON array: ["o-1", 4200].'
)
@click.option(
    "--kwargs",
    "kwargs_json",
    metavar="JSON",
    help='Keyword arguments, a JSON object: {"amount": 4200}.',
)
@click.option("--queue", "queue_name", help="Enqueue it on this declared queue, for a worker.")
@click.option(
    "--id",
    "workflow_id",
    help="Its workflow id (default: a fresh one); starting an id twice starts it once.",
)
@click.option(
    "--wait",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Wait at most this long for it to end and print its result "
    "(default: with --queue do not wait; without, wait until it ends).",
)
def workflows_start(
    database_url: str | None,
    name: str,
    app_path: str,
    args_json: str | None,
    kwargs_json: str | None,
    queue_name: str | None,
    workflow_id: str | None,
    wait: float | None,
) -> None:
    """Start the workflow registered as NAME in the app, with JSON arguments.

    With --queue it is enqueued for a worker serving that queue; without, it
    runs in this command, which waits for it (at most --wait seconds; a run
    still going then stays pending and a worker takes it over).
    """
    args = _json_arg(args_json, "--args", list)
    kwargs = _json_arg(kwargs_json, "--kwargs", dict)
    app = load_app(app_path)
    try:
        app.configure(url=database_url)
        from .common import announce_database

        announce_database(app.database_url)
        if not app.has_workflow(name):
            known = ", ".join(sorted(app._workflows)) or "none"
            raise click.ClickException(
                f"{app_path} registers no workflow named {name!r} (registered: {known})"
            )
        if queue_name is not None:
            queue = app.queues.get(queue_name)
            if queue is None:
                declared = ", ".join(app.queues) or "none"
                raise click.ClickException(
                    f"{app_path} declares no queue {queue_name!r} (declared: {declared})"
                )
            handle = queue.enqueue(name, *args, workflow_id=workflow_id, **kwargs)
        else:
            handle = app.start(name, *args, workflow_id=workflow_id, **kwargs)
        if queue_name is not None and wait is None:
            status = handle.status()
            where = f" on {queue_name}" if status == "enqueued" else ""
            click.echo(f"{handle.workflow_id}: {status}{where}")
            return
        try:
            value = handle.result(timeout=wait)
        except WorkflowFailedError as exc:
            raise click.ClickException(
                f"{handle.workflow_id}: failed: {exc.error_type}: {exc.error_message}"
            ) from exc
        except WorkflowCancelledError as exc:
            raise click.ClickException(f"{handle.workflow_id}: cancelled") from exc
        except TimeoutError:
            click.echo(
                f"{handle.workflow_id}: {handle.status()} after {wait:g}s "
                "(it goes on in a worker that has its code)"
            )
            return
        click.echo(f"{handle.workflow_id}: succeeded: {json.dumps(value, default=str)}")
    except (DurableError, ValueError, TypeError) as exc:
        raise fail(exc) from exc
    finally:
        app.close()


# -- cancel / resume / fork ------------------------------------------------------------------------


@workflows.command("cancel")
@database_url_option
@click.argument("workflow_id")
def workflows_cancel(database_url: str | None, workflow_id: str) -> None:
    """Cancel a workflow: it runs no further step."""
    with open_app(database_url) as app:
        before = app.get_workflow(workflow_id).status
        app.cancel(workflow_id)
        status = app.get_workflow(workflow_id).status
    if status == before and status != "cancelled":
        click.echo(f"{workflow_id}: {status} (already ended: nothing to cancel)")
    else:
        click.echo(f"{workflow_id}: {status}")


@workflows.command("resume")
@database_url_option
@click.argument("workflow_id")
def workflows_resume(database_url: str | None, workflow_id: str) -> None:
    """Resume a failed or cancelled workflow from where it stopped.

    The workflow becomes pending; a process that has its code (recover()
    or a worker) runs it, replaying the steps already recorded.
    """
    with open_app(database_url) as app:
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
    with open_app(database_url) as app:
        steps = app.list_steps(workflow_id)  # raises for an unknown id
        last = max((s.step_number for s in steps), default=0)
        if from_step > max(last, 1):
            recorded = f"its last recorded step is {last}" if last else "it has no recorded step"
            raise click.ClickException(
                f"cannot fork {workflow_id!r} from step {from_step}: {recorded} "
                f"(see `durable workflows show {workflow_id}`)"
            )
        handle = app.fork(workflow_id, from_step, new_id=new_id)
        status = handle.status()
    click.echo(f"{handle.workflow_id}: {status}")


assert set(DISPLAY_STATUSES) <= set(FILTER_STATUSES)
