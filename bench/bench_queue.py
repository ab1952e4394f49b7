"""Queue scaling: throughput with 1, 2 and 4 worker processes, latency, idle cost.

Usage (see bench/README.md)::

    .venv/bin/python bench/bench_queue.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

For each worker count, on a fresh PostgreSQL database: the workers start and
wait (their idle CPU and RSS are measured), then ``--n-queue`` one-step
workflows are enqueued in one call and the time until the last one has
finished gives the end-to-end throughput. Then, with one idle worker,
``--n-latency`` workflows are enqueued one at a time, ``--gap`` seconds apart,
from another process; the latency of each is its ``started_at`` minus its
``created_at`` as recorded in the database (both stamped by the database
client's clock on one machine). The same figures for the SQLite file with its
one worker process. The harness (worker processes, fresh databases) is
``bench_core.py``'s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_core
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def measure_latency(url: str, args: argparse.Namespace, tmp: Path) -> list[float]:
    """Enqueue-to-start latencies (ms) of workflows enqueued one by one to an idle worker."""
    log = tmp / "latency-worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [bench_core.DURABLE, "worker", "--app", "bench_workflows:app", "--database-url", url],
            cwd=HERE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        bench_core._wait_for(lambda: "serving" in log.read_text(), 60, "worker")
        time.sleep(args.settle)
        bw = bench_core._ours_app(url)
        handles = []
        for i in range(args.n_latency):
            handle = bw.queue.enqueue(bw.one, i)
            handle.result(timeout=60)
            handles.append(handle)
            time.sleep(args.gap)
        latencies = []
        for handle in handles:
            record = bw.app.get_workflow(handle.workflow_id)
            assert record.started_at is not None
            latencies.append((record.started_at - record.created_at).total_seconds() * 1000)
        bw.app.close()
        return latencies
    finally:
        bench_core._stop([worker])


def one_round(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for workers in args.workers:
        with bench_core.fresh_postgres_db(args.postgres) as url:
            result[f"pg-{workers}"] = bench_core.measure_queue("ours", url, args, workers, tmp)
    with bench_core.fresh_postgres_db(args.postgres) as url:
        result["pg-latency"] = measure_latency(url, args, tmp)
    sqlite_url = f"sqlite:///{tmp}/queue-{time.monotonic_ns()}.db"
    result["sqlite-1"] = bench_core.measure_queue("ours", sqlite_url, args, 1, tmp)
    result["sqlite-latency"] = measure_latency(
        f"sqlite:///{tmp}/latency-{time.monotonic_ns()}.db", args, tmp
    )
    return result


def _cell(values: list[float], digits: int = 0) -> str:
    return (
        f"{statistics.median(values):,.{digits}f} "
        f"({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", required=True, help="admin URL; scratch databases are made")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--n-queue", type=int, default=5000)
    parser.add_argument("--n-latency", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.02)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    # bench_core's children read these sizes; the queue benchmark does not use them.
    args.n_one = args.n_ten = args.n_bytes = args.n_ceiling = 1
    console = Console()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            console.print(f"round {r + 1}/{args.rounds}: load average {bench_core.load_average()}")
            rounds.append(one_round(args, Path(tmp)))
    table = Table(title=f"durable-toolkit queue, {args.rounds} rounds: median (min-max)")
    for column in ("database", "workers", "wf/s end to end", "idle CPU % core", "idle RSS MB"):
        table.add_column(column, justify="right")
    for key, label, workers in [
        *((f"pg-{w}", "PostgreSQL", w) for w in args.workers),
        ("sqlite-1", "SQLite", 1),
    ]:
        table.add_row(
            label,
            str(workers),
            _cell([r[key]["queue_wf_s"] for r in rounds]),
            _cell([r[key]["idle_cpu_pct"] for r in rounds], 2),
            _cell([r[key]["idle_rss_mb"] for r in rounds], 1),
        )
    console.print(table)
    latency = Table(title="enqueue-to-start latency, one idle worker (ms, all rounds pooled)")
    for column in ("database", "p50", "p95", "max"):
        latency.add_column(column, justify="right")
    for key, label in [("pg-latency", "PostgreSQL"), ("sqlite-latency", "SQLite")]:
        values = sorted(v for r in rounds for v in r[key])
        latency.add_row(
            label,
            f"{values[len(values) // 2]:.1f}",
            f"{values[int(len(values) * 0.95)]:.1f}",
            f"{values[-1]:.1f}",
        )
    console.print(latency)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
