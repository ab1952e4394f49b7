"""Takeover after a lease runs out: how long after its expiry a waiting worker resumes the workflow.

Usage::

    .venv/bin/python bench/bench_takeover.py [--postgres ADMIN_URL] [--rounds 5]

Per round, on a fresh PostgreSQL database: worker A (``--lease-timeout 1``)
runs a workflow inside a long step; worker B waits; A is frozen with SIGSTOP
(alive, its session open: only the lease can tell it is stuck). The figure is
B's takeover time (``updated_at`` of the claim) minus the lease expiry that A
left, both as recorded in the database. (A killed process is found sooner, by
its session's advisory lock: see ``bench_core.py``'s recovery row.)
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]


def worker(url: str) -> subprocess.Popen[bytes]:
    app = "tests.core.worker_app:app"
    return subprocess.Popen(
        [sys.executable, "-m", "toolkit", "worker", "--app", app, "--lease-timeout", "1"],
        cwd=ROOT,
        env={**os.environ, "DURABLE_DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.core import worker_app as wa

    name = f"durable_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = args.postgres.rsplit("/", 1)[0] + "/" + name
    engine = sa.create_engine(url)
    wa.metadata.create_all(engine)
    wa.app.configure(url=url)
    results = []
    try:
        for _ in range(args.rounds):
            handle = wa.work.enqueue(wa.busy, 30.0)
            frozen = worker(url)
            while wa.app.get_workflow(handle.workflow_id).owner is None:
                time.sleep(0.01)
            waiting = worker(url)
            time.sleep(1.5)
            frozen.send_signal(signal.SIGSTOP)
            time.sleep(0.5)  # no heartbeat since: the recorded expiry is final
            record = wa.app.get_workflow(handle.workflow_id)
            while wa.app.get_workflow(handle.workflow_id).owner == record.owner:
                time.sleep(0.002)
            taken = wa.app.get_workflow(handle.workflow_id).updated_at
            assert record.lease_expires_at is not None
            results.append((taken - record.lease_expires_at).total_seconds() * 1000)
            for proc in (frozen, waiting):
                proc.kill()
                proc.wait()
            wa.app.cancel(handle.workflow_id)
    finally:
        wa.app.close()
        engine.dispose()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    print(
        f"takeover after lease expiry, {args.rounds} rounds: median "
        f"{statistics.median(results):.1f} ms (min {min(results):.1f}, max {max(results):.1f})"
    )


if __name__ == "__main__":
    main()
