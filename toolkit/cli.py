"""The ``durable`` command line.

Commands that belong to other packages (``codemod`` from :mod:`codemods`,
``adapters``) are found by name when they are called, so :mod:`toolkit`
never imports them at module load.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command, imported only when used.
LAZY_COMMANDS: dict[str, str] = {
    "codemod": "codemods.cli:codemod",
    "audit": "toolkit.audit.cli:audit",
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
