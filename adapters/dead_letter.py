"""Dead letters: failed workflows, native or imported from a legacy dead-letter table.

A *dead letter* is a workflow in status ``failed``: it ran out of attempts (or
hit an error its retry policy does not retry) and waits for someone to look at
it, retry it or throw it away. Workflows of the app end up there on their own;
:class:`DeadLetterTable` imports the rows of a legacy dead-letter table
(``failed_jobs``) as such workflows, and exports failed workflows back into the
table for the consumers that still read it. :mod:`adapters.rabbitmq` does the
same for a RabbitMQ dead-letter queue.

An imported dead letter is an ordinary failed workflow of the workflow that
retries it, whose input is the legacy payload: retrying it (``resume``) runs
that workflow from its first step, and on success it ends ``succeeded``. Its
error keeps the legacy error text, its creation time the legacy failure time,
and a ``dead_letter`` entry in the error says where it came from. Its id holds
the legacy key, so importing the same row twice creates nothing new.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchTableError

from toolkit import Durable, WorkflowHandle, WorkflowRecord
from toolkit.errors import DatabaseUnavailableError, DurableError, SerializationError
from toolkit.storage import describe_url, now_ms

__all__ = [
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterTable",
    "ExportResult",
    "ImportResult",
    "dead_letter_row",
    "get_dead_letter",
    "list_dead_letters",
    "purge_dead_letters",
    "retry_dead_letter",
]

DETAILS_EVENT = "durable.dead_letter"
"""The event of an imported dead letter that says where it came from (JSON).

An event, not part of the error: it stays when a retry fails again.
"""

Mode = Literal["shadow", "takeover"]

_BATCH = 500


class DeadLetterError(DurableError):
    """A dead-letter source is misdeclared or unusable, or a workflow is not a dead letter."""


# -- dead letters in the durable store ----------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """A failed workflow, with where it came from when it was imported.

    ``source`` is ``"native"`` for a workflow that failed in this toolkit, else
    the legacy source (``"table failed_jobs"``, ``"rabbitmq orders.dlq"``).
    ``details`` holds what the import kept (the legacy key and failure time, the
    RabbitMQ ``x-death`` history, ...). ``failed_at`` is the legacy failure time of
    an imported dead letter, else the time the workflow failed.
    """

    workflow_id: str
    name: str
    status: str
    source: str
    failed_at: datetime
    error_type: str
    error_message: str
    traceback: str
    details: dict[str, Any]
    inputs: str | None
    record: WorkflowRecord = field(repr=False)

    @property
    def imported(self) -> bool:
        return self.source != "native"


def _details(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def as_dead_letter(record: WorkflowRecord, details_json: str | None) -> DeadLetter:
    """The dead-letter view of a workflow record and its import details (JSON text)."""
    details = _details(details_json)
    error = record.error or {}
    failed_at = record.updated_at
    if details and record.created_at == record.updated_at:
        failed_at = record.created_at  # imported and not retried: the legacy failure time
    return DeadLetter(
        workflow_id=record.workflow_id,
        name=record.name,
        status=record.status,
        source=str(details.get("source_label", "native")) if details else "native",
        failed_at=failed_at,
        error_type=error.get("type", ""),
        error_message=error.get("message", ""),
        traceback=error.get("traceback", ""),
        details=details,
        inputs=record.inputs,
        record=record,
    )


def list_dead_letters(
    app: Durable, *, name: str | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """Failed workflows (native and imported), newest first, optionally of one name."""
    records = app.list_workflows(status="failed", name=name, limit=limit)
    details = app.storage.get_events(DETAILS_EVENT, [r.workflow_id for r in records])
    return [as_dead_letter(r, details.get(r.workflow_id)) for r in records]


def get_dead_letter(app: Durable, workflow_id: str) -> DeadLetter:
    """One workflow as a dead letter (whatever its status now: a retried one may have succeeded)."""
    record = app.get_workflow(workflow_id)
    details = app.storage.get_events(DETAILS_EVENT, [workflow_id])
    return as_dead_letter(record, details.get(workflow_id))


def retry_dead_letter(app: Durable, workflow_id: str) -> WorkflowHandle:
    """Retry a failed workflow: it runs again (``app.resume``).

    Recorded steps are replayed and the failed step gets a fresh attempt budget;
    a status-column row's workflow (its adapter must be constructed on ``app``)
    first has its legacy row put back to running, then gets fresh attempts of
    its handler, its ``attempts`` column counting on;
    an imported dead letter has no steps, so its workflow runs from the start
    with the legacy payload. One that came from a queue goes back to it
    (``enqueued``) and a worker serving the queue runs it, under the queue's
    limits. Any other runs in this process at once if registered in ``app``,
    else a worker (or ``recover()``) that has it runs it.
    """
    record = app.get_workflow(workflow_id)
    if record.status != "failed":
        raise DeadLetterError(
            f"workflow {workflow_id!r} is not a dead letter: its status is {record.status}"
        )
    from .status_column import RetryRefusedError, adapter_of

    adapter = adapter_of(app, record.name)
    if adapter is not None:
        try:  # the row back to running: fresh attempts of its handler follow
            adapter.prepare_retry(workflow_id)
        except RetryRefusedError as exc:
            raise DeadLetterError(str(exc)) from None
    elif any(s.name == f"{record.name}.give_up" for s in app.list_steps(workflow_id)):
        raise DeadLetterError(
            f"workflow {workflow_id!r} runs a row of a legacy table: retry it where its "
            "StatusColumnAdapter is constructed (durable dlq retry --app MODULE:ATTR), which "
            "puts the row back to running first; nothing was changed"
        )
    return app.resume(workflow_id)


def purge_dead_letters(app: Durable, workflow_ids: Sequence[str]) -> list[str]:
    """Delete failed workflows with their steps, messages and events; return the ids deleted.

    A workflow that is not (or no longer) ``failed`` is left alone. Purging an
    imported dead letter does not touch the legacy table: import it with
    ``delete=True`` (a move) if its row must not come back on the next import.
    """
    return app.storage.delete_workflows(list(workflow_ids), status="failed")


def dead_letter_row(
    app: Durable,
    *,
    workflow_id: str,
    name: str,
    payload: Any,
    error_type: str,
    message: str,
    failed_at_ms: int,
    details: Mapping[str, Any],
    traceback: str = "",
) -> dict[str, Any]:
    """The stored row of an imported dead letter (for ``Storage.insert_failed_workflows``).

    The workflow's input is the payload (its one positional argument); the error
    keeps the legacy text; ``details`` are stored as the event :data:`DETAILS_EVENT`.
    """
    try:
        inputs = app.serializer.dumps({"args": [payload], "kwargs": {}})
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"the payload of dead letter {workflow_id!r} cannot be serialized: {exc}"
        ) from exc
    error = {"type": error_type, "message": message, "traceback": traceback}
    return {
        "workflow_id": workflow_id,
        "name": name,
        "inputs": inputs,
        "error": json.dumps(error),
        "failed_at": failed_at_ms,
        "events": {DETAILS_EVENT: json.dumps(dict(details), default=str, sort_keys=True)},
    }


def workflow_name(workflow: Callable[..., Any] | str) -> str:
    """The registered name of a workflow given as its decorated function or its name."""
    if isinstance(workflow, str):
        return workflow
    declared = getattr(workflow, "__durable_workflow__", None)
    if declared is None:
        raise DeadLetterError(
            f"{getattr(workflow, '__qualname__', workflow)!r} is not a workflow: decorate it "
            "with @app.workflow() or give its registered name"
        )
    return str(declared.name)


def payload_of(app: Durable, record: WorkflowRecord) -> Any:
    """The input of a workflow as one value: its single argument, else ``{"args", "kwargs"}``."""
    if record.inputs is None:
        return None
    data = app.serializer.loads(record.inputs)
    args, kwargs = list(data.get("args", [])), dict(data.get("kwargs", {}))
    if len(args) == 1 and not kwargs:
        return args[0]
    return {"args": args, "kwargs": kwargs}


# -- time values ----------------------------------------------------------------------------


def to_ms(value: Any) -> int | None:
    """A legacy failure time as epoch milliseconds; ``None`` when it cannot be read.

    Naive datetimes are taken as UTC; numbers above 10^11 as milliseconds, else seconds.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            return None
        return int(number) if abs(number) >= 1e11 else int(number * 1000)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        try:
            return to_ms(float(text))
        except ValueError:
            pass
        try:
            return to_ms(datetime.fromisoformat(text))
        except ValueError:
            return None
    return None


def _time_for_column(column: sa.Column[Any], when: datetime) -> Any:
    """A UTC time in the shape a legacy column holds it."""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return when if kind.timezone else when.astimezone(UTC).replace(tzinfo=None)
    if isinstance(kind, sa.Date):
        return when.astimezone(UTC).date()
    if isinstance(kind, sa.Integer):
        return int(when.timestamp())
    if isinstance(kind, sa.Numeric | sa.Float):
        return when.timestamp()
    return when.astimezone(UTC).isoformat()


# -- a legacy dead-letter table -------------------------------------------------------------


@dataclass
class ImportResult:
    """What an import did (or, in shadow mode, would do)."""

    imported: list[str] = field(default_factory=list)
    """Ids of the workflows created (shadow: that would be created)."""
    already: list[str] = field(default_factory=list)
    """Ids that were imported before: nothing changed for them."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(legacy key, reason) of the rows or messages left as they are."""
    removed: int = 0
    """Legacy rows deleted (``delete=True``) or messages acknowledged (RabbitMQ)."""
    shadow: bool = False


@dataclass
class ExportResult:
    """What an export wrote (or, in shadow mode, would write)."""

    written: list[str] = field(default_factory=list)
    """Ids of the workflows written into the legacy table."""
    already: list[str] = field(default_factory=list)
    """Ids already in the legacy table: nothing written for them."""
    shadow: bool = False


def legacy_engine(url: str | URL) -> sa.Engine:
    """An engine on a legacy database: ``postgresql://`` uses psycopg 3, ``mysql://`` PyMySQL."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DeadLetterError(
            "invalid legacy database URL: expected e.g. sqlite:///legacy.db, "
            "postgresql://user@host/db or mysql+pymysql://user@host/db"
        ) from None
    driver = parsed.drivername
    if driver in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif driver in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise DeadLetterError(
            f"cannot use the legacy database {describe_url(parsed)}: {exc}"
        ) from None


class DeadLetterTable:
    """A legacy dead-letter table, e.g. ``failed_jobs(id, payload, error, failed_at)``.

    ``key`` is the column that identifies a row, ``payload`` holds the job's
    input as JSON text (or a JSON column), ``error`` the error text and
    ``failed_at`` the failure time (a timestamp, epoch seconds or ISO text).
    ``workflow`` is the workflow that retries a row: it receives the payload as
    its one argument. ``columns`` are further columns kept with the import
    (shown by ``durable dlq show``).

    The table lives in the app's database unless ``url`` names another one
    (SQLite, PostgreSQL or MySQL/MariaDB). It is reflected and checked before
    anything is read or written: a missing table or column is one clear error.

    Export needs a column that holds the workflow id: ``workflow_id_column``,
    else the key column itself (it must then be a text column);
    ``export_values`` gives constant values for further columns that need one.
    """

    def __init__(
        self,
        app: Durable,
        *,
        table: str,
        key: str,
        payload: str,
        error: str,
        failed_at: str,
        workflow: Callable[..., Any] | str,
        url: str | URL | None = None,
        schema: str | None = None,
        columns: Sequence[str] = (),
        workflow_id_column: str | None = None,
        export_values: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.table_name = table
        self.schema = schema
        self.key = key
        self.payload = payload
        self.error = error
        self.failed_at = failed_at
        self.workflow = workflow_name(workflow)
        self.columns = list(columns)
        self.workflow_id_column = workflow_id_column
        self.export_values = dict(export_values or {})
        self._url = url
        self._engine: sa.Engine | None = None
        self._table: sa.Table | None = None

    # -- where the table is --

    @property
    def same_database(self) -> bool:
        """Whether the table is in the app's database (import and delete then commit together)."""
        return self._url is None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = (
                self.app.storage.engine if self._url is None else legacy_engine(self._url)
            )
        return self._engine

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table_name}" if self.schema else self.table_name

    def describe(self) -> str:
        return f"table {self.qualified_name} in {describe_url(self.engine.url)}"

    def workflow_id(self, key: Any) -> str:
        """The id of the workflow imported from the row with this key."""
        return f"dlq:{self.qualified_name}:{key}"

    def close(self) -> None:
        """Close the connections to a legacy database given by ``url``."""
        if self._engine is not None and self._url is not None:
            self._engine.dispose()
        self._engine = None

    # -- checking --

    def check(self, *, export: bool = False) -> sa.Table:
        """Reflect the table and check the declared columns; raise one clear error if not."""
        try:
            table = sa.Table(
                self.table_name, sa.MetaData(schema=self.schema), autoload_with=self.engine
            )
        except NoSuchTableError:
            raise DeadLetterError(
                f"the dead-letter table {self.qualified_name} does not exist in "
                f"{describe_url(self.engine.url)}"
            ) from None
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()
            raise DatabaseUnavailableError(
                f"cannot use the legacy database at {describe_url(self.engine.url)}: "
                f"{reason[0] if reason else type(exc).__name__}"
            ) from None
        wanted = {
            "key": self.key,
            "payload": self.payload,
            "error": self.error,
            "failed_at": self.failed_at,
        }
        wanted.update({f"column {c}": c for c in self.columns})
        if self.workflow_id_column:
            wanted["workflow_id_column"] = self.workflow_id_column
        if export:
            wanted.update({f"export value {c}": c for c in self.export_values})
        missing = [f"{role} {col!r}" for role, col in wanted.items() if col not in table.c]
        if missing:
            raise DeadLetterError(
                f"the dead-letter table {self.qualified_name} has no column for "
                f"{', '.join(missing)}; its columns are {', '.join(c.name for c in table.c)}"
            )
        if export:
            self._check_export(table)
        self._table = table
        return table

    def _id_column(self, table: sa.Table) -> sa.Column[Any]:
        return table.c[self.workflow_id_column or self.key]

    def _check_export(self, table: sa.Table) -> None:
        id_column = self._id_column(table)
        if not isinstance(id_column.type, sa.String):
            raise DeadLetterError(
                f"exporting into {self.qualified_name} needs a text column for the workflow "
                f"id, and {id_column.name!r} is {id_column.type}: give workflow_id_column"
            )
        written = {id_column.name, self.payload, self.error, self.failed_at, *self.export_values}
        needed = [
            c.name
            for c in table.c
            if c.name not in written
            and not c.nullable
            and c.default is None
            and c.server_default is None
            and not (c.primary_key and c.autoincrement in (True, "auto"))
        ]
        if needed:
            raise DeadLetterError(
                f"exporting into {self.qualified_name} needs values for the column(s) "
                f"{', '.join(needed)}: give them in export_values (--set COLUMN=VALUE)"
            )

    # -- import --

    def _rows(self, table: sa.Table, limit: int | None) -> Iterator[list[sa.Row[Any]]]:
        key = table.c[self.key]
        # Raw driver values: legacy columns often hold what their declared type does not
        # (epoch seconds in a TIMESTAMP column of SQLite); to_ms reads them all.
        cols = [
            sa.type_coerce(table.c[c], sa.types.NullType()).label(c)
            for c in dict.fromkeys(
                [self.key, self.payload, self.error, self.failed_at, *self.columns]
                + ([self.workflow_id_column] if self.workflow_id_column else [])
            )
        ]
        last: Any = None
        left = limit
        while left is None or left > 0:
            size = _BATCH if left is None else min(_BATCH, left)
            query = sa.select(*cols).order_by(key).limit(size)
            if last is not None:
                query = query.where(key > last)
            with self.engine.connect() as conn:
                rows: list[sa.Row[Any]] = list(conn.execute(query))
            if not rows:
                return
            yield rows
            last = rows[-1]._mapping[self.key]
            if left is not None:
                left -= len(rows)
            if len(rows) < size:
                return

    def _dead_letter(self, row: sa.Row[Any]) -> dict[str, Any] | str:
        """The stored row for a legacy row, or why it is skipped."""
        values = row._mapping
        raw = values[self.payload]
        if isinstance(raw, bytes | bytearray | memoryview):
            raw = bytes(raw).decode("utf-8", "replace")
        if isinstance(raw, str):
            try:
                payload = json.loads(raw)
            except ValueError as exc:
                return f"the payload is not JSON ({exc})"
        else:
            payload = raw  # a JSON column, already decoded
        error_text = values[self.error]
        error_text = "" if error_text is None else str(error_text)
        raw_time = values[self.failed_at]
        failed_ms = to_ms(raw_time)
        key = values[self.key]
        details: dict[str, Any] = {
            "source": "table",
            "source_label": f"table {self.qualified_name}",
            "table": self.qualified_name,
            "database": describe_url(self.engine.url),
            "key": key,
            "failed_at": raw_time,
        }
        if self.columns:
            details["columns"] = {c: values[c] for c in self.columns}
        if failed_ms is None:
            details["failed_at_unreadable"] = True
        first, _, rest = error_text.strip().partition("\n")
        return dead_letter_row(
            self.app,
            workflow_id=self.workflow_id(key),
            name=self.workflow,
            payload=payload,
            error_type=self.qualified_name,
            message=first,
            traceback=rest,
            failed_at_ms=failed_ms if failed_ms is not None else now_ms(),
            details=details,
        )

    def _exported(self, row: sa.Row[Any]) -> str | None:
        """The workflow id when the row was written by :meth:`export` (not to import back)."""
        values = row._mapping
        if self.workflow_id_column:
            value = values[self.workflow_id_column]
            return str(value) if value not in (None, "") else None
        key = str(values[self.key])
        if self.app.storage.get_workflow(key) is not None:
            return key
        return None

    def import_rows(
        self, *, mode: Mode = "takeover", delete: bool = False, limit: int | None = None
    ) -> ImportResult:
        """Import the table's rows as failed workflows of ``workflow``.

        Idempotent: a row imported before is left as it is. Rows that
        :meth:`export` wrote are skipped (they are workflows already), and so are
        rows whose payload is not JSON (reported in ``skipped``). With
        ``delete=True`` imported rows are deleted from the table: in the same
        transaction as the import when the table is in the app's database, else
        right after the import commits (a crash in between leaves rows whose next
        import is a no-op that deletes them). ``mode="shadow"`` reports what
        would be imported and changes nothing.
        """
        shadow = mode == "shadow"
        if mode not in ("shadow", "takeover"):
            raise ValueError(f"mode must be 'shadow' or 'takeover', not {mode!r}")
        table = self.check()
        storage = self.app.storage
        result = ImportResult(shadow=shadow)
        key_col = table.c[self.key]
        for rows in self._rows(table, limit):
            batch: list[dict[str, Any]] = []
            keys: list[Any] = []
            for row in rows:
                key = row._mapping[self.key]
                exported = self._exported(row)
                if exported is not None:
                    result.skipped.append((str(key), f"exported from workflow {exported}"))
                    continue
                built = self._dead_letter(row)
                if isinstance(built, str):
                    result.skipped.append((str(key), built))
                    continue
                batch.append(built)
                keys.append(key)
            ids = [r["workflow_id"] for r in batch]
            if shadow:
                for wid in ids:
                    exists = storage.get_workflow(wid) is not None
                    (result.already if exists else result.imported).append(wid)
                continue
            if delete and self.same_database:
                with storage.transaction() as conn:
                    inserted = storage.insert_failed_workflows(batch, conn)
                    result.removed += self._delete(conn, key_col, keys)
            else:
                inserted = storage.insert_failed_workflows(batch)
                if delete and keys:
                    with self.engine.begin() as conn:
                        result.removed += self._delete(conn, key_col, keys)
            for wid in ids:
                (result.imported if wid in inserted else result.already).append(wid)
        return result

    @staticmethod
    def _delete(conn: sa.Connection, key_col: sa.Column[Any], keys: list[Any]) -> int:
        if not keys:
            return 0
        stmt = sa.delete(key_col.table).where(key_col.in_(keys))
        return int(conn.execute(stmt).rowcount or 0)

    # -- export --

    def export(
        self,
        *,
        names: Sequence[Callable[..., Any] | str] | None = None,
        mode: Mode = "takeover",
        limit: int | None = None,
    ) -> ExportResult:
        """Write failed workflows into the legacy table, for consumers that still read it.

        Exports the failed workflows of ``workflow`` (or of ``names``), except those
        imported from this table. Idempotent: a workflow whose id is already in
        the table is not written again. ``mode="shadow"`` reports and writes nothing.
        """
        if mode not in ("shadow", "takeover"):
            raise ValueError(f"mode must be 'shadow' or 'takeover', not {mode!r}")
        table = self.check(export=True)
        wanted = [workflow_name(n) for n in names] if names else [self.workflow]
        prefix = self.workflow_id("")
        records: list[WorkflowRecord] = []
        for name in dict.fromkeys(wanted):
            records.extend(
                r
                for r in self.app.list_workflows(status="failed", name=name)
                if not r.workflow_id.startswith(prefix)
            )
        records.sort(key=lambda r: (r.updated_at, r.workflow_id))
        if limit is not None:
            records = records[:limit]
        result = ExportResult(shadow=mode == "shadow")
        id_col = self._id_column(table)
        json_payload = isinstance(table.c[self.payload].type, sa.JSON)
        for start in range(0, len(records), _BATCH):
            chunk = records[start : start + _BATCH]
            with self.engine.begin() as conn:
                present = {
                    str(v)
                    for v in conn.execute(
                        sa.select(id_col).where(id_col.in_([r.workflow_id for r in chunk]))
                    ).scalars()
                }
                values = []
                for r in chunk:
                    if r.workflow_id in present:
                        result.already.append(r.workflow_id)
                        continue
                    result.written.append(r.workflow_id)
                    values.append(self._export_values(table, r, json_payload))
                if values and mode == "takeover":
                    conn.execute(sa.insert(table), values)
        return result

    def _export_values(
        self, table: sa.Table, record: WorkflowRecord, json_payload: bool
    ) -> dict[str, Any]:
        payload = payload_of(self.app, record)
        error = record.error or {}
        text = f"{error.get('type', '')}: {error.get('message', '')}"
        if error.get("traceback"):
            text = f"{text}\n{error['traceback']}"
        values = dict(self.export_values)
        values.update(
            {
                self._id_column(table).name: record.workflow_id,
                self.payload: payload if json_payload else json.dumps(payload),
                self.error: text,
                self.failed_at: _time_for_column(table.c[self.failed_at], record.updated_at),
            }
        )
        return values
