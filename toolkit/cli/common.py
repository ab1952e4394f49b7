"""What every command group shares: the database options, opening the database
(read-only for the commands that only look), loading ``--app``, JSON output and tables."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..app import Durable
from ..errors import DurableError
from ..storage import describe_url, resolve_url

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.engine import URL

    from ..storage import Storage

JSON_VERSION = 1
"""The version of every ``--json`` document (a ``"version"`` field); a change that
removes or renames a field, or changes its meaning, bumps it."""

VERBOSE_KEY = "durable.verbose"


# -- -v / --verbose ---------------------------------------------------------------------


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> int:
    if value:
        ctx.meta[VERBOSE_KEY] = ctx.meta.get(VERBOSE_KEY, 0) + value
    return value


verbose_option = click.option(
    "-v",
    "--verbose",
    count=True,
    expose_value=False,
    is_eager=True,
    callback=_set_verbose,
    help="Say which database is used (password hidden); tracebacks of errors.",
)


def verbose() -> bool:
    """Whether ``-v`` was given to this command or to ``durable``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(VERBOSE_KEY))


def announce_database(url: Any) -> None:
    """With ``-v``: one line on stderr naming the database (password hidden)."""
    if verbose():
        shown = url if isinstance(url, str) else describe_url(url)
        click.echo(f"database: {shown}", err=True)


# -- --database-url -----------------------------------------------------------------------

_database_url = click.option(
    "--database-url",
    envvar="DURABLE_DATABASE_URL",
    default=None,
    metavar="URL",
    help="Database of the workflow state (default: $DURABLE_DATABASE_URL, "
    "else sqlite:///.durable/state.db).",
)


def database_url_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--database-url URL`` (passed as ``database_url``) and ``-v`` (say which database)."""
    return _database_url(verbose_option(fn))


app_database_url_option = click.option(
    "--app-database-url",
    envvar="DURABLE_APP_DATABASE_URL",
    default=None,
    metavar="URL",
    help="Database of the @transaction writes when it is not the workflow state's "
    "(default: $DURABLE_APP_DATABASE_URL, else the state database).",
)
"""``--app-database-url URL`` (passed as ``app_database_url``)."""

database_url_only = _database_url
"""``--database-url`` without ``-v``, for commands whose ``-v`` means more."""

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON document (see docs/cli.md)."
)


def fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc))


@contextlib.contextmanager
def open_app(database_url: str | None) -> Iterator[Durable]:
    """An app on the database, for commands that change workflows (first use creates or
    upgrades the tables); its errors become one-line CLI errors; closed after."""
    try:
        app = Durable(database_url)
        announce_database(app.database_url)
    except (DurableError, ValueError) as exc:
        raise fail(exc) from exc
    try:
        yield app
    except DurableError as exc:
        raise fail(exc) from exc
    finally:
        app.close()


@contextlib.contextmanager
def read_only(database_url: str | URL | None) -> Iterator[Storage]:
    """The storage, for commands that only look: creates nothing (no folder, file, schema
    or table); a database without the toolkit's tables is a one-line error."""
    from ..storage.readonly import open_read_only

    try:
        url = resolve_url(database_url)
        announce_database(url)
        storage = open_read_only(url)
    except (DurableError, ValueError) as exc:
        raise fail(exc) from exc
    try:
        yield storage
    except DurableError as exc:
        raise fail(exc) from exc
    finally:
        storage.dispose()


@contextlib.contextmanager
def read_only_app(database_url: str | None) -> Iterator[Durable]:
    """A ``Durable`` app whose database was checked read-only first: its first use finds
    the tables at this toolkit's version, so it creates and upgrades nothing."""
    with read_only(database_url):
        pass
    with open_app(database_url) as app:
        yield app


# -- --app ----------------------------------------------------------------------------------


def _blame(exc: BaseException) -> str:
    """``file:line`` where an import failed: a syntax error's own place, else the deepest
    frame outside the import machinery and the standard library."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_short_path(exc.filename)}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    stdlib = os.path.dirname(os.__file__)
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    keep = [
        f
        for f in frames
        if not f.filename.startswith("<")
        and not f.filename.startswith(stdlib)
        and not f.filename.startswith(ours)
    ]
    chosen = keep[-1] if keep else (frames[-1] if frames else None)
    return f"{_short_path(chosen.filename)}:{chosen.lineno}" if chosen else "?"


def _short_path(path: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(Path.cwd()))
    return path


def load_app(path: str) -> Durable:
    """The ``Durable`` app at ``package.module:attr`` (the current directory importable),
    or a one-line ``ClickException`` naming the file and line that failed (``-v``: the
    traceback on stderr)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise click.ClickException(f"--app must look like package.module:app, not {path!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (
            exc.name is not None
            and module_name.startswith(exc.name)
            and (module_name == exc.name or module_name.startswith(exc.name + "."))
        ):
            raise click.ClickException(
                f"cannot import {module_name!r}: no module named {exc.name!r} "
                f"(the current directory, {os.getcwd()}, is on the import path)"
            ) from exc
        raise _import_failed(module_name, exc) from exc
    except (Exception, SystemExit) as exc:  # the app module's own error, at import time
        raise _import_failed(module_name, exc) from exc
    app = getattr(module, attr, None)
    if not isinstance(app, Durable):
        found = "nothing" if app is None else f"a {type(app).__name__}"
        raise click.ClickException(
            f"{path} is not a toolkit.Durable application ({module_name}.{attr} is {found})"
        )
    return app


def _import_failed(module_name: str, exc: BaseException) -> click.ClickException:
    if verbose():
        traceback.print_exception(exc, file=sys.stderr)
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    hint = "" if verbose() else " (-v for the traceback)"
    extra = missing_extra(exc) if isinstance(exc, ModuleNotFoundError) else None
    if extra:
        hint = f"; {extra}{hint}"
    return click.ClickException(f"cannot import {module_name!r}: {_blame(exc)}: {detail}{hint}")


# -- missing extras -------------------------------------------------------------------------


def _extras() -> dict[str, str]:
    """Import name of each optional dependency -> the extra that installs it."""
    import re
    from importlib.metadata import PackageNotFoundError, requires

    found: dict[str, str] = {}
    try:
        lines = requires("durable-toolkit") or []
    except PackageNotFoundError:
        return found
    for line in lines:
        extra = re.search(r"""extra\s*==\s*['"]([\w.-]+)['"]""", line)
        name = re.match(r"[A-Za-z0-9._-]+", line)
        if extra and name and extra.group(1) not in ("test", "bench"):
            found.setdefault(name.group(0).lower().replace("-", "_"), extra.group(1))
    return found


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """``pip install 'durable-toolkit[EXTRA]'`` when ``exc`` is a missing optional dependency."""
    top = (exc.name or "").split(".")[0].lower()
    if not top:
        return None
    for dist, extra in _extras().items():
        if dist == top or dist.startswith(top + "_"):
            return f"pip install 'durable-toolkit[{extra}]'"
    return None


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
                extra = missing_extra(exc)
                hint = f": {extra}" if extra else f": {exc}"
                raise click.ClickException(
                    f"the '{cmd_name}' command needs the module {exc.name or module_name!r}{hint}"
                ) from exc
            command = getattr(module, attr)
            if not isinstance(command, click.Command):
                raise click.ClickException(f"{self.lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


# -- output ---------------------------------------------------------------------------------


def local_time(value: datetime | None) -> str:
    """A timestamp in local time for tables ("" for none). Shared by every command group."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def iso(value: datetime | None) -> str | None:
    """A timestamp for JSON: ISO 8601 in UTC, ``None`` for none."""
    return value.isoformat() if value else None


def short_text(text: str | None, width: int = 60) -> str:
    """``text`` cut to ``width`` characters with an ellipsis ("" for None)."""
    if text is None:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def stored_json(text: str | None) -> Any:
    """A stored value for JSON output: parsed when it is JSON text, else the text itself."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def print_json(kind: str, **fields: Any) -> None:
    """One JSON document ``{"version": 1, "kind": kind, ...}`` on stdout."""
    click.echo(json.dumps({"version": JSON_VERSION, "kind": kind, **fields}, indent=2))


STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "enqueued": "blue",
    "running": "cyan",
    "sleeping": "blue",
    "retrying": "magenta",
    "waiting": "bold yellow",
    "pending": "cyan",
}


def console() -> Console:
    """A console as wide as the terminal (``$COLUMNS`` when set); a line longer than that
    is left whole for the terminal to wrap (a traceback or payload is copied intact)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def table(*columns: tuple[str, str]) -> Table:
    """A table for :func:`show`. ``kind`` is ``id`` (kept whole on one line when the
    terminal allows, else folded: never cut), ``fixed`` (one line: statuses), ``num``,
    ``time`` (one line, or date and time on two) or ``text`` (wraps into what is left)."""
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header, kind in columns:
        if kind == "fixed":
            t.add_column(header, no_wrap=True, overflow="fold")
        elif kind == "time":
            t.add_column(header, overflow="fold")
        elif kind == "num":
            t.add_column(header, no_wrap=True, overflow="fold", justify="right")
        else:
            t.add_column(header, overflow="fold")
        t.columns[-1].meta = kind  # type: ignore[attr-defined]
    return t


def _cells_width(column: Any) -> int:
    from rich.text import Text

    cells = [column.header, *column.cells]
    return max(
        (max((len(x) for x in Text.from_markup(c).plain.splitlines()), default=0) for c in cells),
        default=0,
    )


TEXT_FLOOR = 15
"""Text columns keep at least this width (times wrap onto two lines first)."""


def show(out: Console, t: Table) -> None:
    """Print a table as wide as the terminal at most: one-line columns keep their width,
    then id columns get theirs (folded only when an id is wider than what is left, never
    cut), then times wrap their date and time onto two lines if they must, and text
    columns share the rest."""
    columns = t.columns
    want = [_cells_width(c) for c in columns]
    kinds = [getattr(c, "meta", "text") for c in columns]
    available = out.width - 3 * len(columns)  # padding, dividers and edges
    if sum(want) <= available:
        out.print(t)
        return
    width = {i: w for i, (w, k) in enumerate(zip(want, kinds, strict=True)) if k != "text"}
    texts = [i for i, k in enumerate(kinds) if k == "text"]
    soft = sum(min(want[i], TEXT_FLOOR) for i in texts)
    hard = sum(min(want[i], 8) for i in texts)
    if sum(width.values()) + soft > available:  # every time: date and time on two lines
        for i in [i for i, k in enumerate(kinds) if k == "time"]:
            width[i] = min(want[i], 10)
    over = sum(width.values()) + hard - available
    for i in sorted((i for i, k in enumerate(kinds) if k == "id"), key=lambda i: -want[i]):
        if over <= 0:
            break
        cut = max(min(over, width[i] - 8), 0)  # folded, never cut
        width[i] -= cut
        over -= cut
    for i in texts:
        width[i] = min(want[i], 8)
    rest = max(available - sum(width.values()), 0)
    total = sum(want[i] - width[i] for i in texts) or 1
    for i in texts:
        width[i] += rest * (want[i] - width[i]) // total
    for i, w in width.items():
        columns[i].width = w
    out.print(t)


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/]" if style else status
