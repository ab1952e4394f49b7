"""The durable core side by side with DBOS Transact and the database's commit ceiling.

    python bench/bench_core.py [--postgres URL] [--rounds 5] [--markdown out.md]

One command measures, in the same run and alternated round by round (DBOS
first in odd rounds, ours first in even ones), on the same PostgreSQL (a fresh
uuid-named database per system and round, dropped afterwards):

- the commit ceiling: a plain psycopg loop of single-statement autocommit INSERTs;
- sequential 10-step workflows (steps/s) and one-step workflows (workflows/s),
  run one after another by one process, and the client CPU time per step;
- queue throughput end to end: two worker processes wait (idle) on a queue, one
  call enqueues N one-step workflows, the clock stops at the last one's finish
  as recorded in the database (ours: ``durable worker``; DBOS: launched
  processes with a registered queue, fed by ``DBOSClient.enqueue_in_transaction``);
- enqueue of 10,000 workflows in one call (ours: ``Queue.enqueue_many``; DBOS:
  ``enqueue_in_transaction`` 10,000 times in one transaction);
- recovery latency: a process is SIGKILLed inside step 2 of a workflow; a warm
  process calls ``recover()`` (DBOS: ``_recover_pending_workflows``) and the clock
  stops when step 2 runs again;
- bytes of table and index per extra step (``pg_total_relation_size`` of the
  system schema, SQLite: ``dbstat``), from N one-step against N eleven-step workflows;
- the idle worker: % of one core over ``--idle-seconds`` (psutil), and its RSS,
  idle and after the queue run.

durable-toolkit is also measured on SQLite (one worker process: SQLite allows
one executing process). Each measurement runs in a fresh Python process
(``--child TASK``), so both systems have the same process layout. Prints one
table of medians with min and max over the rounds, and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
DURABLE = str(Path(PY).with_name("durable"))


# -- measurements run in a child process ---------------------------------------------------


def _pg_schema_bytes(url: str, schema: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
    return int(row[0]) if row else 0


def _sqlite_bytes(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT sum(pgsize) FROM dbstat").fetchone()[0])
    finally:
        conn.close()


def _size_fn(system: str, url: str) -> Callable[[], int]:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        return lambda: _sqlite_bytes(path)
    return lambda: _pg_schema_bytes(url, "dbos" if system == "dbos" else "durable")


def _seq_loop(
    run_one: Callable[[int], Any],
    run_ten: Callable[[int], Any],
    run_n: Callable[[int, int], Any],
    size: Callable[[], int],
    args: argparse.Namespace,
) -> dict[str, float]:
    for i in range(20):  # warm up: connections, prepared statements, code paths
        run_one(i)
        run_ten(i)
    start = time.perf_counter()
    for i in range(args.n_one):
        run_one(i)
    one_wf_s = args.n_one / (time.perf_counter() - start)
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(args.n_ten):
        run_ten(i)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    steps = args.n_ten * 10
    result = {
        "one_wf_s": one_wf_s,
        "ten_steps_s": steps / wall,
        "cpu_us_per_step": cpu / steps * 1e6,
    }
    if args.n_bytes:
        size0 = size()
        for i in range(args.n_bytes):
            run_n(i, 1)
        size1 = size()
        for i in range(args.n_bytes):
            run_n(i, 11)
        size2 = size()
        result["bytes_per_step"] = ((size2 - size1) - (size1 - size0)) / (10 * args.n_bytes)
    return result


def _ours_app(url: str) -> Any:
    sys.path.insert(0, str(HERE))
    import bench_workflows

    bench_workflows.app.configure(url=url)
    return bench_workflows


def _dbos_setup(url: str, executor_id: str | None = None) -> dict[str, Any]:
    """Launch DBOS in this process with the twins of ``bench_workflows``."""
    from dbos import DBOS

    config: dict[str, Any] = {
        "name": "bench",
        "system_database_url": url,
        "log_level": "WARNING",
    }
    if executor_id is not None:
        config["executor_id"] = executor_id
    DBOS(config=config)  # type: ignore[arg-type]
    marker: dict[str, Any] = {"victim": None, "resumed": threading.Event()}

    @DBOS.step(name="bench.noop")
    def noop(i: int) -> int:
        return i

    @DBOS.workflow(name="bench.one")
    def one(i: int) -> int:
        return noop(i)

    @DBOS.workflow(name="bench.ten")
    def ten(i: int) -> int:
        for j in range(10):
            noop(j)
        return i

    @DBOS.workflow(name="bench.steps")
    def steps(i: int, count: int) -> int:
        for j in range(count):
            noop(j)
        return i

    @DBOS.step(name="bench.block")
    def block() -> None:
        if marker["victim"] is not None:
            Path(marker["victim"]).write_text("in step 2")
            time.sleep(3600)
        marker["resumed"].set()

    @DBOS.workflow(name="bench.recover")
    def recover_me() -> int:
        noop(1)
        block()
        return 2

    DBOS.launch()
    return {
        "DBOS": DBOS,
        "one": one,
        "ten": ten,
        "steps": steps,
        "recover": recover_me,
        "marker": marker,
    }


def child_ceiling(args: argparse.Namespace) -> dict[str, float]:
    n = args.n_ceiling
    if args.url.startswith("sqlite"):
        conn = sqlite3.connect(args.url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_ceiling (id int)")
        for i in range(50):
            conn.execute("INSERT INTO bench_ceiling VALUES (?)", (i,))
        start = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO bench_ceiling VALUES (?)", (i,))
        rate = n / (time.perf_counter() - start)
        conn.close()
        return {"ceiling": rate}
    import psycopg

    with psycopg.connect(args.url, autocommit=True) as pg:
        # A regular (WAL-logged) table: a TEMP table would skip the commit's fsync.
        pg.execute("CREATE TABLE IF NOT EXISTS bench_ceiling (id int)")
        for i in range(50):
            pg.execute("INSERT INTO bench_ceiling VALUES (%s)", (i,), prepare=True)
        start = time.perf_counter()
        for i in range(n):
            pg.execute("INSERT INTO bench_ceiling VALUES (%s)", (i,), prepare=True)
        return {"ceiling": n / (time.perf_counter() - start)}


def child_seq(args: argparse.Namespace) -> dict[str, float]:
    size = _size_fn(args.system, args.url)
    if args.system == "dbos":
        d = _dbos_setup(args.url)
        try:
            return _seq_loop(d["one"], d["ten"], d["steps"], size, args)
        finally:
            d["DBOS"].destroy()
    bw = _ours_app(args.url)
    app = bw.app
    try:
        return _seq_loop(
            lambda i: app.run(bw.one, i),
            lambda i: app.run(bw.ten, i),
            lambda i, n: app.run(bw.steps, i, n),
            size,
            args,
        )
    finally:
        app.close()


def child_enqueue(args: argparse.Namespace) -> dict[str, float]:
    """Enqueue ``--n`` one-step workflows in one call; with ``--queue-start``, report when."""
    n = args.n
    if args.system == "dbos":
        import sqlalchemy as sa
        from dbos import DBOSClient

        d = _dbos_setup(args.url)  # creates the DBOS schema; consumes no queue of ours
        client = DBOSClient(system_database_url=args.url)
        engine = sa.create_engine(args.url.replace("postgresql://", "postgresql+psycopg://"))
        options = {"workflow_name": "bench.one", "queue_name": args.queue}
        with engine.begin() as conn:  # warm up the connection and the code path
            client.enqueue_in_transaction(conn, {**options, "queue_name": "warmup"}, 0)
        t0_epoch, start = time.time(), time.perf_counter()
        with engine.begin() as conn:
            for i in range(n):
                client.enqueue_in_transaction(conn, options, i)  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        client.destroy()
        engine.dispose()
        d["DBOS"].destroy()
        return {"enqueue_s": seconds, "t0_epoch": t0_epoch}
    bw = _ours_app(args.url)
    app = bw.app
    warm = app.queue("warmup")
    warm.enqueue_many(bw.one, [(0,)])
    target = app.queue(args.queue) if args.queue != "bench" else bw.queue
    calls = [(i,) for i in range(n)]
    t0_epoch, start = time.time(), time.perf_counter()
    target.enqueue_many(bw.one, calls)
    seconds = time.perf_counter() - start
    app.close()
    return {"enqueue_s": seconds, "t0_epoch": t0_epoch}


def child_victim(args: argparse.Namespace) -> dict[str, float]:
    """Start the recovery workflow and block in its step 2 until killed."""
    if args.system == "dbos":
        d = _dbos_setup(args.url, executor_id="victim")
        d["marker"]["victim"] = args.marker
        d["DBOS"].start_workflow(d["recover"])
    else:
        bw = _ours_app(args.url)
        bw.VICTIM_MARKER = Path(args.marker)
        bw.app.start(bw.recover_me)
    time.sleep(3600)
    return {}


def child_rescuer(args: argparse.Namespace) -> dict[str, float]:
    """Warm up, wait for the go file, then time recover() until step 2 runs again."""
    go, ready = Path(args.marker + ".go"), Path(args.marker + ".ready")
    if args.system == "dbos":
        d = _dbos_setup(args.url, executor_id="rescuer")
        resumed = d["marker"]["resumed"]

        def recover() -> bool:
            return bool(d["DBOS"]._recover_pending_workflows(["victim"]))
    else:
        bw = _ours_app(args.url)
        app, resumed = bw.app, bw.RESUMED
        if args.url.startswith("sqlite"):
            app.storage  # noqa: B018  (SQLite: the lock is the victim's until it dies)
        else:
            app.executor.ensure_alive()

        def recover() -> bool:
            return bool(app.recover())

    ready.write_text("ready")
    while not go.exists():
        time.sleep(0.005)
    start = time.perf_counter()
    while not recover():
        if time.perf_counter() - start > 30:
            raise SystemExit("nothing to recover")
        time.sleep(0.001)
    if not resumed.wait(30):
        raise SystemExit("the workflow did not resume")
    result = {"recovery_ms": (time.perf_counter() - start) * 1000}
    print(json.dumps(result), flush=True)
    os._exit(0)  # DBOS and our executor both keep threads; the DB is dropped anyway


def child_dbos_setup(args: argparse.Namespace) -> dict[str, float]:
    _dbos_setup(args.url, executor_id="setup")  # creates DBOS's system tables
    print(json.dumps({}), flush=True)
    os._exit(0)


def _prepare_schema(system: str, url: str) -> None:
    """Create the system tables before the workers start, as a deploy does
    (``durable db upgrade``): the workers measured are the steady-state ones, not
    the one that also loaded the migration code."""
    if system == "dbos":
        cmd = [PY, __file__, "--child", "dbos-setup", "--system", "dbos", "--url", url]
    else:
        cmd = [DURABLE, "db", "upgrade", "--database-url", url]
    subprocess.run(cmd, cwd=HERE, check=True, capture_output=True, timeout=120)


def child_dbos_worker(args: argparse.Namespace) -> dict[str, float]:
    d = _dbos_setup(args.url, executor_id=f"worker-{os.getpid()}")
    d["DBOS"].register_queue(args.queue)
    Path(args.marker).write_text("ready")
    while True:
        time.sleep(3600)


CHILDREN: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "ceiling": child_ceiling,
    "seq": child_seq,
    "enqueue": child_enqueue,
    "victim": child_victim,
    "rescuer": child_rescuer,
    "dbos-worker": child_dbos_worker,
    "dbos-setup": child_dbos_setup,
}


# -- the orchestrating process ---------------------------------------------------------------


def run_child(task: str, system: str, url: str, args: argparse.Namespace, **extra: Any) -> Any:
    cmd = [PY, __file__, "--child", task, "--system", system, "--url", url]
    for key, value in {**child_sizes(args), **extra}.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{task}/{system} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_sizes(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "n_one": args.n_one,
        "n_ten": args.n_ten,
        "n_bytes": args.n_bytes,
        "n_ceiling": args.n_ceiling,
    }


@contextlib.contextmanager
def fresh_postgres_db(admin_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"durable_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _stop(procs: list[subprocess.Popen[Any]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
    for p in procs:
        p.wait(30)


def _done(system: str, url: str, queue: str) -> tuple[int, int | None]:
    """How many workflows of the queue succeeded, and the last finish (epoch ms)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            row = conn.execute(
                "SELECT count(*), max(updated_at) FROM durable_workflows "
                "WHERE queue_name = ? AND status = 'succeeded'",
                (queue,),
            ).fetchone()
        finally:
            conn.close()
        return int(row[0]), row[1]
    import psycopg

    query = (
        "SELECT count(*), max(updated_at) FROM dbos.workflow_status "
        "WHERE queue_name = %s AND status = 'SUCCESS'"
        if system == "dbos"
        else "SELECT count(*), max(updated_at) FROM durable.workflows "
        "WHERE queue_name = %s AND status = 'succeeded'"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, (queue,)).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def measure_queue(
    system: str, url: str, args: argparse.Namespace, workers: int, tmp: Path
) -> dict[str, float]:
    """Idle CPU and RSS of waiting workers, then end-to-end queue throughput."""
    import psutil

    procs: list[subprocess.Popen[Any]] = []
    logs = []
    _prepare_schema(system, url)
    try:
        for k in range(workers):
            log = tmp / f"{system}-worker-{k}-{uuid.uuid4().hex[:6]}.log"
            logs.append(log)
            if system == "dbos":
                cmd = [
                    PY,
                    __file__,
                    "--child",
                    "dbos-worker",
                    "--system",
                    "dbos",
                    "--url",
                    url,
                    "--queue",
                    "bench",
                    "--marker",
                    f"{log}.ready",
                ]
            else:
                cmd = [DURABLE, "worker", "--app", "bench_workflows:app", "--database-url", url]
            with log.open("w") as out:
                procs.append(subprocess.Popen(cmd, cwd=HERE, stdout=out, stderr=subprocess.STDOUT))
        for p, log in zip(procs, logs, strict=True):
            if system == "dbos":
                _wait_for(lambda log=log: Path(f"{log}.ready").exists(), 60, "DBOS worker")
            else:
                _wait_for(lambda log=log: "serving" in log.read_text(), 60, "worker")
            if p.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")
        time.sleep(args.settle)
        ps = [psutil.Process(p.pid) for p in procs]
        before = [sum(x.cpu_times()[:2]) for x in ps]
        t = time.perf_counter()
        time.sleep(args.idle_seconds)
        elapsed = time.perf_counter() - t
        idle_cpu = statistics.mean(
            (sum(x.cpu_times()[:2]) - b) / elapsed * 100 for x, b in zip(ps, before, strict=True)
        )
        idle_rss = statistics.mean(x.memory_info().rss for x in ps) / 2**20
        enq = run_child("enqueue", system, url, args, n=args.n_queue, queue="bench")

        def finished() -> bool:
            return _done(system, url, "bench")[0] >= args.n_queue

        _wait_for(finished, 600, "the queue to drain")
        last = _done(system, url, "bench")[1]
        assert last is not None
        busy_rss = statistics.mean(x.memory_info().rss for x in ps) / 2**20
        return {
            "queue_wf_s": args.n_queue / (last / 1000 - enq["t0_epoch"]),
            "idle_cpu_pct": idle_cpu,
            "idle_rss_mb": idle_rss,
            "busy_rss_mb": busy_rss,
        }
    finally:
        _stop(procs)


def measure_recovery(system: str, url: str, args: argparse.Namespace, tmp: Path) -> float:
    marker = tmp / f"recover-{system}-{uuid.uuid4().hex[:6]}"
    base = [PY, __file__, "--system", system, "--url", url, "--marker", str(marker)]
    rescuer = subprocess.Popen(
        [*base, "--child", "rescuer"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    victim = subprocess.Popen(
        [*base, "--child", "victim"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for(lambda: marker.exists() or victim.poll() is not None, 60, "the victim")
        if not marker.exists():
            raise RuntimeError(f"the victim exited: {victim.communicate()[1][-2000:]!r}")
        _wait_for(Path(f"{marker}.ready").exists, 60, "the rescuer")
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        time.sleep(0.3)  # let the server notice the dead session
        Path(f"{marker}.go").write_text("go")
        out, err = rescuer.communicate(timeout=120)
        if rescuer.returncode != 0:
            raise RuntimeError(f"rescuer failed: {err[-2000:]}")
        return float(json.loads(out.strip().splitlines()[-1])["recovery_ms"])
    finally:
        _stop([victim, rescuer])


METRICS: list[tuple[str, str, str, bool]] = [
    # key, label, unit, higher is better
    ("ceiling", "commit ceiling (autocommit INSERTs)", "/s", True),
    ("ten_steps_s", "10-step workflows, sequential", "steps/s", True),
    ("one_wf_s", "one-step workflows, sequential", "wf/s", True),
    ("cpu_us_per_step", "client CPU per step (10-step)", "µs", False),
    ("queue_wf_s", "queue, end to end (one-step)", "wf/s", True),
    ("enqueue_10k_s", "enqueue 10,000 in one call", "s", False),
    ("recovery_ms", "recovery: recover() to step 2 running", "ms", False),
    ("bytes_per_step", "table+index bytes per extra step", "B", False),
    ("idle_cpu_pct", "idle worker CPU", "% core", False),
    ("idle_rss_mb", "worker RSS, idle", "MB", False),
    ("busy_rss_mb", "worker RSS, after the queue run", "MB", False),
]


def one_round(
    r: int, args: argparse.Namespace, results: dict[str, dict[str, list[float]]], tmp: Path
) -> None:
    systems = ["ours", "dbos"] if r % 2 == 0 else ["dbos", "ours"]
    if args.no_dbos:
        systems = ["ours"]

    def add(column: str, values: dict[str, float]) -> None:
        for key, value in values.items():
            if key != "t0_epoch":
                results.setdefault(column, {}).setdefault(key, []).append(value)

    if args.postgres:
        with fresh_postgres_db(args.postgres) as url:
            add("ceiling", run_child("ceiling", "pg", url, args))
        for system in systems:
            col = "PG ours" if system == "ours" else "PG DBOS"
            with fresh_postgres_db(args.postgres) as url:
                add(col, run_child("seq", system, url, args))
                with fresh_postgres_db(args.postgres) as url2:
                    enq = run_child("enqueue", system, url2, args, n=args.n_enqueue, queue="bulk")
                scale = 10_000 / args.n_enqueue
                add(col, {"enqueue_10k_s": enq["enqueue_s"] * scale})
                add(col, measure_queue(system, url, args, 2, tmp))
                add(col, {"recovery_ms": measure_recovery(system, url, args, tmp)})
        with fresh_postgres_db(args.postgres) as url:
            add("ceiling", run_child("ceiling", "pg", url, args))
    if not args.no_sqlite:
        d = Path(tempfile.mkdtemp(dir=tmp))
        add("SQLite ceiling", run_child("ceiling", "sqlite", f"sqlite:///{d}/ceiling.db", args))
        add("SQLite ours", run_child("seq", "ours", f"sqlite:///{d}/seq.db", args))
        enq = run_child(
            "enqueue", "ours", f"sqlite:///{d}/enqueue.db", args, n=args.n_enqueue, queue="bulk"
        )
        add("SQLite ours", {"enqueue_10k_s": enq["enqueue_s"] * 10_000 / args.n_enqueue})
        add("SQLite ours", measure_queue("ours", f"sqlite:///{d}/queue.db", args, 1, tmp))
        add(
            "SQLite ours",
            {"recovery_ms": measure_recovery("ours", f"sqlite:///{d}/rec.db", args, tmp)},
        )


def summarize(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(values: list[float] | None) -> str:
    if not values:
        return "-"
    med, lo, hi = summarize(values)
    return fmt(med) if len(values) == 1 else f"{fmt(med)} ({fmt(lo)}-{fmt(hi)})"


def ratio(a: list[float] | None, b: list[float] | None, per: int = 1) -> str:
    """Median (min-max) of per-round ratios: round r of ``a`` over the mean of ``b``'s
    ``per`` samples of round r (the ceiling is measured twice a round)."""
    if not a or not b or len(b) < per * len(a):
        return "-"
    rounds = [statistics.mean(b[i * per : (i + 1) * per]) for i in range(len(a))]
    values = [x / y for x, y in zip(a, rounds, strict=True) if y]
    if not values:
        return "-"
    med, lo, hi = summarize(values)
    return f"{med:.2f}x" if len(values) == 1 else f"{med:.2f}x ({lo:.2f}-{hi:.2f})"


def table_rows(results: dict[str, dict[str, list[float]]]) -> list[list[str]]:
    rows = []
    pg_ceiling = results.get("ceiling", {}).get("ceiling")
    lite_ceiling = results.get("SQLite ceiling", {}).get("ceiling")
    for key, label, unit, _ in METRICS:
        ours = results.get("PG ours", {}).get(key)
        dbos = results.get("PG DBOS", {}).get(key)
        lite = results.get("SQLite ours", {}).get(key)
        if key == "ceiling":
            ours, lite = pg_ceiling, lite_ceiling
        vs_ceiling = lite_vs_ceiling = "-"
        if key in ("ten_steps_s", "one_wf_s"):
            vs_ceiling = ratio(ours, pg_ceiling, per=2)
            lite_vs_ceiling = ratio(lite, lite_ceiling)
        rows.append(
            [
                f"{label} ({unit})",
                cell(ours),
                cell(dbos) if key != "ceiling" else "(same)",
                ratio(ours, dbos) if key != "ceiling" else "-",
                vs_ceiling,
                cell(lite),
                lite_vs_ceiling,
            ]
        )
    return rows


HEADERS = [
    "metric",
    "PostgreSQL: ours",
    "PostgreSQL: DBOS",
    "ours/DBOS",
    "ours/ceiling",
    "SQLite: ours",
    "SQLite ours/ceiling",
]


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "DURABLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin URL of a PostgreSQL server (scratch databases are created on it)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n-one", type=int, default=500, help="one-step workflows per round")
    parser.add_argument("--n-ten", type=int, default=100, help="10-step workflows per round")
    parser.add_argument("--n-bytes", type=int, default=300, help="workflows for bytes/step")
    parser.add_argument("--n-ceiling", type=int, default=3000, help="INSERTs per ceiling run")
    parser.add_argument("--n-queue", type=int, default=5000, help="workflows through the queue")
    parser.add_argument("--n-enqueue", type=int, default=10_000, help="enqueued in one call")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before idle CPU")
    parser.add_argument("--no-dbos", action="store_true", help="measure durable-toolkit only")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown")
    parser.add_argument("--json", type=Path, help="also write every sample as JSON")
    # child mode (internal)
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--system", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queue", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--marker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(CHILDREN[args.child](args)), flush=True)
        return
    if args.postgres:
        args.postgres = args.postgres.replace("+psycopg", "")
    if not args.no_dbos:
        try:
            import dbos  # noqa: F401
        except ImportError:
            sys.exit("DBOS is not installed: pip install -e '.[bench]' (or pass --no-dbos)")

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    results: dict[str, dict[str, list[float]]] = {}
    loads = [load_average()]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as tmp:
        for r in range(args.rounds):
            t = time.perf_counter()
            one_round(r, args, results, Path(tmp))
            loads.append(load_average())
            console.print(
                f"round {r + 1}/{args.rounds}: {time.perf_counter() - t:.0f} s, "
                f"load average {loads[-1]}",
                style="dim",
            )
    head = (
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{started}, {args.rounds} rounds, load average {loads[0]} before, "
        f"{' / '.join(loads[1:])} after each round"
    )
    table = Table(title="median (min-max over rounds)", caption=head)
    for i, h in enumerate(HEADERS):
        table.add_column(h, justify="left" if i == 0 else "right")
    rows = table_rows(results)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if args.markdown:
        lines = [
            f"`{head}`",
            "",
            "| " + " | ".join(HEADERS) + " |",
            "|---|" + "---:|" * (len(HEADERS) - 1),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        args.markdown.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"machine": head, "results": results}, indent=1))


if __name__ == "__main__":
    main()
