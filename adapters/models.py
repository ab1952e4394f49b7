"""A legacy job table declared as a Django or SQLAlchemy model, mapped from the model.

:func:`table_of` reads what the adapter needs from the model class itself:
the table name and schema, the key (the primary key), the database column of
each field (a Django ``db_column`` or a SQLAlchemy attribute named unlike its
column) and the choices of a status field. Django models are read through
their ``_meta`` API (Django need not be imported here: the model class the
caller hands over carries it); SQLAlchemy models are a ``Table`` or a
declarative class (its ``__table__`` and mapper).

:func:`infer_status` and :func:`infer_columns` fill what was not given from
the conventional names real job tables use (``status``/``state`` with values
such as ``queued``/``processing``/``sent``/``failed``; ``attempts``/``retries``;
``last_error``; ``locked_at``...). Everything inferred is shown by
``adapter.shadow()`` (``mapping:`` line) and checked against the real table
like a hand-written mapping, so a wrong guess is one clear line, never a
silent write.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from .legacy_table import JsonKey, LegacyColumns, MappingError, StatusValues
from .row_state import StateColumns

STATUS_FIELDS = ("status", "state", "job_status")
ROLE_VALUES = {
    "pending": ("pending", "queued", "new", "todo", "ready", "waiting", "scheduled", "requeued"),
    "running": ("running", "processing", "in_progress", "started", "doing", "working", "active"),
    "done": ("done", "succeeded", "success", "completed", "complete", "sent", "finished"),
    "failed": ("failed", "failure", "error", "errored", "dead", "broken"),
}
COLUMN_NAMES = {
    "attempts": ("attempts", "attempt", "retries", "retry_count", "num_retries",
                 "number_of_retries", "tries", "try_count"),
    "last_error": ("last_error", "error", "error_message", "exception", "exc_info", "traceback"),
    "next_retry_at": ("next_retry_at", "retry_at", "next_attempt_at", "run_after", "run_at",
                      "scheduled_time", "scheduled_at", "execute_at", "eta", "not_before"),
    "locked_by": ("locked_by", "lock_owner", "worker_id", "claimed_by"),
    "locked_at": ("locked_at", "claimed_at", "started_at", "date_started"),
    "updated_at": ("updated_at", "modified_at", "modified", "last_modified", "date_modified"),
}  # fmt: skip


@dataclass(frozen=True)
class ModelTable:
    """What a model says about its table: name, schema, key, field -> column, choices."""

    table: str
    schema: str | None
    key: str
    columns: dict[str, str]
    """Field (attribute) name -> database column name."""
    choices: dict[str, list[Any]] = field(default_factory=dict)
    """Database column -> the values its field allows (Django ``choices``)."""
    source: str = ""

    def column(self, name: str) -> str:
        """The database column of a field (or of a column given by its own name)."""
        if name in self.columns:
            return self.columns[name]
        if name in self.columns.values():
            return name
        raise MappingError(
            f"model {self.source} has no field {name!r} (its fields: {', '.join(self.columns)})"
        )


def table_of(model: Any) -> ModelTable:
    """Read a Django model class, a SQLAlchemy declarative class or a ``sa.Table``."""
    meta = getattr(model, "_meta", None)
    if meta is not None and hasattr(meta, "db_table") and hasattr(meta, "concrete_fields"):
        return _django(model, meta)
    if isinstance(model, sa.Table):
        return _sqlalchemy_table(model, model, {c.key: c.name for c in model.columns})
    table = getattr(model, "__table__", None)
    if isinstance(table, sa.Table):
        mapper = sa.inspect(model)
        columns = {
            attr.key: attr.columns[0].name
            for attr in mapper.column_attrs
            if attr.columns and isinstance(attr.columns[0], sa.Column)
        }
        return _sqlalchemy_table(model, table, columns)
    raise TypeError(
        f"{model!r} is neither a Django model class, a SQLAlchemy declarative class nor a Table"
    )


def _django(model: Any, meta: Any) -> ModelTable:
    name = f"{meta.app_label}.{model.__name__}"
    pk = meta.pk
    columns: dict[str, str] = {}
    choices: dict[str, list[Any]] = {}
    for f in meta.concrete_fields:
        columns[f.name] = f.column
        if getattr(f, "attname", f.name) != f.name:
            columns[f.attname] = f.column  # a ForeignKey's "<name>_id"
        if f.choices:
            choices[f.column] = [value for value, _label in f.flatchoices]
    schema = None
    table = meta.db_table
    return ModelTable(table, schema, pk.column, columns, choices, f"{name} (Django)")


def _sqlalchemy_table(model: Any, table: sa.Table, columns: dict[str, str]) -> ModelTable:
    keys = list(table.primary_key.columns)
    if len(keys) != 1:
        raise MappingError(
            f"table {table.name!r} of model {getattr(model, '__name__', table.name)} has "
            f"{len(keys)} primary key columns; the adapter needs one key column (key=...)"
        )
    choices = {
        c.name: list(c.type.enums)
        for c in table.columns
        if isinstance(c.type, sa.Enum) and c.type.enums
    }
    name = getattr(model, "__name__", table.name)
    return ModelTable(
        table.name, table.schema, keys[0].name, columns, choices, f"{name} (SQLAlchemy)"
    )


def infer_status(model: ModelTable, status: StatusValues | None) -> StatusValues:
    """The status mapping with its column translated to the database column.

    Without one, a field named ``status``/``state`` whose choices (Django
    ``choices``, a SQLAlchemy ``Enum``) name each of the four states
    conventionally is used; the remaining choices are ``other``.
    """
    if status is not None:
        column = model.column(status.column)
        allowed = model.choices.get(column)
        if allowed:
            missing = [v for v in status.declared[:4] if v not in allowed]
            if missing:
                raise MappingError(
                    f"model {model.source}: field {status.column!r} allows "
                    f"{', '.join(map(repr, allowed))}, not {', '.join(map(repr, missing))}"
                )
        return replace(status, column=column)
    for name in STATUS_FIELDS:
        if name not in model.columns:
            continue
        column = model.columns[name]
        values = model.choices.get(column)
        if not values:
            continue
        roles: dict[str, Any] = {}
        for role, names in ROLE_VALUES.items():
            found = [v for v in values if isinstance(v, str) and v.lower() in names]
            if found:
                roles[role] = found[0]
        if len(roles) == 4:
            other = tuple(v for v in values if v not in roles.values())
            return StatusValues(column=column, other=other, **roles)
        missing = [r for r in ROLE_VALUES if r not in roles]
        raise MappingError(
            f"model {model.source}: cannot tell which of {', '.join(map(repr, values))} "
            f"(field {name!r}) means {', '.join(missing)}; pass status=StatusValues(...)"
        )
    raise MappingError(
        f"model {model.source} has no status field with choices; pass status=StatusValues(...) "
        "or a StateColumns(...) for a table without one"
    )


def translate_state(model: ModelTable, state: StateColumns) -> StateColumns:
    """A StateColumns given by field names, with database column names."""
    names = {role: model.column(name) for role, name in state.declared().items()}
    return replace(
        state, taken=names.get("taken"), done=names.get("done"), failed=names.get("failed")
    )


def infer_columns(model: ModelTable, columns: LegacyColumns | None) -> LegacyColumns:
    """Bookkeeping columns given by field names (translated), else found by conventional names."""
    if columns is not None:
        attempts = columns.attempts
        if isinstance(attempts, JsonKey):
            attempts = JsonKey(model.column(attempts.column), attempts.key)
        elif attempts is not None:
            attempts = model.column(attempts)

        def col(name: str | None) -> str | None:
            return model.column(name) if name is not None else None

        return LegacyColumns(
            attempts=attempts,
            last_error=col(columns.last_error),
            next_retry_at=col(columns.next_retry_at),
            locked_by=col(columns.locked_by),
            locked_at=col(columns.locked_at),
            updated_at=col(columns.updated_at),
        )
    found: dict[str, str] = {}
    for role, names in COLUMN_NAMES.items():
        for name in names:
            if name in model.columns and model.columns[name] != model.key:
                found[role] = model.columns[name]
                break
    return LegacyColumns(**found)
