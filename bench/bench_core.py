"""Sequential workflow throughput of the durable core, and the database's commit ceiling.

    python bench/bench_core.py [--postgres URL] [--rounds 5] [--workflows 300]

Measures, per backend: one-step workflows per second, and steps per second in
10-step workflows, each run one after another in one process (the latency
path: every step waits for its own commit). Also the ceiling: single-statement
autocommit INSERTs per second with plain psycopg / sqlite3 on the same database.
Prints the median with min and max over the rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable

import psycopg

from toolkit import Durable


def measure(rounds: int, fn: Callable[[], float]) -> tuple[float, float, float]:
    values = [fn() for _ in range(rounds)]
    return statistics.median(values), min(values), max(values)


def bench_app(url: str, n_workflows: int, rounds: int) -> dict[str, tuple[float, float, float]]:
    app = Durable(url)

    @app.step(name="bench.noop")
    def noop(i: int) -> int:
        return i

    @app.workflow(name="bench.one")
    def one(i: int) -> int:
        return noop(i)

    @app.workflow(name="bench.ten")
    def ten(i: int) -> int:
        for j in range(10):
            noop(j)
        return i

    app.run(one, 0)  # connect, migrate, warm up

    def one_step() -> float:
        start = time.perf_counter()
        for i in range(n_workflows):
            app.run(one, i)
        return n_workflows / (time.perf_counter() - start)

    def ten_steps() -> float:
        count = max(n_workflows // 5, 10)
        start = time.perf_counter()
        for i in range(count):
            app.run(ten, i)
        return count * 10 / (time.perf_counter() - start)

    result = {
        "one-step workflows/s": measure(rounds, one_step),
        "steps/s in 10-step workflows": measure(rounds, ten_steps),
    }
    app.close()
    return result


def ceiling_postgres(url: str, rounds: int, n: int = 2000) -> tuple[float, float, float]:
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        # A regular (WAL-logged) table: a TEMP table would skip the commit's fsync.
        conn.execute("CREATE TABLE IF NOT EXISTS bench_ceiling (id int)")

        def once() -> float:
            start = time.perf_counter()
            for i in range(n):
                conn.execute("INSERT INTO bench_ceiling VALUES (%s)", (i,), prepare=True)
            return n / (time.perf_counter() - start)

        return measure(rounds, once)


def ceiling_sqlite(path: str, rounds: int, n: int = 2000) -> tuple[float, float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS ceiling (id int)")

    def once() -> float:
        start = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO ceiling VALUES (?)", (i,))
        return n / (time.perf_counter() - start)

    result = measure(rounds, once)
    conn.close()
    return result


def fresh_postgres_db(admin_url: str) -> tuple[str, Callable[[], None]]:
    name = f"durable_bench_{uuid.uuid4().hex[:8]}"
    plain = admin_url.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated here, not user input
    base, _, _ = plain.rpartition("/")
    url = f"{base}/{name}"

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DURABLE_TEST_POSTGRES_URL"),
        help="admin URL of a PostgreSQL server (a scratch database is created on it)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workflows", type=int, default=300)
    args = parser.parse_args()

    rows: list[tuple[str, str, tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(
            ("SQLite", "commit ceiling (INSERTs/s)", ceiling_sqlite(f"{tmp}/c.db", args.rounds))
        )
        for metric, value in bench_app(
            f"sqlite:///{tmp}/bench.db", args.workflows, args.rounds
        ).items():
            rows.append(("SQLite", metric, value))
    if args.postgres:
        url, drop = fresh_postgres_db(args.postgres)
        try:
            rows.append(
                ("PostgreSQL", "commit ceiling (INSERTs/s)", ceiling_postgres(url, args.rounds))
            )
            for metric, value in bench_app(url, args.workflows, args.rounds).items():
                rows.append(("PostgreSQL", metric, value))
        finally:
            drop()

    print(
        f"# {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}, {args.rounds} rounds"
    )
    print("| backend | metric | median | min | max |")
    print("|---|---|---:|---:|---:|")
    for backend, metric, (med, lo, hi) in rows:
        print(f"| {backend} | {metric} | {med:,.0f} | {lo:,.0f} | {hi:,.0f} |")


if __name__ == "__main__":
    main()
