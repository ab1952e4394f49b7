"""``durable db``, ``durable worker``, ``durable workers``, ``durable queues`` and
``durable schedules``: the tables, the processes that run workflows, and their work."""

from __future__ import annotations

import logging
from typing import Any

import click

from ..app import Durable
from ..errors import DurableError
from ..records import from_ms
from ..storage import now_ms
from .common import (
    announce_database,
    app_database_url_option,
    console,
    database_url_only,
    database_url_option,
    fail,
    iso,
    json_option,
    load_app,
    local_time,
    print_json,
    read_only,
    show,
    styled,
    table,
)

# -- durable db ------------------------------------------------------------------------------


@click.group()
def db() -> None:
    """The system tables."""


@db.command("upgrade")
@database_url_option
@app_database_url_option
def db_upgrade(database_url: str | None, app_database_url: str | None) -> None:
    """Create or upgrade the system tables to the latest version, and the outputs table
    of the app database when it is apart (--app-database-url)."""
    try:
        app = Durable(database_url, app_database_url=app_database_url)
    except (DurableError, ValueError) as exc:
        raise fail(exc) from exc
    try:
        announce_database(app.database_url)
        app_db = app.app_database
        created = app_db.upgrade() if app_db is not None else False
        applied = app.upgrade()
        version = app.storage.schema_version()
    except DurableError as exc:
        raise fail(exc) from exc
    finally:
        app.close()
    if applied:
        click.echo(f"applied migrations {', '.join(map(str, applied))}: now at version {version}")
    else:
        click.echo(f"already at version {version}")
    if app_db is not None:
        state = "created" if created else "already there"
        click.echo(f"app database {app_db.describe()}: outputs table {state}")


# -- durable worker ---------------------------------------------------------------------------


@click.command("worker")
@database_url_only
@app_database_url_option
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
    help="On SIGTERM, seconds to let running workflows finish before releasing them "
    "(a second SIGTERM or Ctrl-C releases them at once).",
)
@click.option(
    "--report-every",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds between summary lines (claimed, finished, failed, lag percentiles).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also log every claim and every finished workflow, and tracebacks.",
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
    app_database_url: str | None,
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
    enqueue to start, every --report-every seconds; failures at once; and, once
    per name, workflows waiting that the app does not register.
    """
    from ..worker import Worker

    if verbose:
        click.get_current_context().meta["durable.verbose"] = 1
    if log_format == "json":  # toolkit/jsonlog.py; basicConfig below then changes nothing
        from ..jsonlog import configure_logging

        configure_logging("json", verbose=verbose)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if verbose:
        logging.getLogger("toolkit.worker").setLevel(logging.DEBUG)
    app = load_app(app_path)
    try:
        app.configure(
            url=database_url, lease_timeout=lease_timeout, app_database_url=app_database_url
        )
        announce_database(app.database_url)
        worker = Worker(
            app,
            list(queues) or None,
            shutdown_grace=shutdown_grace,
            report_every=report_every,
            app_label=app_path,
        )
    except (DurableError, ValueError) as exc:
        raise fail(exc) from exc

    try:
        worker.run_until_signalled()
    except DurableError as exc:
        raise fail(exc) from exc
    finally:
        app.close()


# -- durable workers --------------------------------------------------------------------------


@click.group()
def workers() -> None:
    """The worker processes, running or holding workflows."""


@workers.command("list")
@database_url_option
@click.option(
    "--lease-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="The workers' lease timeout: a worker not seen for that long is dead.",
)
@json_option
def workers_list(database_url: str | None, lease_timeout: float, as_json: bool) -> None:
    """Worker processes: host, pid, queues, workflows held, last heartbeat.

    Running workers are listed from the worker registry, idle ones included;
    a process that holds workflows without being a worker (or one from before
    the registry) is listed from its leases. Creates nothing.
    """
    from ..storage.views import workers as worker_views

    with read_only(database_url) as storage:
        views = worker_views(storage, lease_ms=int(lease_timeout * 1000))
        database = storage.describe()
    if as_json:
        print_json(
            "workers",
            database=database,
            workers=[
                {
                    "owner": v.owner,
                    "host": v.host,
                    "pid": v.pid,
                    "queues": list(v.queues),
                    "held": v.held,
                    "lease_expires_at": iso(v.lease_expires_at) if v.lease_expires_at else None,
                    "last_heartbeat": iso(v.last_heartbeat),
                    "started_at": iso(v.started_at) if v.started_at is not None else None,
                    "alive": v.alive,
                    "registered": v.registered,
                }
                for v in views
            ],
        )
        return
    out = console()
    if not views:
        out.print("no worker is running and no process holds a workflow")
        return
    t = table(
        ("worker", "id"),
        ("host", "text"),
        ("pid", "num"),
        ("queues", "text"),
        ("held", "num"),
        ("last heartbeat", "time"),
        ("state", "fixed"),
    )
    for v in views:
        t.add_row(
            v.owner,
            v.host,
            "" if v.pid is None else str(v.pid),
            ", ".join(v.queues),
            str(v.held),
            local_time(v.last_heartbeat),
            "[green]alive[/]" if v.alive else "[bold yellow]dead[/]",
        )
    show(out, t)


# -- durable queues ---------------------------------------------------------------------------


@click.group()
def queues() -> None:
    """Inspect queues."""


@queues.command("list")
@database_url_option
@json_option
def queues_list(database_url: str | None, as_json: bool) -> None:
    """Depth and age per queue: enqueued (of which delayed), running, oldest waiting."""
    with read_only(database_url) as storage:
        stats = storage.queue_stats()
        database = storage.describe()
    if as_json:
        print_json(
            "queues",
            database=database,
            queues=[
                {
                    "queue": row["queue"],
                    "enqueued": row["enqueued"],
                    "delayed": row["delayed"],
                    "running": row["running"],
                    "oldest_enqueued_at": iso(row["oldest"]),
                }
                for row in stats
            ],
        )
        return
    out = console()
    if not stats:
        out.print("no queued or running workflows")
        return
    t = table(
        ("queue", "id"),
        ("enqueued", "num"),
        ("delayed", "num"),
        ("running", "num"),
        ("oldest enqueued", "time"),
    )
    for row in stats:
        t.add_row(
            row["queue"],
            str(row["enqueued"]),
            str(row["delayed"]),
            str(row["running"]),
            local_time(row["oldest"]),
        )
    show(out, t)


# -- durable schedules ------------------------------------------------------------------------


@click.group()
def schedules() -> None:
    """Inspect the app's schedules."""


@schedules.command("list")
@database_url_option
@click.option(
    "--app",
    "app_path",
    required=True,
    metavar="MODULE:ATTR",
    help="The Durable application whose schedules to list, e.g. myproject.jobs:app.",
)
@json_option
def schedules_list(database_url: str | None, app_path: str, as_json: bool) -> None:
    """The app's schedules: cron, last tick fired and its workflow's status, next tick.

    Creates nothing.
    """
    from ..storage.views import get_view, last_ticks

    app = load_app(app_path)
    declared = app.schedules
    rows: list[dict[str, Any]] = []
    with read_only(database_url if database_url is not None else app.database_url) as storage:
        last = last_ticks(storage)
        now = now_ms()
        for name, schedule in sorted(declared.items()):
            tick = last.get(name)
            view = None
            if tick is not None:
                tick_iso = from_ms(tick).isoformat()  # type: ignore[union-attr]
                view = get_view(storage, f"{name}@{tick_iso}")
            rows.append(
                {
                    "schedule": name,
                    "cron": schedule.cron,
                    "catch_up": schedule.catch_up,
                    "last_tick": from_ms(tick),
                    "last_workflow_id": view.record.workflow_id if view else None,
                    "last_status": view.status if view else None,
                    "next_tick": from_ms(schedule.next_tick(now)),
                }
            )
        database = storage.describe()
    if as_json:
        print_json(
            "schedules",
            database=database,
            schedules=[
                {
                    **row,
                    "last_tick": iso(row["last_tick"]),
                    "next_tick": iso(row["next_tick"]),
                }
                for row in rows
            ],
        )
        return
    out = console()
    if not rows:
        out.print(f"{app_path} declares no schedule")
        return
    t = table(
        ("schedule", "id"),
        ("cron", "fixed"),
        ("last tick", "time"),
        ("last run", "id"),
        ("status", "fixed"),
        ("next tick", "time"),
    )
    for row in rows:
        t.add_row(
            row["schedule"],
            row["cron"],
            local_time(row["last_tick"]) or "never",
            row["last_workflow_id"] or "",
            styled(row["last_status"]) if row["last_status"] else "",
            local_time(row["next_tick"]),
        )
    show(out, t)
