"""The cost of a @transaction step when the app database is apart from the state store.

Side by side in one run, one process, workflows of ten transaction steps run one
after another (the latency path: every commit waited for):

* ``same database``: today's path, the writes commit with the checkpoint;
* ``app PostgreSQL``: state store in one PostgreSQL database, writes in another;
* ``app MariaDB`` and ``app SQLite``: writes in MariaDB (127.0.0.1:3306) or a file;
* the commit ceiling of each app database: a plain loop of single-row INSERT
  transactions through SQLAlchemy, the least any exactly-once write can cost.

Usage: ``.venv/bin/python bench/bench_appdb.py [--workflows 100] [--rounds 3]
[--postgres URL] [--mariadb URL]``. Every round uses fresh databases, dropped after.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from toolkit import Durable

metadata = sa.MetaData()
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("label", sa.String(50), nullable=False),
)
STEPS = 10


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url`` (PostgreSQL or MariaDB)."""
    url = make_url(admin_url)
    if url.drivername.startswith("postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif url.drivername.startswith(("mysql", "mariadb")):
        url = url.set(drivername="mysql+pymysql")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))  # a generated name, no input
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            extra = " WITH (FORCE)" if url.drivername.startswith("postgres") else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{extra}"))
        admin.dispose()


def run_workflows(state_url: str, app_url: str | None, workflows: int) -> float:
    """Transaction steps per second over ``workflows`` workflows of ten transactions."""
    app = Durable(state_url, app_database_url=app_url)
    app.upgrade()
    metadata.create_all(app.connection())

    @app.transaction(name="book")
    def book(conn: sa.Connection, i: int) -> int:
        conn.execute(ledger.insert().values(label=f"t{i}"))
        return i

    @app.workflow(name="ten")
    def ten() -> int:
        return sum(book(i) for i in range(STEPS))

    try:
        app.run(ten)  # warm-up: connections, prepared statements
        started = time.perf_counter()
        for _ in range(workflows):
            app.run(ten)
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    return workflows * STEPS / elapsed


def ceiling(app_url: str, commits: int) -> float:
    """Single-row INSERT transactions per second on the app database (SQLAlchemy)."""
    engine = sa.create_engine(app_url)
    metadata.create_all(engine)
    try:
        with engine.connect() as conn:
            for i in range(20):
                with conn.begin():
                    conn.execute(ledger.insert().values(label=f"w{i}"))
            started = time.perf_counter()
            for i in range(commits):
                with conn.begin():
                    conn.execute(ledger.insert().values(label=f"c{i}"))
            return commits / (time.perf_counter() - started)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--mariadb", default="mysql+pymysql://root@127.0.0.1:3306/test")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}

    def record(name: str, measure: Callable[[], float]) -> None:
        rows.setdefault(name, []).append(measure())

    for _ in range(args.rounds):
        with (
            fresh_database(args.postgres) as state,
            fresh_database(args.postgres) as app_pg,
            fresh_database(args.mariadb) as app_maria,
            tempfile.TemporaryDirectory() as tmp,
        ):
            app_sqlite = f"sqlite:///{Path(tmp) / 'app.db'}"
            commits = args.workflows * STEPS
            n = args.workflows
            record("same database (PostgreSQL)", partial(run_workflows, state, None, n))
            record("app PostgreSQL (another database)", partial(run_workflows, state, app_pg, n))
            record("app MariaDB", partial(run_workflows, state, app_maria, n))
            record("app SQLite file", partial(run_workflows, state, app_sqlite, n))
            record("ceiling: PostgreSQL INSERT+COMMIT", partial(ceiling, app_pg, commits))
            record("ceiling: MariaDB INSERT+COMMIT", partial(ceiling, app_maria, commits))
            record("ceiling: SQLite INSERT+COMMIT", partial(ceiling, app_sqlite, commits))
    print(f"| {STEPS}-transaction workflows, sequential | transactions/s, median (min-max) |")
    print("|---|---:|")
    for name, values in rows.items():
        print(
            f"| {name} | {statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f}) |"
        )


if __name__ == "__main__":
    main()
