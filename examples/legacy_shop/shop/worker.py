"""The job worker: polls ``jobs`` for pending rows, runs them, retries, gives up.

Run with ``python -m shop.worker``. Several may run at once on PostgreSQL or
MariaDB (rows are claimed with FOR UPDATE SKIP LOCKED); on SQLite, one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time

import sqlalchemy as sa

from .db import engine, failed_jobs, jobs
from .handlers import run_job

log = logging.getLogger("shop.worker")

MAX_ATTEMPTS = 5
# A failed job waits RETRY_BASE_SECONDS * 2**attempts before its next attempt (2, 4, 8, 16 s).
RETRY_BASE_SECONDS = float(os.environ.get("SHOP_RETRY_BASE_SECONDS", "1"))
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def claim_one(eng: sa.Engine) -> tuple[int, str, str, int] | None:
    """Mark one due pending job running and return it, or None."""
    with eng.begin() as conn:
        query = (
            sa.select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts)
            .where(jobs.c.status == "pending")
            .where(sa.or_(jobs.c.next_retry_at.is_(None), jobs.c.next_retry_at <= _now()))
            .order_by(jobs.c.id)
            .limit(1)
        )
        if eng.dialect.name != "sqlite":
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        if row is None:
            return None
        conn.execute(
            jobs.update()
            .where(jobs.c.id == row.id)
            .values(status="running", locked_by=WORKER_ID, locked_at=_now(), updated_at=_now())
        )
        return row.id, row.kind, row.payload, row.attempts


def work_once(eng: sa.Engine) -> bool:
    """Run one job; False when there was nothing to do."""
    claimed = claim_one(eng)
    if claimed is None:
        return False
    job_id, kind, payload, attempts = claimed
    try:
        with eng.begin() as conn:
            run_job(conn, kind, payload)
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(status="done", locked_by=None, locked_at=None, updated_at=_now())
            )
    except Exception as exc:
        attempts += 1
        with eng.begin() as conn:
            if attempts >= MAX_ATTEMPTS:
                conn.execute(
                    failed_jobs.insert().values(
                        job_id=job_id,
                        kind=kind,
                        payload=payload,
                        error=repr(exc),
                        failed_at=_now(),
                    )
                )
                status, next_retry = "failed", None
            else:
                status, next_retry = (
                    "pending",
                    _now() + dt.timedelta(seconds=RETRY_BASE_SECONDS * 2**attempts),
                )
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    status=status,
                    attempts=attempts,
                    last_error=repr(exc),
                    next_retry_at=next_retry,
                    locked_by=None,
                    locked_at=None,
                    updated_at=_now(),
                )
            )
        log.warning("job %s failed (attempt %s): %r", job_id, attempts, exc)
    return True


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    eng = engine()
    while True:
        if not work_once(eng):
            time.sleep(1)


if __name__ == "__main__":
    main()
