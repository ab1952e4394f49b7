"""The ops dashboard: ``python -m shop.dashboard``. A legacy reader of ``jobs`` and ``orders``."""

from __future__ import annotations

import sqlalchemy as sa

from .db import engine, failed_jobs, jobs, orders


def main() -> None:
    with engine().connect() as conn:
        by_status = conn.execute(
            sa.select(jobs.c.status, sa.func.count())
            .group_by(jobs.c.status)
            .order_by(jobs.c.status)
        ).all()
        by_state = conn.execute(
            sa.select(orders.c.state, sa.func.count())
            .group_by(orders.c.state)
            .order_by(orders.c.state)
        ).all()
        dead = conn.execute(sa.select(sa.func.count()).select_from(failed_jobs)).scalar_one()
    print("jobs:   " + ", ".join(f"{status} {n}" for status, n in by_status))
    print("orders: " + ", ".join(f"{state} {n}" for state, n in by_state))
    print(f"failed_jobs: {dead}")


if __name__ == "__main__":
    main()
