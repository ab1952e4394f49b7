"""Retention: the hot path with 1,000,000 finished workflows in the tables, and a steady load.

    python bench/bench_retention.py [--postgres URL] [--rounds 3] [--finished 1000000]

Part 1, side by side in one run: two fresh PostgreSQL databases, one empty and
one holding ``--finished`` finished workflows (90% succeeded, 8% failed, 2%
cancelled, created over the last 30 days, two steps each, half of them from
the benchmark's queue, so that every index of the workflows table holds them).
Each round measures both, alternating which goes first, each in a fresh Python
process:

- sequential workflows (``bench_core.py``'s ``seq`` child): one-step
  workflows/s, 10-step steps/s;
- claim latency: one workflow is enqueued, then the timed call is the claim
  (``Storage.claim_from_queue``, the worker's statement), then the workflow
  ends; ``--n-claims`` times, on a queue without limits and on one with a
  global ``concurrency`` and ``rate_limit`` (their counting queries run too);
- the queue end to end with two ``durable worker`` processes (``--n-queue``
  one-step workflows enqueued in one call, the clock stopped at the last finish
  recorded; only this run's workflows count).

Part 2, a steady load with retention on: a worker process whose app keeps
finished workflows ``--retention`` seconds and prunes every
``--prune-interval`` seconds serves a queue fed at ``--rate`` workflows/s for
``--duration`` seconds; the row counts and bytes (``pg_total_relation_size``)
of the system tables are sampled every ``--sample-every`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable

FILL_WORKFLOWS = """
INSERT INTO durable.workflows
    (workflow_id, name, status, inputs, output, error, queue_name, priority,
     recoveries, created_at, updated_at, started_at)
SELECT 'old-' || g,
       'bench.one',
       CASE WHEN g %% 50 = 0 THEN 'cancelled' WHEN g %% 12 = 0 THEN 'failed' ELSE 'succeeded' END,
       '{"args": [1], "kwargs": {}}',
       CASE WHEN g %% 12 = 0 OR g %% 50 = 0 THEN NULL ELSE '1' END,
       CASE WHEN g %% 12 = 0 AND g %% 50 <> 0
            THEN '{"type": "RuntimeError", "message": "boom", "traceback": ""}' END,
       CASE WHEN g %% 2 = 0 THEN 'bench' END,
       0, 0,
       %(now)s - (g * %(spread)s / %(n)s) - 1000,
       %(now)s - (g * %(spread)s / %(n)s),
       %(now)s - (g * %(spread)s / %(n)s) - 1000
FROM generate_series(1, %(n)s) AS g
"""
FILL_STEPS = """
INSERT INTO durable.steps
    (wf_key, step_number, started_at, finished_at, next_attempt_at, attempts, name, status, output)
SELECT w.wf_key, s, w.created_at, w.created_at + 1, NULL, 1, 'bench.noop', 'succeeded', '1'
FROM durable.workflows w CROSS JOIN generate_series(1, 2) AS s
WHERE w.workflow_id LIKE 'old-%'
"""
TABLE_ROWS = """
SELECT (SELECT count(*) FROM durable.workflows), (SELECT count(*) FROM durable.steps),
       (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'durable' AND c.relkind = 'r')
"""


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def fill(url: str, n: int) -> float:
    """Create the tables and put ``n`` finished workflows (two steps each) in them."""
    import psycopg

    from toolkit import Durable

    app = Durable(url)
    app.upgrade()
    app.close()
    started = time.perf_counter()
    now = int(time.time() * 1000)
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(FILL_WORKFLOWS, {"now": now, "spread": 30 * 86_400_000, "n": n})
        conn.execute(FILL_STEPS)
        conn.execute("VACUUM ANALYZE durable.workflows")
        conn.execute("VACUUM ANALYZE durable.steps")
    return time.perf_counter() - started


def table_rows(url: str) -> tuple[int, int, int]:
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        row = conn.execute(TABLE_ROWS).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


# -- children ---------------------------------------------------------------------------------


def child_claims(args: argparse.Namespace) -> dict[str, float]:
    """Claim latency (ms): enqueue one, time the claim, end it; on two queues."""
    from toolkit import Durable

    app = Durable(args.url)
    plain = app.queue("bench")
    limited = app.queue("limited", concurrency=50, rate_limit=(100_000, 60.0))

    @app.workflow(name="bench.claimed")
    def claimed() -> None:
        return None

    storage = app.storage
    owner = f"bench-claims-{os.getpid()}"
    result: dict[str, float] = {}
    for queue in (plain, limited):
        times = []
        for i in range(args.n_claims + 20):
            handle = queue.enqueue(claimed)
            started = time.perf_counter()
            got = storage.claim_from_queue(
                owner=owner,
                queue_name=queue.name,
                names=["bench.claimed"],
                want=1,
                lease_ms=30_000,
                concurrency=queue.concurrency,
                rate_limit=queue.rate_limit,
            )
            elapsed = time.perf_counter() - started
            assert [c.workflow_id for c in got] == [handle.workflow_id]
            assert storage.finish_workflow(handle.workflow_id, owner, "succeeded", "null", None)
            if i >= 20:  # warm-up: connections, plans
                times.append(elapsed * 1000)
        times.sort()
        result[f"claim_{queue.name}_p50_ms"] = statistics.median(times)
        result[f"claim_{queue.name}_p95_ms"] = times[int(len(times) * 0.95)]
    app.close()
    return result


def child_worker(args: argparse.Namespace) -> dict[str, float]:
    """A worker with retention on, until SIGTERM."""
    sys.path.insert(0, str(HERE))
    import bench_workflows

    from toolkit import Durable, Worker

    app: Durable = bench_workflows.app
    app.configure(url=args.url)
    app.retention = {s: args.retention for s in ("succeeded", "failed", "cancelled")}
    worker = Worker(app, prune_interval=args.prune_interval)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop(grace=5))
    Path(args.marker).write_text("ready")
    worker.run()
    pruned = worker.pruner.total.workflows if worker.pruner is not None else 0
    app.close()
    return {"pruned": float(pruned)}


def child_feed(args: argparse.Namespace) -> dict[str, float]:
    """Enqueue ``--rate`` workflows/s for ``--duration`` seconds, in ten batches a second."""
    sys.path.insert(0, str(HERE))
    import bench_workflows

    bench_workflows.app.configure(url=args.url)
    per_batch = max(int(args.rate / 10), 1)
    started = time.monotonic()
    sent, tick = 0, 0
    while time.monotonic() - started < args.duration:
        bench_workflows.queue.enqueue_many(bench_workflows.one, [(i,) for i in range(per_batch)])
        sent += per_batch
        tick += 1
        pause = started + tick * 0.1 - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    bench_workflows.app.close()
    return {"sent": float(sent)}


CHILDREN = {"claims": child_claims, "worker": child_worker, "feed": child_feed}


def run_child(name: str, url: str, args: argparse.Namespace, *extra: str) -> dict[str, float]:
    cmd = [PY, __file__, "--child", name, "--url", url, *extra, *_sizes(args)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed: {out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _sizes(args: argparse.Namespace) -> list[str]:
    return [
        "--n-claims",
        str(args.n_claims),
        "--retention",
        str(args.retention),
        "--prune-interval",
        str(args.prune_interval),
        "--rate",
        str(args.rate),
        "--duration",
        str(args.duration),
    ]


# -- part 1 -----------------------------------------------------------------------------------


def seq(url: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [
        PY,
        str(HERE / "bench_core.py"),
        "--child",
        "seq",
        "--system",
        "ours",
        "--url",
        url,
        "--n-one",
        str(args.n_one),
        "--n-ten",
        str(args.n_ten),
        "--n-bytes",
        "0",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"seq failed: {out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


QUEUE_DONE = """
SELECT count(*), max(updated_at) FROM durable.workflows
WHERE queue_name = 'bench' AND status = 'succeeded' AND created_at >= %s
"""


def measure_queue(url: str, args: argparse.Namespace, tmp: Path) -> float:
    """Two ``durable worker`` processes drain ``n_queue`` one-step workflows enqueued in
    one call; wf/s from the enqueue to the last finish recorded. Only the workflows of
    this run count (the database holds finished ones of the same queue)."""
    import bench_core
    import psycopg

    logs = [tmp / f"worker-{k}-{time.monotonic_ns()}.log" for k in range(2)]
    procs = []
    for log in logs:
        with log.open("w") as out:
            procs.append(
                subprocess.Popen(
                    [
                        bench_core.DURABLE,
                        "worker",
                        "--app",
                        "bench_workflows:app",
                        *("--database-url", url),
                    ],
                    cwd=HERE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        for log in logs:
            bench_core._wait_for(lambda log=log: "serving" in log.read_text(), 60, "worker")
        time.sleep(args.settle)
        enq = bench_core.run_child("enqueue", "ours", url, args, n=args.n_queue, queue="bench")
        since = int(enq["t0_epoch"] * 1000) - 1

        def done() -> tuple[int, int | None]:
            with psycopg.connect(_libpq(url), autocommit=True) as conn:
                row = conn.execute(QUEUE_DONE, (since,)).fetchone()
            assert row is not None
            return int(row[0]), row[1]

        bench_core._wait_for(lambda: done()[0] >= args.n_queue, 600, "the queue to drain")
        last = done()[1]
        assert last is not None
        return float(args.n_queue / (last / 1000 - enq["t0_epoch"]))
    finally:
        bench_core._stop(procs)


def part1(args: argparse.Namespace, console: Any) -> dict[str, dict[str, list[float]]]:
    import bench_core

    results: dict[str, dict[str, list[float]]] = {"empty": {}, "full": {}}
    with (
        bench_core.fresh_postgres_db(args.postgres) as empty,
        bench_core.fresh_postgres_db(args.postgres) as full,
        tempfile.TemporaryDirectory(prefix="durable-retention-") as tmp,
    ):
        from toolkit import Durable

        app = Durable(empty)
        app.upgrade()
        app.close()
        took = fill(full, args.finished)
        wf, steps, size = table_rows(full)
        console.print(
            f"filled: {wf:,} workflows, {steps:,} steps, {size / 1e6:,.0f} MB in {took:.0f} s"
        )
        urls = {"empty": empty, "full": full}
        bench_args = argparse.Namespace(
            n_queue=args.n_queue,
            idle_seconds=0.5,
            settle=0.5,
            n_one=1,
            n_ten=1,
            n_bytes=0,
            n_ceiling=1,
        )
        for r in range(args.rounds):
            order = ["empty", "full"] if r % 2 == 0 else ["full", "empty"]
            for which in order:
                url = urls[which]
                sample = seq(url, args)
                sample.update(run_child("claims", url, args))
                sample["queue_wf_s"] = measure_queue(url, bench_args, Path(tmp))
                for key, value in sample.items():
                    results[which].setdefault(key, []).append(value)
            console.print(
                f"round {r + 1}/{args.rounds} done, load average {bench_core.load_average()}",
                style="dim",
            )
        wf, steps, size = table_rows(full)
        console.print(f"after the rounds: {wf:,} workflows, {steps:,} steps in the full database")
    return results


# -- part 2 -----------------------------------------------------------------------------------


def part2(args: argparse.Namespace, console: Any) -> list[tuple[float, int, int, int]]:
    import bench_core

    samples: list[tuple[float, int, int, int]] = []
    with (
        bench_core.fresh_postgres_db(args.postgres) as url,
        tempfile.TemporaryDirectory(prefix="durable-steady-") as tmp,
    ):
        from toolkit import Durable

        app = Durable(url)
        app.upgrade()
        app.close()
        marker = Path(tmp) / "ready"
        cmd = [PY, __file__, "--child", "worker", "--url", url, "--marker", str(marker)]
        worker = subprocess.Popen(
            [*cmd, *_sizes(args)], cwd=HERE, stdout=subprocess.PIPE, text=True
        )
        try:
            bench_core._wait_for(marker.exists, 60, "worker")
            feed = subprocess.Popen(
                [PY, __file__, "--child", "feed", "--url", url, *_sizes(args)],
                cwd=HERE,
                stdout=subprocess.PIPE,
                text=True,
            )
            started = time.monotonic()
            while feed.poll() is None:
                wf, steps, size = table_rows(url)
                samples.append((time.monotonic() - started, wf, steps, size))
                console.print(
                    f"{samples[-1][0]:6.0f} s: {wf:,} workflows, {steps:,} steps, "
                    f"{size / 1e3:,.0f} kB",
                    style="dim",
                )
                time.sleep(args.sample_every)
            sent = json.loads(feed.communicate()[0].strip().splitlines()[-1])["sent"]
        finally:
            worker.send_signal(signal.SIGTERM)
            out = worker.communicate(timeout=60)[0]
        pruned = json.loads(out.strip().splitlines()[-1])["pruned"]
        console.print(f"sent {sent:,.0f} workflows, the worker pruned {pruned:,.0f}")
    return samples


def _cell(values: list[float], digits: int = 0) -> str:
    return (
        f"{statistics.median(values):,.{digits}f} "
        f"({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "DURABLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin URL: scratch databases are created and dropped",
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--n-one", type=int, default=300)
    parser.add_argument("--n-ten", type=int, default=60)
    parser.add_argument("--n-claims", type=int, default=200)
    parser.add_argument("--n-queue", type=int, default=2000)
    parser.add_argument("--retention", type=float, default=20.0)
    parser.add_argument("--prune-interval", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--skip-part1", action="store_true")
    parser.add_argument("--skip-part2", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every sample as JSON")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--marker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)), flush=True)
        return
    args.postgres = _libpq(args.postgres)

    import bench_core
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    console.print(f"load average before: {bench_core.load_average()}")
    output: dict[str, Any] = {}
    if not args.skip_part1:
        results = part1(args, console)
        output["part1"] = results
        table = Table(
            title=f"{args.finished:,} finished workflows vs an empty database, "
            f"{args.rounds} rounds: median (min-max)"
        )
        for column in ("metric", "empty", f"{args.finished:,} finished", "full/empty"):
            table.add_column(column, justify="right")
        for key, label, digits in [
            ("one_wf_s", "one-step workflows, sequential (wf/s)", 0),
            ("ten_steps_s", "10-step workflows, sequential (steps/s)", 0),
            ("queue_wf_s", "queue end to end, 2 workers (wf/s)", 0),
            ("claim_bench_p50_ms", "claim latency p50 (ms)", 2),
            ("claim_bench_p95_ms", "claim latency p95 (ms)", 2),
            ("claim_limited_p50_ms", "claim latency p50, concurrency+rate limit (ms)", 2),
            ("claim_limited_p95_ms", "claim latency p95, concurrency+rate limit (ms)", 2),
        ]:
            empty, full = results["empty"][key], results["full"][key]
            ratios = [f / e for f, e in zip(full, empty, strict=True)]
            table.add_row(label, _cell(empty, digits), _cell(full, digits), _cell(ratios, 2))
        console.print(table)
    if not args.skip_part2:
        samples = part2(args, console)
        output["part2"] = samples
        table = Table(
            title=f"steady load {args.rate:.0f} wf/s for {args.duration:.0f} s, retention "
            f"{args.retention:.0f} s, prune every {args.prune_interval:.0f} s"
        )
        for column in ("seconds", "workflows", "steps", "kB (tables+indexes)"):
            table.add_column(column, justify="right")
        for t, wf, steps, size in samples:
            table.add_row(f"{t:.0f}", f"{wf:,}", f"{steps:,}", f"{size / 1e3:,.0f}")
        console.print(table)
    if args.json:
        args.json.write_text(json.dumps(output, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
