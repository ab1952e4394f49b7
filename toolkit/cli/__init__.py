"""The ``durable`` command line.

One module per command group (:mod:`.workflows`, :mod:`.operate` for ``db``,
``worker``, ``workers``, ``queues`` and ``schedules``); what they share is in
:mod:`.common`. Commands that belong to other packages (``codemod`` and ``audit``
from :mod:`codemods`, ``dlq`` from :mod:`adapters`) and heavy ones are found by
name when they are called, so :mod:`toolkit` never imports them at module load.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import click

from .common import (
    LazyGroup,
    database_url_option,
    load_app,
    local_time,
    missing_extra,
    short_text,
    verbose,
    verbose_option,
)

__all__ = ["LazyGroup", "database_url_option", "load_app", "local_time", "main", "short_text"]

# name -> "module:attribute" of a click command, imported only when used.
LAZY_COMMANDS: dict[str, str] = {
    "codemod": "codemods.cli:codemod",
    "audit": "codemods.audit.cli:audit",
    "dlq": "adapters.cli:dlq",
}


class DurableGroup(LazyGroup):
    """The top group: an optional dependency that is missing is one line naming its extra."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            extra = missing_extra(exc)
            if extra is None:
                raise
            if verbose():
                traceback.print_exception(exc, file=sys.stderr)
            raise click.ClickException(
                f"this needs the module {exc.name!r}, which is not installed: {extra}"
            ) from exc


@click.group(cls=DurableGroup, lazy=LAZY_COMMANDS)
@click.version_option(package_name="durable-toolkit")
@verbose_option
def main() -> None:
    """durable: move hand-rolled retry logic to durable execution."""
    # A command's database error is its one ``Error:`` line; the storage's own warning
    # about it is for workers' logs (``durable worker`` configures logging, so it shows).
    logging.getLogger("toolkit.storage").addHandler(logging.NullHandler())


def _register() -> None:
    from .operate import db, queues, schedules, worker_command, workers
    from .workflows import workflows

    for command in (db, workflows, worker_command, queues, workers, schedules):
        main.add_command(command)


_register()
