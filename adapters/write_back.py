"""The write-backs of a row's workflow: each state change goes back to the legacy row.

Each is a guarded UPDATE (or DELETE) of one row, run as a ``@transaction`` when
the table shares the workflow database and as a step elsewhere (see
docs/adapters.md for the promise of each arrangement).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from toolkit import RetryPolicy

from .legacy_table import LegacyTable, _error_text, _retry_delay, json_row


class RowWriteBacks:
    """The write-back steps and row reads of the status-column adapter."""

    legacy: LegacyTable
    same_database: bool
    retry: RetryPolicy
    handler: Callable[[dict[str, Any]], Any] | None

    def _select_row(self, conn: sa.Connection, key: Any, lock: bool) -> sa.Row[Any] | None:
        t = self.legacy.table
        query = sa.select(t).where(t.c[self.legacy.key] == key)
        if lock:
            query = query.with_for_update()
        return conn.execute(query).first()

    def _holds(self, row: sa.Row[Any] | None, wid: str) -> tuple[bool, str]:
        """Whether the workflow ``wid`` holds a row (running, locked by it)."""
        m = row._mapping if row is not None else None
        held, reason = self.legacy.state.holds(m)
        if not held or m is None:
            return held, reason
        lock = self.legacy.columns.locked_by
        if lock is not None and m[lock] != wid:
            return False, f"it is locked by {m[lock]!r}"
        return True, ""

    def _stamp(self, values: dict[str, Any], now: datetime) -> None:
        col = self.legacy.col("updated_at")
        if col is not None:
            values[col.name] = self.legacy.time_value(col, now)

    def _write(self, conn: sa.Connection, key: Any, values: dict[str, Any] | None) -> None:
        """UPDATE the row with ``values`` (``None``: DELETE it)."""
        t = self.legacy.table
        where = t.c[self.legacy.key] == key
        if values is None:
            conn.execute(sa.delete(t).where(where))
        elif values:
            conn.execute(sa.update(t).where(where).values(values))

    def _write_begin(self, conn: sa.Connection, key: Any, wid: str) -> dict[str, Any]:
        legacy = self.legacy
        state = legacy.state
        row = self._select_row(conn, key, lock=True)
        now = datetime.now(UTC)
        if row is None:
            return {"state": "skipped", "reason": "the row no longer exists"}
        m = row._mapping
        current = state.of(m, now)
        lock = legacy.columns.locked_by
        if current == "running":
            mine = m[lock] == wid if lock is not None else not self.same_database
            if not mine:
                holder = f" by {m[lock]!r}" if lock is not None else ""
                return {"state": "skipped", "reason": f"it is already running{holder}"}
        elif current != "pending":
            return {"state": "skipped", "reason": f"it is {current}, not pending"}
        began = state.begin(now)
        out: dict[str, Any] = {
            "state": "started",
            "attempts": legacy.attempts_of(m),
            "started_at": int(time.time() * 1000),
        }
        if began is None:  # deleted when claimed: the workflow keeps its values
            out["row"] = json_row(dict(m))
            self._write(conn, key, None)
            return out
        values: dict[str, Any] = dict(began)
        if lock is not None:
            if not legacy.id_fits(wid):  # never cut: an owner is compared as written
                return {"state": "skipped", "reason": f"its id does not fit in column {lock!r}"}
            values[lock] = wid
        locked_at = legacy.col("locked_at")
        if locked_at is not None:
            values[locked_at.name] = legacy.time_value(locked_at, now)
        self._stamp(values, now)
        self._write(conn, key, values)
        return out

    def _write_attempt_failed(
        self,
        conn: sa.Connection,
        key: Any,
        wid: str,
        attempt: int,
        started_ms: int,
        exc: BaseException | None,
        base: int = 0,
    ) -> dict[str, Any]:
        legacy = self.legacy
        state = legacy.state
        if exc is None:  # the budget was spent before the takeover: no attempt was made
            delay, error = None, None
        else:
            elapsed = max(time.time() - started_ms / 1000, 0.0)
            delay = _retry_delay(self.retry, exc, attempt - base, elapsed)
            error = _error_text(exc)
        row = self._select_row(conn, key, lock=True)
        now = datetime.now(UTC)
        held, reason = self._holds(row, wid)
        if not held:
            if delay is None and row is not None and state.of(row._mapping, now) == "failed":
                # written already (a step re-run after a crash between its two commits)
                return {"held": True, "retry_in": None, "error": error, "reason": ""}
            return {"held": False, "retry_in": None, "reason": reason}
        if row is None:  # deleted when claimed: nothing to write
            return {"held": True, "retry_in": delay, "error": error, "reason": ""}
        m = row._mapping
        values: dict[str, Any] = {}
        if exc is not None:
            values.update(legacy.attempts_values(m, attempt))
            last_error = legacy.col("last_error")
            if last_error is not None and error is not None:
                values[last_error.name] = legacy.text_value(last_error, error)
        retry_at = legacy.col("next_retry_at")
        if delay is None:
            ended = state.finish("failed", now)
            values.update(ended or {})
            self._unlock(values, row)
            if retry_at is not None:
                values[retry_at.name] = legacy.clear_value(retry_at, m[retry_at.name])
        else:
            values.update(state.keep_running(now))
            if retry_at is not None:
                values[retry_at.name] = legacy.time_value(retry_at, now + timedelta(seconds=delay))
        self._stamp(values, now)
        self._write(conn, key, values)
        return {"held": True, "retry_in": delay, "error": error, "reason": ""}

    def _unlock(self, values: dict[str, Any], row: sa.Row[Any]) -> None:
        for role in ("locked_by", "locked_at"):
            col = self.legacy.col(role)
            if col is not None and col.name not in values:
                values[col.name] = self.legacy.clear_value(col, row._mapping[col.name])

    def _write_done(self, conn: sa.Connection, key: Any, wid: str, attempt: int) -> dict[str, Any]:
        legacy = self.legacy
        state = legacy.state
        row = self._select_row(conn, key, lock=True)
        now = datetime.now(UTC)
        held, reason = self._holds(row, wid)
        if not held:
            if row is not None and state.of(row._mapping, now) == "done":
                return {"held": True, "reason": ""}  # written already (a re-run step)
            if row is None and state.finish("done", now) is None:
                return {"held": True, "reason": ""}  # deleted already (a re-run step)
            return {"held": False, "reason": reason}
        if row is None:  # deleted when claimed
            return {"held": True, "reason": ""}
        ended = state.finish("done", now)
        if ended is None:
            self._write(conn, key, None)
            return {"held": True, "reason": ""}
        values: dict[str, Any] = dict(ended)
        values.update(legacy.attempts_values(row._mapping, attempt))
        retry_at = legacy.col("next_retry_at")
        if retry_at is not None:
            values[retry_at.name] = legacy.clear_value(retry_at, row._mapping[retry_at.name])
        self._unlock(values, row)
        self._stamp(values, now)
        self._write(conn, key, values)
        return {"held": True, "reason": ""}

    def _read_row(self, key: Any, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        if recorded is not None:
            return dict(recorded)
        with self.legacy.reading() as conn:
            row = self._select_row(conn, key, lock=False)
        if row is None:
            raise LookupError(f"row {key!r} of {self.legacy.qualified_name} no longer exists")
        return dict(row._mapping)

    def _call_handler(self, key: Any, recorded: dict[str, Any] | None = None) -> Any:
        assert self.handler is not None
        return self.handler(self._read_row(key, recorded))

    def _load_row(self, key: Any, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        return json_row(self._read_row(key, recorded))
