"""Retention: the hot path with 1,000,000 finished workflows in the tables, a steady load, pruning.

    python bench/bench_retention.py [--backend postgresql|sqlite] [--rounds 6]
        [--finished 1000000] [--prune] [--skip-part1] [--skip-part2]

Part 1, side by side in one run: two fresh databases (PostgreSQL: two
databases of the ``--postgres`` server; SQLite: two files), one empty and one
holding ``--finished`` finished workflows (90% succeeded, 8% failed, 2%
cancelled, created over the last 30 days, two steps each; a quarter of them in
each of the benchmark's two queues, ``bench`` and ``limited``, so that every
index of the workflows table and both claims see them). Each round is one
Python process that opens both databases and alternates between them at a fine
grain, in the order empty-full, full-empty, ... (a load that comes and goes on
a shared machine then falls on both alike; the round's first database
alternates too):

- sequential workflows (the ``bench_workflows`` workflows): one-step
  workflows/s in blocks of 10, 10-step steps/s in blocks of 2, client CPU per
  step (``--n-one`` and ``--n-ten`` workflows per database and round);
- claim latency: one workflow is enqueued, then the timed call is the claim
  (``Storage.claim_from_queue``, the worker's statement), then the workflow
  ends; ``--n-claims`` times on each database, one claim at a time in turn, on
  the queue without limits (``bench``) and on one with a global
  ``concurrency`` and ``rate_limit`` (``limited``: its counting queries run
  too);
- PostgreSQL only: the queue end to end with two ``durable worker`` processes
  (``--n-queue`` one-step workflows enqueued in one call, the clock stopped at
  the last finish recorded; only this run's workflows count), on each
  database back to back.

The table gives, per metric, the median (min-max) of each database and the
median (min-max) of the per-round full/empty ratios, the load average, and a
verdict against the target: within 10% (throughput ratio >= 0.90, latency
ratio <= 1.10), judged on the median ratio; "noisy" when the middle half of
the ratios straddles the target.

Part 2, a steady load with retention on (PostgreSQL): a worker process whose
app keeps finished workflows ``--retention`` seconds and prunes every
``--prune-interval`` seconds serves a queue fed at ``--rate`` workflows/s for
``--duration`` seconds; the row counts and bytes (``pg_total_relation_size``)
of the system tables are sampled every ``--sample-every`` seconds.

Part 3 (``--prune``): pruning an existing table. The full database of part 1
(or a fresh one filled with ``--finished`` workflows) is pruned of everything
older than ``--prune-older-than`` by ``durable workflows prune`` (``--prune-with
cli``: batches of 500 back to back) or by a worker's ``Pruner`` pass
(``--prune-with pruner``: the same batches with the worker's rests between
them), while a probe process claims from both queues (enqueue, claim, end)
the whole time; the probe first runs ``--probe-seconds`` alone for the
baseline. Reported: the time to drain, workflows deleted per second, and the
claim latency before and during the pruning.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
       CASE g %% 4 WHEN 0 THEN 'limited' WHEN 2 THEN 'bench' END,
       0, 0,
       %(now)s - (g::bigint * %(spread)s / %(n)s) - 1000,
       %(now)s - (g::bigint * %(spread)s / %(n)s),
       %(now)s - (g::bigint * %(spread)s / %(n)s) - 1000
FROM generate_series(1, %(n)s) AS g
"""
FILL_STEPS = """
INSERT INTO durable.steps
    (wf_key, step_number, started_at, finished_at, next_attempt_at, attempts, name, status, output)
SELECT w.wf_key, s, w.created_at, w.created_at + 1, NULL, 1, 'bench.noop', 'succeeded', '1'
FROM durable.workflows w CROSS JOIN generate_series(1, 2) AS s
WHERE w.workflow_id LIKE 'old-%'
"""
# The same rows on SQLite (a recursive CTE counts instead of generate_series).
FILL_SQLITE_WORKFLOWS = """
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n)
INSERT INTO durable_workflows
    (workflow_id, name, status, inputs, output, error, queue_name, priority,
     recoveries, created_at, updated_at, started_at)
SELECT 'old-' || x,
       'bench.one',
       CASE WHEN x % 50 = 0 THEN 'cancelled' WHEN x % 12 = 0 THEN 'failed' ELSE 'succeeded' END,
       '{"args": [1], "kwargs": {}}',
       CASE WHEN x % 12 = 0 OR x % 50 = 0 THEN NULL ELSE '1' END,
       CASE WHEN x % 12 = 0 AND x % 50 <> 0
            THEN '{"type": "RuntimeError", "message": "boom", "traceback": ""}' END,
       CASE x % 4 WHEN 0 THEN 'limited' WHEN 2 THEN 'bench' END,
       0, 0,
       :now - (x * :spread / :n) - 1000,
       :now - (x * :spread / :n),
       :now - (x * :spread / :n) - 1000
FROM g
"""
FILL_SQLITE_STEPS = """
INSERT INTO durable_steps
    (wf_key, step_number, started_at, finished_at, next_attempt_at, attempts, name, status, output)
SELECT w.wf_key, s.n, w.created_at, w.created_at + 1, NULL, 1, 'bench.noop', 'succeeded', '1'
FROM durable_workflows w CROSS JOIN (SELECT 1 AS n UNION ALL SELECT 2) AS s
WHERE w.workflow_id LIKE 'old-%'
"""
TABLE_ROWS = """
SELECT (SELECT count(*) FROM durable.workflows), (SELECT count(*) FROM durable.steps),
       (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'durable' AND c.relkind = 'r')
"""
SPREAD_MS = 30 * 86_400_000  # the finished workflows were created over the last 30 days


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def upgrade(url: str) -> None:
    from toolkit import Durable

    app = Durable(url)
    app.upgrade()
    app.close()


def fill(url: str, n: int) -> float:
    """Create the tables and put ``n`` finished workflows (two steps each) in them."""
    upgrade(url)
    started = time.perf_counter()
    now = int(time.time() * 1000)
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(_sqlite_path(url))
        try:
            conn.execute(FILL_SQLITE_WORKFLOWS, {"now": now, "spread": SPREAD_MS, "n": n})
            conn.execute(FILL_SQLITE_STEPS)
            conn.commit()
        finally:
            conn.close()
        return time.perf_counter() - started
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as pg:
        pg.execute(FILL_WORKFLOWS, {"now": now, "spread": SPREAD_MS, "n": n})
        pg.execute(FILL_STEPS)
        # What autovacuum would have done by then: statistics and the visibility map.
        pg.execute("VACUUM ANALYZE durable.workflows")
        pg.execute("VACUUM ANALYZE durable.steps")
    return time.perf_counter() - started


def table_rows(url: str) -> tuple[int, int, int]:
    """Workflows, steps, and bytes of the system tables (with their indexes)."""
    if url.startswith("sqlite"):
        import sqlite3

        path = _sqlite_path(url)
        conn = sqlite3.connect(path)
        try:
            wf = conn.execute("SELECT count(*) FROM durable_workflows").fetchone()[0]
            steps = conn.execute("SELECT count(*) FROM durable_steps").fetchone()[0]
        finally:
            conn.close()
        size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        return int(wf), int(steps), int(size)
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as pg:
        row = pg.execute(TABLE_ROWS).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@contextlib.contextmanager
def fresh_database(args: argparse.Namespace, tmp: Path, label: str) -> Iterator[str]:
    """A new empty database of the chosen backend, dropped (or deleted) afterwards."""
    if args.backend == "sqlite":
        yield f"sqlite:///{tmp / f'{label}.db'}"
        return
    import bench_core

    with bench_core.fresh_postgres_db(args.postgres) as url:
        yield url


# -- children ---------------------------------------------------------------------------------


def _claim_once(app: Any, storage: Any, queue: Any, workflow: Any, owner: str) -> float:
    """Enqueue one workflow, claim it (timed, in ms), end it."""
    handle = queue.enqueue(workflow)
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
    elapsed = (time.perf_counter() - started) * 1000
    assert [c.workflow_id for c in got] == [handle.workflow_id]
    assert storage.finish_workflow(handle.workflow_id, owner, "succeeded", "null", None)
    return elapsed


def _claims_app(url: str) -> tuple[Any, Any, Any]:
    from toolkit import Durable

    app = Durable(url)
    plain = app.queue("bench")
    limited = app.queue("limited", concurrency=50, rate_limit=(100_000, 60.0))

    @app.workflow(name="bench.claimed")
    def claimed() -> None:
        return None

    return app, (plain, limited), claimed


def _percentiles(prefix: str, times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        f"{prefix}_p50_ms": statistics.median(times),
        f"{prefix}_p95_ms": times[int(len(times) * 0.95)],
        f"{prefix}_max_ms": times[-1],
        f"{prefix}_n": float(len(times)),
    }


def _paired_app(url: str) -> Any:
    """An app with the benchmark's workflows (``bench_workflows``' names) on ``url``;
    two of them, on two databases, live in one process."""
    from types import SimpleNamespace

    from toolkit import Durable

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

    @app.workflow(name="bench.claimed")
    def claimed() -> None:
        return None

    queues = (app.queue("bench"), app.queue("limited", concurrency=50, rate_limit=(100_000, 60.0)))
    return SimpleNamespace(app=app, one=one, ten=ten, claimed=claimed, queues=queues)


def child_paired(args: argparse.Namespace) -> dict[str, float]:
    """Both databases from one process, alternating at a fine grain (a block of
    workflows, a single claim) in the order empty-full, full-empty, ...: a load that
    comes and goes on a shared machine falls on both alike. Per database (``a``:
    ``--url``, ``b``: ``--url-full``, whichever holds the finished rows): one-step
    wf/s, 10-step steps/s, client CPU per step, claim latency percentiles."""
    urls = {"a": args.url, "b": args.url_full}
    apps = {which: _paired_app(url) for which, url in urls.items()}
    owner = f"bench-paired-{os.getpid()}"
    for b in apps.values():  # warm-up: connections, prepared statements, code paths
        for i in range(20):
            b.app.run(b.one, i)
            b.app.run(b.ten, i)
            for queue in b.queues:
                _claim_once(b.app, b.app.storage, queue, b.claimed, owner)

    def orders(n: int) -> Iterator[list[str]]:
        for k in range(n):
            yield ["a", "b"] if k % 2 == 0 else ["b", "a"]

    wall = {w: {"one": 0.0, "ten": 0.0} for w in apps}
    cpu = dict.fromkeys(apps, 0.0)
    one_block, ten_block = 10, 2
    blocks = max(args.n_one // one_block, 1)
    for k, order in enumerate(orders(blocks)):
        for which in order:
            b = apps[which]
            started = time.perf_counter()
            for i in range(one_block):
                b.app.run(b.one, k * one_block + i)
            wall[which]["one"] += time.perf_counter() - started
    ten_blocks = max(args.n_ten // ten_block, 1)
    for k, order in enumerate(orders(ten_blocks)):
        for which in order:
            b = apps[which]
            c0, started = time.process_time(), time.perf_counter()
            for i in range(ten_block):
                b.app.run(b.ten, k * ten_block + i)
            wall[which]["ten"] += time.perf_counter() - started
            cpu[which] += time.process_time() - c0
    claims: dict[str, dict[str, list[float]]] = {w: {"bench": [], "limited": []} for w in apps}
    for order in orders(args.n_claims):
        for q in range(2):
            for which in order:
                b = apps[which]
                queue = b.queues[q]
                claims[which][queue.name].append(
                    _claim_once(b.app, b.app.storage, queue, b.claimed, owner)
                )
    result: dict[str, float] = {}
    for which, b in apps.items():
        steps = ten_blocks * ten_block * 10
        result[f"{which}:one_wf_s"] = blocks * one_block / wall[which]["one"]
        result[f"{which}:ten_steps_s"] = steps / wall[which]["ten"]
        result[f"{which}:cpu_us_per_step"] = cpu[which] / steps * 1e6
        for name, times in claims[which].items():
            stats = _percentiles(f"claim_{name}", times)
            for key, value in stats.items():
                if "_p" in key:
                    result[f"{which}:{key}"] = value
        b.app.close()
    return result


def child_probe(args: argparse.Namespace) -> dict[str, float]:
    """Claim from both queues in turn until ``--marker`` exists or ``--probe-seconds``
    passed; the latencies' percentiles per queue."""
    app, queues, claimed = _claims_app(args.url)
    storage = app.storage
    owner = f"bench-probe-{os.getpid()}"
    for _ in range(10):  # warm-up
        for queue in queues:
            _claim_once(app, storage, queue, claimed, owner)
    marker = Path(args.marker)
    times: dict[str, list[float]] = {q.name: [] for q in queues}
    started = time.monotonic()
    while not marker.exists() and time.monotonic() - started < args.probe_seconds:
        for queue in queues:
            times[queue.name].append(_claim_once(app, storage, queue, claimed, owner))
    app.close()
    result = {"seconds": time.monotonic() - started}
    for name, values in times.items():
        result.update(_percentiles(f"claim_{name}", values))
    return result


def child_pruner(args: argparse.Namespace) -> dict[str, float]:
    """One pass of a worker's ``Pruner`` (batches with rests), timed."""
    from toolkit import Durable
    from toolkit.retention import Pruner

    app = Durable(args.url)
    keep = args.prune_older_than
    pruner = Pruner(lambda: app.storage, dict.fromkeys(("succeeded", "failed", "cancelled"), keep))
    started = time.perf_counter()
    counts = pruner.run_pass()
    took = time.perf_counter() - started
    app.close()
    return {"seconds": took, "workflows": float(counts.workflows), "vacuums": float(pruner.vacuums)}


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


CHILDREN = {
    "paired": child_paired,
    "probe": child_probe,
    "pruner": child_pruner,
    "worker": child_worker,
    "feed": child_feed,
}


def _child_cmd(name: str, url: str, args: argparse.Namespace, *extra: str) -> list[str]:
    return [PY, __file__, "--child", name, "--url", url, *extra, *_sizes(args)]


def _last_json(stdout: str) -> dict[str, float]:
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def run_child(name: str, url: str, args: argparse.Namespace, *extra: str) -> dict[str, float]:
    cmd = _child_cmd(name, url, args, *extra)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed: {out.stderr[-3000:]}")
    return _last_json(out.stdout)


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
        "--probe-seconds",
        str(args.probe_seconds),
        "--prune-older-than",
        str(args.prune_older_than),
    ]


# -- part 1 -----------------------------------------------------------------------------------


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


METRICS = [
    # key, label, digits, higher is better
    ("one_wf_s", "one-step workflows, sequential (wf/s)", 0, True),
    ("ten_steps_s", "10-step workflows, sequential (steps/s)", 0, True),
    ("cpu_us_per_step", "client CPU per step, 10-step (us)", 0, False),
    ("queue_wf_s", "queue end to end, 2 workers (wf/s)", 0, True),
    ("claim_bench_p50_ms", "claim latency p50 (ms)", 2, False),
    ("claim_bench_p95_ms", "claim latency p95 (ms)", 2, False),
    ("claim_limited_p50_ms", "claim latency p50, concurrency+rate limit (ms)", 2, False),
    ("claim_limited_p95_ms", "claim latency p95, concurrency+rate limit (ms)", 2, False),
]
TARGET = 0.10
"""Full within 10% of empty: throughput ratio >= 0.90, latency or CPU ratio <= 1.10."""


def verdict(ratios: list[float], higher_is_better: bool) -> str:
    """``meets`` or ``misses`` the target on the median ratio; ``noisy`` when the middle
    half of the ratios (all of them, under four rounds) lies on both sides of it."""
    bound = 1 - TARGET if higher_is_better else 1 + TARGET

    def ok(x: float) -> bool:
        return x >= bound if higher_is_better else x <= bound

    middle = sorted(ratios)
    if len(middle) >= 4:
        q = statistics.quantiles(middle, n=4)
        middle = [q[0], q[2]]
    word = "meets" if ok(statistics.median(ratios)) else "misses"
    noisy = ok(min(middle)) != ok(max(middle))
    return f"{word}{' (noisy)' if noisy else ''}"


def part1(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    results: dict[str, dict[str, list[float]]] = {"empty": {}, "full": {}}
    rounds: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="durable-retention-") as tmp,
        fresh_database(args, Path(tmp), "empty") as empty,
        fresh_database(args, Path(tmp), "full") as full,
    ):
        upgrade(empty)
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
            load_before = os.getloadavg()[0]
            # One process, both databases, alternating block by block.
            first, second = urls[order[0]], urls[order[1]]
            paired = run_child("paired", first, args, "--url-full", second)
            for key, value in paired.items():
                slot, metric = key.split(":")
                which = order[0] if slot == "a" else order[1]
                results[which].setdefault(metric, []).append(value)
            if args.backend == "postgresql" and args.n_queue > 0:
                for which in order:  # worker processes: the pair back to back
                    rate = measure_queue(urls[which], bench_args, Path(tmp))
                    results[which].setdefault("queue_wf_s", []).append(rate)
            load_after = os.getloadavg()[0]
            rounds.append({"first": order[0], "load": [load_before, load_after]})
            console.print(
                f"round {r + 1}/{args.rounds} ({order[0]} first) done, load average "
                f"{load_before:.1f} -> {load_after:.1f}",
                style="dim",
            )
        wf, steps, size = table_rows(full)
        console.print(f"after the rounds: {wf:,} workflows, {steps:,} steps in the full database")
        part: dict[str, Any] = {"results": results, "rounds": rounds, "prune": None}
        part1_table(args, part, console)
        if args.prune:
            part["prune"] = part3(args, console, full)
    return part


def part1_table(args: argparse.Namespace, part: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    results = part["results"]
    loads = [x for r in part["rounds"] for x in r["load"]]
    table = Table(
        title=f"{args.backend}: {args.finished:,} finished workflows vs an empty database, "
        f"{args.rounds} rounds, load average {min(loads):.1f}-{max(loads):.1f}: "
        "median (min-max)"
    )
    columns = ("metric", "empty", f"{args.finished:,} finished", "full/empty", "within 10%")
    for column in columns:
        table.add_column(column, justify="right")
    for key, label, digits, higher in METRICS:
        if key not in results["empty"]:
            continue
        empty, full = results["empty"][key], results["full"][key]
        ratios = [f / e for f, e in zip(full, empty, strict=True)]
        table.add_row(
            label,
            _cell(empty, digits),
            _cell(full, digits),
            _cell(ratios, 2),
            verdict(ratios, higher),
        )
    console.print(table)


# -- part 2 -----------------------------------------------------------------------------------


def part2(args: argparse.Namespace, console: Any) -> list[tuple[float, int, int, int]]:
    import bench_core

    samples: list[tuple[float, int, int, int]] = []
    with (
        bench_core.fresh_postgres_db(args.postgres) as url,
        tempfile.TemporaryDirectory(prefix="durable-steady-") as tmp,
    ):
        upgrade(url)
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
            sent = _last_json(feed.communicate()[0])["sent"]
        finally:
            worker.send_signal(signal.SIGTERM)
            out = worker.communicate(timeout=60)[0]
        pruned = _last_json(out)["pruned"]
        console.print(f"sent {sent:,.0f} workflows, the worker pruned {pruned:,.0f}")
    return samples


# -- part 3 -----------------------------------------------------------------------------------


def part3(args: argparse.Namespace, console: Any, url: str | None = None) -> dict[str, Any]:
    """Prune a table of ``--finished`` finished workflows while a probe claims."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="durable-prune-")))
        if url is None:
            url = stack.enter_context(fresh_database(args, tmp, "prune"))
            took = fill(url, args.finished)
            console.print(f"filled {args.finished:,} finished workflows in {took:.0f} s")
        before_rows = table_rows(url)
        load_before = load_average()
        baseline = run_child("probe", url, args, "--marker", str(tmp / "never"))
        stop = tmp / "stop"
        probe = subprocess.Popen(
            _child_cmd("probe", url, args, "--marker", str(stop), "--probe-seconds", "86400"),
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(2)  # the probe warmed up
            load_start = load_average()
            started = time.perf_counter()
            if args.prune_with == "cli":
                import bench_core

                cmd = [bench_core.DURABLE, "workflows", "prune", "--database-url", url]
                older = f"{args.prune_older_than:.0f}s"
                out = subprocess.run(
                    [*cmd, "--older-than", older, "--json"],
                    capture_output=True,
                    text=True,
                    cwd=HERE,
                    timeout=7200,
                )
                if out.returncode != 0:
                    raise RuntimeError(f"prune failed: {out.stderr[-3000:]}")
                deleted = float(
                    json.loads(out.stdout.strip().splitlines()[-1])["total"]["workflows"]
                )
            else:
                deleted = run_child("pruner", url, args)["workflows"]
            drain = time.perf_counter() - started
            load_end = load_average()
        finally:
            stop.write_text("stop")
            out_probe, err_probe = probe.communicate(timeout=600)
        if probe.returncode != 0:
            raise RuntimeError(f"probe failed: {err_probe[-3000:]}")
        during = _last_json(out_probe)
        after_rows = table_rows(url)
    result = {
        "with": args.prune_with,
        "deleted": deleted,
        "seconds": drain,
        "rows_before": before_rows,
        "rows_after": after_rows,
        "baseline": baseline,
        "during": during,
        "load": [load_before, load_start, load_end],
    }
    from rich.table import Table

    console.print(
        f"pruned {deleted:,.0f} workflows ({args.prune_with}) in {drain:,.1f} s = "
        f"{deleted / drain:,.0f} wf/s; rows {before_rows[0]:,} -> {after_rows[0]:,} "
        f"workflows, {before_rows[1]:,} -> {after_rows[1]:,} steps, "
        f"{before_rows[2] / 1e6:,.0f} -> {after_rows[2] / 1e6:,.0f} MB; load average "
        f"{load_before} / {load_start} / {load_end}"
    )
    table = Table(title="claim latency (ms) before and during the pruning")
    for column in (
        "queue",
        *(
            f"{when} {what}"
            for when in ("before", "during")
            for what in ("claims", "p50", "p95", "max")
        ),
    ):
        table.add_column(column, justify="right")
    for name in ("bench", "limited"):
        row = [name]
        for part in (baseline, during):
            row += [f"{part[f'claim_{name}_n']:,.0f}"]
            row += [f"{part[f'claim_{name}_{p}_ms']:.2f}" for p in ("p50", "p95", "max")]
        table.add_row(*row)
    console.print(table)
    return result


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
    parser.add_argument(
        "--backend",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="parts 1 and 3 (part 2 runs on PostgreSQL)",
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--n-one", type=int, default=300)
    parser.add_argument("--n-ten", type=int, default=60)
    parser.add_argument("--n-claims", type=int, default=200)
    parser.add_argument("--n-queue", type=int, default=2000, help="0: no queue measure")
    parser.add_argument("--retention", type=float, default=20.0)
    parser.add_argument("--prune-interval", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--prune", action="store_true", help="part 3: time pruning the table")
    parser.add_argument("--prune-with", choices=("cli", "pruner"), default="cli")
    parser.add_argument(
        "--prune-older-than",
        type=float,
        default=86400.0,
        help="seconds (default one day: 29 of the 30 days of finished workflows go)",
    )
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--skip-part1", action="store_true")
    parser.add_argument("--skip-part2", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every sample as JSON")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--url-full", help=argparse.SUPPRESS)
    parser.add_argument("--marker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)), flush=True)
        return
    args.postgres = _libpq(args.postgres)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    console.print(f"load average before: {load_average()}")
    output: dict[str, Any] = {}
    if not args.skip_part1:
        part = part1(args, console)
        output["part1"] = part["results"]
        output["part1_rounds"] = part["rounds"]
        if part["prune"] is not None:
            output["part3"] = part["prune"]
    elif args.prune:
        output["part3"] = part3(args, console)
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
    console.print(f"load average after: {load_average()}")
    if args.json:
        args.json.write_text(json.dumps(output, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
