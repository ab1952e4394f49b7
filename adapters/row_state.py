"""Where a legacy job table keeps the state of a row, and how the adapter reads and writes it.

Two families of tables:

* a status column (:class:`~adapters.legacy_table.StatusValues`): one column
  holds ``pending``/``running``/``done``/``failed`` values;
* no status column (:class:`StateColumns`): the state is in nullable columns
  (``locked_at``/``dequeued_at`` set when a row is taken, ``processed_at`` or a
  ``processed`` flag when done, ``failed_at`` when it failed for good), in a
  lease column ("invisible until"), or in the row's existence (rows deleted
  when they are done, or when they are claimed).

Both are seen by the adapter through :class:`RowState`: the conditions that
select rows in a state, the state of one row, and the values each transition
writes. ``None`` from :meth:`RowState.finish` means "delete the row".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

if TYPE_CHECKING:
    from .legacy_table import LegacyTable, StatusValues

ROLES = ("pending", "running", "done", "failed")

FAR_FUTURE = datetime(9999, 12, 31)
"""The lease a failed row keeps when the table has no other way to say it failed."""


@dataclass(frozen=True, kw_only=True)
class StateColumns:
    """The state of a row kept without a status column.

    ``taken``: a column set when a worker takes the row (``locked_at``,
    ``dequeued_at``, ``started_at``: a time; or a flag, ``locked``) and NULL
    (false) while it is pending.
    ``lease``: ``taken`` is an "invisible until" time instead: a row is pending
    when it is NULL or past; the adapter writes now + ``lease`` when it starts a
    row and at each failed attempt. ``done`` and ``failed``: columns set when
    the row is done or failed for good (a time, or a boolean flag), NULL (or
    false) otherwise. ``delete``: ``"done"``, rows are deleted when done;
    ``"claimed"``, rows are deleted when taken (their values are recorded in
    the workflow first). A failed row is marked by ``failed`` when given, else
    it keeps ``taken`` set (a lease moves to 9999-12-31) and is never started
    again by the adapter; with ``delete="claimed"`` it is gone, and lives on as
    the workflow's dead letter.
    """

    taken: str | None = None
    lease: timedelta | None = None
    done: str | None = None
    failed: str | None = None
    delete: Literal["done", "claimed"] | None = None

    def __post_init__(self) -> None:
        if self.delete not in (None, "done", "claimed"):
            raise ValueError(
                f"StateColumns: delete must be 'done', 'claimed' or None, not {self.delete!r}"
            )
        if self.lease is not None and self.taken is None:
            raise ValueError("StateColumns: lease= needs the taken= column it is kept in")
        if self.delete is not None and self.done is not None:
            raise ValueError("StateColumns: done= and delete= are two ways to say done; give one")
        if self.delete == "claimed" and (self.taken or self.failed):
            raise ValueError(
                "StateColumns: with delete='claimed' a taken row is gone: no taken=/failed="
            )
        if self.delete is None and self.taken is None and self.done is None:
            raise ValueError(
                "StateColumns: give taken=, done= or delete= (else every row looks pending)"
            )
        if self.delete == "done" and self.taken is None and self.failed is None:
            raise ValueError(
                "StateColumns: with delete='done', a failed row must be told apart from a pending "
                "one: give failed= or taken="
            )

    def declared(self) -> dict[str, str]:
        """Role -> column name, for the declared state columns."""
        roles = (("taken", self.taken), ("done", self.done), ("failed", self.failed))
        return {role: name for role, name in roles if name is not None}


def is_flag(column: sa.Column[Any]) -> bool:
    """Whether a state column is a boolean flag (else a time: NULL means unset)."""
    typ = column.type
    if isinstance(typ, sa.Boolean):
        return True
    return getattr(typ, "display_width", None) == 1  # MySQL/MariaDB BOOLEAN is TINYINT(1)


class RowState:
    """The state machine of one table's rows, as the adapter sees it (see the module)."""

    def __init__(self, legacy: LegacyTable) -> None:
        self.legacy = legacy

    # conditions (SQL) and the state of one row (Python), for legacy.table
    def cond(self, role: str, now: datetime) -> sa.ColumnElement[bool] | None:
        raise NotImplementedError

    def of(self, m: Any, now: datetime) -> str:
        raise NotImplementedError

    def holds(self, m: Any | None) -> tuple[bool, str]:
        """Whether a row read by a write-back is still the workflow's (lock owner aside)."""
        raise NotImplementedError

    def begin(self, now: datetime) -> dict[str, Any] | None:
        """Values that mark a pending row running (``None``: delete it)."""
        raise NotImplementedError

    def keep_running(self, now: datetime) -> dict[str, Any]:
        """Values written at a failed attempt with budget left (a lease is renewed)."""
        return {}

    def finish(self, role: str, now: datetime) -> dict[str, Any] | None:
        """Values that end a running row as ``done`` or ``failed`` (``None``: delete it)."""
        raise NotImplementedError

    def requeue(self) -> dict[str, Any]:
        """Values that put a running row back to pending (the sweeper)."""
        raise NotImplementedError

    def unfail(self, now: datetime, running: bool) -> dict[str, Any]:
        """Values that put a failed row back to pending, or to running (a dead letter's retry)."""
        raise NotImplementedError

    @property
    def deletes_on_claim(self) -> bool:
        return False

    @property
    def tells_end(self) -> bool:
        """Whether a row that ended (done or failed) never looks running."""
        return True

    def counts(self, conn: sa.Connection, now: datetime) -> dict[Any, int]:
        raise NotImplementedError

    def label(self, value: Any) -> str:
        return str(value)

    def role_of(self, value: Any) -> str:
        """The role (pending, running, done, failed, other) of a key of :meth:`counts`."""
        return str(value) if value in ROLES else "other"

    def order(self) -> list[Any]:
        return list(ROLES)


class StatusState(RowState):
    """A status column with a value per state."""

    def __init__(self, legacy: LegacyTable, values: StatusValues) -> None:
        super().__init__(legacy)
        self.values = values

    @property
    def column(self) -> sa.Column[Any]:
        return self.legacy.reflected.c[self.values.column]

    def cond(self, role: str, now: datetime) -> sa.ColumnElement[bool] | None:
        return self.column == getattr(self.values, role)

    def of(self, m: Any, now: datetime) -> str:
        value = m[self.values.column]
        for role in ROLES:
            if value == getattr(self.values, role):
                return role
        return "other"

    def holds(self, m: Any | None) -> tuple[bool, str]:
        if m is None:
            return False, "the row no longer exists"
        value = m[self.values.column]
        if value != self.values.running:
            return False, f"its status is {value!r}"
        return True, ""

    def begin(self, now: datetime) -> dict[str, Any] | None:
        return {self.values.column: self.values.running}

    def finish(self, role: str, now: datetime) -> dict[str, Any] | None:
        return {self.values.column: getattr(self.values, role)}

    def requeue(self) -> dict[str, Any]:
        return {self.values.column: self.values.pending}

    def unfail(self, now: datetime, running: bool) -> dict[str, Any]:
        return {self.values.column: self.values.running if running else self.values.pending}

    def counts(self, conn: sa.Connection, now: datetime) -> dict[Any, int]:
        col = self.column
        rows = conn.execute(sa.select(col, sa.func.count()).group_by(col)).all()
        return {value: int(n) for value, n in rows}

    def label(self, value: Any) -> str:
        for role in ROLES:
            if value == getattr(self.values, role):
                return f"{value} ({role})" if str(value) != role else role
        return str(value)

    def role_of(self, value: Any) -> str:
        for role in ROLES:
            if value == getattr(self.values, role):
                return role
        return "other"

    def order(self) -> list[Any]:
        return list(self.values.declared)


class ColumnsState(RowState):
    """State in nullable columns, a lease, or the row's existence (:class:`StateColumns`)."""

    def __init__(self, legacy: LegacyTable, spec: StateColumns) -> None:
        super().__init__(legacy)
        self.spec = spec

    def _col(self, role: str) -> sa.Column[Any] | None:
        name = self.spec.declared().get(role)
        return self.legacy.reflected.c[name] if name is not None else None

    def _set(self, role: str) -> sa.ColumnElement[bool] | None:
        col = self._col(role)
        if col is None:
            return None
        return col == sa.true() if is_flag(col) else col.is_not(None)

    def _value(self, col: sa.Column[Any], now: datetime) -> Any:
        return True if is_flag(col) else self.legacy.time_value(col, now)

    def _unset(self, col: sa.Column[Any]) -> Any:
        return False if is_flag(col) and not col.nullable else None

    def _ended(self) -> sa.ColumnElement[bool]:
        ends = [c for c in (self._set("done"), self._set("failed")) if c is not None]
        return sa.or_(*ends) if ends else sa.false()

    def _taken(self, now: datetime) -> sa.ColumnElement[bool]:
        taken = self._col("taken")
        if taken is None:
            return sa.false()
        if self.spec.lease is not None:
            return sa.and_(taken.is_not(None), taken > self.legacy.time_value(taken, now))
        return taken == sa.true() if is_flag(taken) else taken.is_not(None)

    def cond(self, role: str, now: datetime) -> sa.ColumnElement[bool] | None:
        ended = self._ended()
        if role == "pending":
            return sa.and_(sa.not_(ended), sa.not_(self._taken(now)))
        if role == "running":
            if self._col("taken") is None:
                return None
            return sa.and_(sa.not_(ended), self._taken(now))
        return self._set(role)

    def _is_set(self, m: Any, role: str) -> bool:
        col = self._col(role)
        if col is None:
            return False
        value = m[col.name]
        return bool(value) if is_flag(col) else value is not None

    def of(self, m: Any, now: datetime) -> str:
        if self._is_set(m, "failed"):
            return "failed"
        if self._is_set(m, "done"):
            return "done"
        taken = self._col("taken")
        if taken is not None and is_flag(taken):
            return "running" if m[taken.name] else "pending"
        if taken is not None and m[taken.name] is not None:
            if self.spec.lease is None:
                return "running"
            until = self.legacy.as_datetime(m[taken.name])
            return "running" if until is None or until > now else "pending"
        return "pending"

    def holds(self, m: Any | None) -> tuple[bool, str]:
        if self.spec.delete == "claimed":
            return True, ""  # deleted when it was taken: the workflow is all there is
        if m is None:
            return False, "the row no longer exists"
        if self._is_set(m, "failed") or self._is_set(m, "done"):
            return False, "it has ended already"
        if self._col("taken") is not None and not self._is_set(m, "taken"):
            return False, f"its {self.spec.taken!r} is empty (it was put back)"
        return True, ""

    def begin(self, now: datetime) -> dict[str, Any] | None:
        if self.spec.delete == "claimed":
            return None
        taken = self._col("taken")
        if taken is None:
            return {}
        when = now + self.spec.lease if self.spec.lease is not None else now
        return {taken.name: self._value(taken, when)}

    def keep_running(self, now: datetime) -> dict[str, Any]:
        taken = self._col("taken")
        if taken is None or self.spec.lease is None:
            return {}
        return {taken.name: self.legacy.time_value(taken, now + self.spec.lease)}

    def finish(self, role: str, now: datetime) -> dict[str, Any] | None:
        if self.spec.delete == "claimed":
            return {}
        if role == "done":
            done = self._col("done")
            if done is not None:
                return {done.name: self._value(done, now)}
            return None if self.spec.delete == "done" else {}  # else it keeps `taken` set
        failed = self._col("failed")
        if failed is not None:
            return {failed.name: self._value(failed, now)}
        taken = self._col("taken")
        if taken is not None and self.spec.lease is not None:
            return {
                taken.name: self.legacy.time_value(taken, FAR_FUTURE.replace(tzinfo=now.tzinfo))
            }
        return {}  # it keeps `taken` set: never pending again

    def requeue(self) -> dict[str, Any]:
        taken = self._col("taken")
        return {taken.name: self._unset(taken)} if taken is not None else {}

    def unfail(self, now: datetime, running: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        failed = self._col("failed")
        if failed is not None:
            values[failed.name] = self._unset(failed)
        taken = self._col("taken")
        if taken is not None:
            if running:
                values.update(self.begin(now) or {})
            else:
                values[taken.name] = self._unset(taken)
        return values

    @property
    def deletes_on_claim(self) -> bool:
        return self.spec.delete == "claimed"

    @property
    def tells_end(self) -> bool:
        spec = self.spec
        if spec.delete == "claimed":
            return True
        return (spec.done is not None or spec.delete == "done") and spec.failed is not None

    def counts(self, conn: sa.Connection, now: datetime) -> dict[Any, int]:
        out: dict[Any, int] = {}
        t = self.legacy.reflected
        for role in ROLES:
            cond = self.cond(role, now)
            if cond is None:
                continue
            n = int(
                conn.execute(sa.select(sa.func.count()).select_from(t).where(cond)).scalar_one()
            )
            if n:
                out[role] = n
        return out
