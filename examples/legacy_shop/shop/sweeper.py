"""The cron sweeper (see ``crontab``): requeue jobs stuck in running, retry failed ones.

"Stuck" is a guess: a job running for more than STUCK_AFTER is assumed dead
and put back to pending, even if its worker is only slow (then it runs twice).
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from .db import engine, jobs

log = logging.getLogger("shop.sweeper")

STUCK_AFTER = dt.timedelta(minutes=15)


def requeue_stuck(eng: sa.Engine) -> int:
    cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - STUCK_AFTER
    with eng.begin() as conn:
        result = conn.execute(
            jobs.update()
            .where(jobs.c.status == "running")
            .where(jobs.c.locked_at < cutoff)
            .values(status="pending", locked_by=None, locked_at=None)
        )
    log.info("requeued %d stuck job(s)", result.rowcount)
    return result.rowcount


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    requeue_stuck(engine())


if __name__ == "__main__":
    main()
