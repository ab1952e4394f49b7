"""Cron-sweeper adapter: a legacy sweep becomes a scheduled durable workflow.

Legacy job tables usually come with a cron job that "requeues rows stuck in
running for more than N minutes" (their worker died, or so it guesses) and/or
"retries failed rows" on a timetable. :class:`CronSweeper` declares that sweep
once and then:

* :meth:`CronSweeper.shadow` reports what one sweep would do now (which rows,
  stuck for how long) and changes nothing;
* :meth:`CronSweeper.sweep` runs one sweep now;
* :meth:`CronSweeper.takeover` registers the sweep as a scheduled workflow on
  the app (``app.scheduled(cron)``): workers fire it exactly once per tick,
  however many of them run.

For a table the status-column adapter runs (:meth:`CronSweeper.for_adapter`),
a row in running whose durable workflow is alive is *not* requeued: the
time-based guess is no longer needed, because the workflow's lease moves it to
another worker when its worker dies. The report lists those rows and how long
they ran; only rows that no live workflow holds (left by the legacy worker, or
whose workflow was cancelled) are requeued, and the adapter starts them again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from toolkit import Durable

from .legacy_table import (
    LIVE,
    WRITE_BACK_RETRY,
    LegacyColumns,
    LegacyTable,
    MappingError,
    StatusValues,
    _fmt_age,
    _keys,
    is_app_database,
    json_key,
)
from .status_column import StatusColumnAdapter
from .status_reports import RunningRow

log = logging.getLogger("adapters.cron_sweeper")


@dataclass(frozen=True)
class HeldRow:
    """A row stuck by the clock that a live durable workflow holds (not requeued)."""

    row: RunningRow
    workflow_id: str
    owner: str | None
    lease_expires_at: datetime | None


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did (``applied``) or would do (shadow)."""

    table: str
    applied: bool
    at: datetime
    stuck_after: float | None
    requeued: list[RunningRow]
    """Rows in running for longer than ``stuck_after`` that no live workflow holds."""
    held: list[HeldRow]
    """Rows in running for longer than ``stuck_after`` that a live durable workflow holds."""
    retried: list[Any]
    """Keys of failed rows put back to pending."""
    adapter: str | None
    """The status-column adapter that runs the table, if any."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values (the output of the scheduled workflow)."""

        def running(r: RunningRow) -> dict[str, Any]:
            return {
                "key": json_key(r.key),
                "since": r.since.isoformat() if r.since else None,
                "age_seconds": r.age,
                "locked_by": r.locked_by,
            }

        return {
            "table": self.table,
            "applied": self.applied,
            "at": self.at.isoformat(),
            "stuck_after_seconds": self.stuck_after,
            "requeued": [running(r) for r in self.requeued],
            "held": [
                {
                    **running(h.row),
                    "workflow_id": h.workflow_id,
                    "owner": h.owner,
                    "lease_expires_at": (
                        h.lease_expires_at.isoformat() if h.lease_expires_at else None
                    ),
                }
                for h in self.held
            ],
            "retried": [json_key(k) for k in self.retried],
            "adapter": self.adapter,
        }

    def __str__(self) -> str:
        verb = "swept" if self.applied else "shadow sweep (nothing was changed)"
        would = "" if self.applied else "would "
        lines = [f"{verb}: table {self.table} at {self.at.isoformat(timespec='seconds')}"]
        if self.stuck_after is not None:
            limit = _fmt_age(self.stuck_after)
            lines.append(
                f"  {would}requeue {len(self.requeued)} row(s) stuck in running for more "
                f"than {limit}" + (":" if self.requeued else "")
            )
            for r in self.requeued:
                who = f" (locked by {r.locked_by})" if r.locked_by else ""
                lines.append(f"    {r.key}: {_fmt_age(r.age or 0)}{who}")
            if self.held:
                lines.append(
                    f"  the time-based guess is no longer needed for {len(self.held)} row(s): "
                    "durable workflows hold them, and their leases move them to another "
                    "worker if theirs dies. The legacy sweeper would have requeued them:"
                )
                for h in self.held:
                    lease = (
                        f", lease until {h.lease_expires_at.isoformat(timespec='seconds')}"
                        if h.lease_expires_at
                        else ""
                    )
                    owner = f" on {h.owner}" if h.owner else " (waiting for a worker)"
                    lines.append(
                        f"    {h.row.key}: running {_fmt_age(h.row.age or 0)}, "
                        f"workflow {h.workflow_id}{owner}{lease}"
                    )
        if self.retried or self.stuck_after is None:
            lines.append(
                f"  {would}retry {len(self.retried)} failed row(s)"
                + (f": {_keys(self.retried)}" if self.retried else "")
            )
        if self.adapter:
            lines.append(f"  rows put back to pending are started again by adapter {self.adapter}")
        return "\n".join(lines)


class CronSweeper:
    """A legacy sweep of a job table, as a shadow report or a scheduled durable workflow.

    ``stuck_after``: requeue rows in running whose ``locked_at`` (else
    ``updated_at``) is older than this. ``retry_failed``: put failed rows back
    to pending, only those with fewer than ``max_attempts`` attempts when both
    that and an ``attempts`` column are given. At least one of the two is needed.
    ``cron`` is the timetable (UTC; a sixth field gives seconds). ``adapter``:
    the status-column adapter running this table, if any (see the module).
    """

    def __init__(
        self,
        app: Durable,
        legacy_url: str | URL | None = None,
        *,
        table: str | None = None,
        key: str | None = None,
        status: StatusValues | None = None,
        columns: LegacyColumns | None = None,
        schema: str | None = None,
        cron: str,
        stuck_after: timedelta | float | None = None,
        retry_failed: bool = False,
        max_attempts: int | None = None,
        adapter: StatusColumnAdapter | None = None,
        name: str | None = None,
        limit: int = 1000,
    ) -> None:
        from croniter import croniter

        if not croniter.is_valid(cron):
            raise ValueError(f"invalid cron expression {cron!r}")
        if stuck_after is None and not retry_failed:
            raise ValueError("give stuck_after= (requeue stuck rows) and/or retry_failed=True")
        if adapter is not None:
            if adapter.app is not app:
                raise ValueError("the adapter must belong to the same app")
            self.legacy = adapter.legacy
            self.same_database = adapter.same_database
        else:
            if table is None or key is None or status is None:
                raise ValueError("give table=, key= and status= (or adapter=)")
            self.legacy, self.same_database = LegacyTable.for_app(
                app, legacy_url, table, key=key, status=status, columns=columns, schema=schema
            )
        self.app = app
        self.adapter = adapter
        self.cron = cron
        self.stuck_after = (
            None
            if stuck_after is None
            else (
                stuck_after.total_seconds()
                if isinstance(stuck_after, timedelta)
                else float(stuck_after)
            )
        )
        if self.stuck_after is not None and self.stuck_after < 0:
            raise ValueError("stuck_after must not be negative")
        self.retry_failed = retry_failed
        self.max_attempts = max_attempts
        self.name = name or (adapter.name if adapter is not None else self.legacy.name)
        self.schedule_name = f"legacy.{self.name}.sweep"
        self.limit = limit
        self._registered = False

    @classmethod
    def for_adapter(
        cls,
        adapter: StatusColumnAdapter,
        *,
        cron: str,
        stuck_after: timedelta | float | None = None,
        retry_failed: bool = False,
        max_attempts: int | None = None,
        name: str | None = None,
    ) -> CronSweeper:
        """The sweeper of a table the status-column adapter runs (mapping taken from it)."""
        return cls(
            adapter.app,
            cron=cron,
            stuck_after=stuck_after,
            retry_failed=retry_failed,
            max_attempts=max_attempts,
            adapter=adapter,
            name=name,
        )

    def check(self) -> None:
        """Reflect and check the table and what the sweep needs (a since column)."""
        self.legacy.check()
        if (
            self.stuck_after is not None
            and self.adapter is None
            and not self.legacy.state.tells_end
        ):
            raise MappingError(
                f"legacy table {self.legacy.qualified_name!r}: its state cannot tell a done or "
                "failed row from a running one, so a sweep would requeue finished rows; sweep "
                "it with CronSweeper.for_adapter (which asks the workflows), or declare the "
                "done and failed columns"
            )
        if self.stuck_after is not None and self.legacy.since_column() is None:
            raise MappingError(
                f"legacy table {self.legacy.qualified_name!r}: finding rows stuck in running "
                "needs a locked_at or updated_at column (declare it in LegacyColumns)"
            )

    # -- the sweep --

    def shadow(self) -> SweepReport:
        """What one sweep would do now. Reads only: changes nothing, locks nothing."""
        self.check()
        with self.legacy.reading() as conn:
            return self._sweep(conn, apply=False)

    def sweep(self) -> SweepReport:
        """Run one sweep now, outside the schedule (guarded UPDATEs in one transaction)."""
        self.check()
        if self.same_database:
            with self.app.storage.transaction() as conn:
                return self._sweep(conn, apply=True)
        with self.legacy.writing() as conn:
            return self._sweep(conn, apply=True)

    def _sweep(self, conn: sa.Connection, *, apply: bool) -> SweepReport:
        legacy = self.legacy
        t = legacy.table
        state = legacy.state
        key = t.c[legacy.key]
        now = datetime.now(UTC)
        in_running = state.cond("running", now)
        in_pending = state.cond("pending", now)
        in_failed = state.cond("failed", now)
        requeued: list[RunningRow] = []
        held: list[HeldRow] = []
        retried: list[Any] = []
        if self.stuck_after is not None and in_running is not None:
            since = legacy.since_column()
            assert since is not None
            threshold = legacy.time_value(since, now - timedelta(seconds=self.stuck_after))
            stuck_cond = sa.and_(in_running, since < threshold)
            cols = [key, since]
            lock = legacy.col("locked_by")
            if lock is not None:
                cols.append(lock)
            query = sa.select(*cols).where(stuck_cond).order_by(since, key).limit(self.limit)
            if apply:
                query = query.with_for_update(skip_locked=True)
            stuck = [self._running(r._mapping, now) for r in conn.execute(query)]
            holders = self._holders(conn, stuck) if self.adapter is not None else {}
            ended = set()
            if self.adapter is not None and not state.tells_end:
                # the table cannot tell a done or failed row from a running one: a row
                # whose workflow ended is not stuck, it is over
                ended = self._ended(conn, [r for r in stuck if r.key not in holders])
            for r in stuck:
                holder = holders.get(r.key)
                if holder is not None:
                    held.append(HeldRow(r, *holder))
                elif r.key not in ended:
                    requeued.append(r)
            if apply and requeued:
                values: dict[str, Any] = state.requeue()
                for role in ("locked_by", "locked_at"):
                    col = legacy.col(role)
                    if col is not None and col.nullable:
                        values[col.name] = None
                self._stamp(values, now)
                changed = conn.execute(
                    sa.update(t)
                    .where(key.in_([r.key for r in requeued]), stuck_cond)
                    .values(values)
                    .execution_options(preserve_rowcount=True)
                ).rowcount
                if changed != len(requeued):  # a row moved on meanwhile: report what changed
                    still = set(
                        conn.execute(
                            sa.select(key).where(
                                key.in_([r.key for r in requeued]), in_pending or sa.true()
                            )
                        ).scalars()
                    )
                    requeued = [r for r in requeued if r.key in still]
        if self.retry_failed and in_failed is not None:
            cond = in_failed
            attempts = legacy.attempts_column()
            if attempts is not None and self.max_attempts is not None:
                cond = sa.and_(cond, attempts < self.max_attempts)
            retry_at = legacy.col("next_retry_at")
            if retry_at is not None:
                cond = sa.and_(
                    cond, sa.or_(retry_at.is_(None), retry_at <= legacy.time_value(retry_at, now))
                )
            query = sa.select(key).where(cond).order_by(key).limit(self.limit)
            if apply:
                query = query.with_for_update(skip_locked=True)
            retried = list(conn.execute(query).scalars())
            if apply and retried:
                values = state.unfail(now, running=False)
                self._stamp(values, now)
                conn.execute(sa.update(t).where(key.in_(retried), cond).values(values))
        report = SweepReport(
            table=legacy.qualified_name,
            applied=apply,
            at=now,
            stuck_after=self.stuck_after,
            requeued=requeued,
            held=held,
            retried=retried,
            adapter=self.adapter.name if self.adapter is not None else None,
        )
        if apply and (requeued or retried):
            log.info("%s", report)
        return report

    def _stamp(self, values: dict[str, Any], now: datetime) -> None:
        col = self.legacy.col("updated_at")
        if col is not None:
            values[col.name] = self.legacy.time_value(col, now)

    def _running(self, m: Any, now: datetime) -> RunningRow:
        legacy = self.legacy
        since_col = legacy.since_column()
        assert since_col is not None
        since = legacy.as_datetime(m[since_col.name])
        lock = legacy.columns.locked_by
        holder = m[lock] if lock is not None else None
        prefix = f"{self.adapter.name}:" if self.adapter is not None else None
        return RunningRow(
            key=m[legacy.key],
            since=since,
            age=(now - since).total_seconds() if since is not None else None,
            locked_by=holder,
            durable=bool(prefix and isinstance(holder, str) and holder.startswith(prefix)),
        )

    def _holders(
        self, conn: sa.Connection, rows: list[RunningRow]
    ) -> dict[Any, tuple[str, str | None, datetime | None]]:
        """The live workflow holding each row, by key (rows no live workflow holds are absent)."""
        adapter = self.adapter
        assert adapter is not None
        if not rows:
            return {}
        storage = self.app.storage
        w = storage.workflows
        wanted: dict[str, Any] = {}
        for r in rows:
            if self.legacy.columns.locked_by is not None:
                if r.durable:
                    wanted[str(r.locked_by)] = r.key
            else:  # no lock column: any run of the row may hold it
                wanted[adapter.workflow_id(r.key)] = r.key
        if not wanted:
            return {}
        query = sa.select(w.c.workflow_id, w.c.status, w.c.owner, w.c.lease_expires_at).where(
            w.c.status.in_(list(LIVE))
        )
        if self.legacy.columns.locked_by is not None:
            query = query.where(w.c.workflow_id.in_(list(wanted)))
        else:
            query = query.where(
                sa.or_(
                    *(
                        sa.or_(w.c.workflow_id == base, w.c.workflow_id.startswith(f"{base}#"))
                        for base in wanted
                    )
                )
            )
        found: dict[Any, tuple[str, str | None, datetime | None]] = {}
        if self.same_database:
            result = conn.execute(query).all()
        else:
            with storage.engine.connect() as sconn:
                result = sconn.execute(query).all()
        for wid, _status, owner, lease in result:
            base = wid.split("#", 1)[0]
            key = wanted.get(wid, wanted.get(base))
            if key is not None:
                expires = datetime.fromtimestamp(lease / 1000, tz=UTC) if lease else None
                found[key] = (wid, owner, expires)
        return found

    def _ended(self, conn: sa.Connection, rows: list[RunningRow]) -> set[Any]:
        """Keys of rows whose latest workflow of the adapter ended (succeeded or failed)."""
        adapter = self.adapter
        assert adapter is not None
        if not rows:
            return set()
        w = self.app.storage.workflows
        bases = {adapter.workflow_id(r.key): r.key for r in rows}
        query = sa.select(w.c.workflow_id, w.c.status).where(
            sa.or_(
                *(
                    sa.or_(w.c.workflow_id == base, w.c.workflow_id.startswith(f"{base}#"))
                    for base in bases
                )
            )
        )
        if self.same_database:
            result = conn.execute(query).all()
        else:
            with self.app.storage.engine.connect() as sconn:
                result = sconn.execute(query).all()
        latest: dict[Any, tuple[int, str]] = {}
        for wid, status in result:
            base, _, run = wid.partition("#")
            key = bases.get(base)
            if key is None:
                continue
            generation = int(run) if run.isdigit() else 1
            if key not in latest or generation > latest[key][0]:
                latest[key] = (generation, status)
        return {k for k, (_, status) in latest.items() if status in ("succeeded", "failed")}

    # -- the schedule --

    def takeover(self) -> str:
        """Register the sweep as a scheduled workflow on the app; return the schedule's name.

        Call it in every process that runs workers (once the legacy cron job is
        switched off): workers fire each tick exactly once across all of them.
        The sweep of a tick is a ``@transaction`` when the table is in the
        workflow database (exactly once), else a step with guarded UPDATEs
        (at least once; running a sweep twice requeues nothing twice).
        """
        if self._registered:
            return self.schedule_name
        self.check()
        app = self.app
        step_name = f"{self.schedule_name}.tick"
        if self.same_database or is_app_database(app, self.legacy.url):

            def sweep_in(conn: sa.Connection, tick: str) -> dict[str, Any]:
                return self._sweep(conn, apply=True).to_dict()

            sweep_step = app.transaction(sweep_in, name=step_name, retry=WRITE_BACK_RETRY)
        else:

            def sweep_legacy(tick: str) -> dict[str, Any]:
                with self.legacy.writing() as conn:
                    return self._sweep(conn, apply=True).to_dict()

            sweep_step = app.step(sweep_legacy, name=step_name, retry=WRITE_BACK_RETRY)

        def on_tick(tick: datetime) -> dict[str, Any]:
            report: dict[str, Any] = sweep_step(tick.isoformat())
            return report

        app.scheduled(self.cron, name=self.schedule_name)(on_tick)
        self._registered = True
        return self.schedule_name


__all__ = ["CronSweeper", "HeldRow", "SweepReport"]
