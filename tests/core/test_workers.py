"""Real ``durable worker`` processes: SIGKILL chaos, SIGTERM, lost connections, limits, schedules.

Each worker is a subprocess running ``python -m toolkit worker --app
tests.core.worker_app:app``; the test process enqueues through the same app
module and reads the ``effects`` table its ``@transaction`` steps write.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.core import worker_app  # noqa: E402

APP = "tests.core.worker_app:app"


class Workers:
    """Spawns and kills worker processes on one database; logs go to files."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.count = 0

    def spawn(self, *queues: str, grace: float = 30.0, **env: str) -> subprocess.Popen[bytes]:
        self.count += 1
        log = self.logs / f"worker-{self.count}.log"
        args = [sys.executable, "-m", "toolkit", "worker", "--app", APP, "--lease-timeout", "2"]
        args += ["--shutdown-grace", str(grace)]
        for queue in queues:
            args += ["--queue", queue]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                args,
                cwd=ROOT,
                env={**os.environ, "DURABLE_DATABASE_URL": self.url, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        wait_for(lambda: proc.poll() is not None or "serving" in log.read_text(), 60)
        assert proc.poll() is None, log.read_text()
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def terminate_all(self) -> list[int | None]:
        live = [p for p in self.procs if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in live:
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(None)
        return codes


def wait_for(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(every)


@pytest.fixture
def db(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    worker_app.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_db(db: sa.Engine, backend: str) -> sa.Engine:
    if backend != "postgres":
        pytest.skip("several worker processes need PostgreSQL (SQLite runs one)")
    return db


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    worker_app.app.configure(url=db_url)
    pool = Workers(db_url, tmp_path)
    try:
        yield pool
    finally:
        for proc in pool.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        worker_app.app.close()


def effect_rows(db: sa.Engine) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(worker_app.effects)))


def statuses(names: tuple[str, ...] = ()) -> Counter[str]:
    records = worker_app.app.list_workflows(limit=100_000)
    return Counter(r.status for r in records if not names or r.name in names)


@pytest.mark.slow
def test_sigkill_chaos_every_workflow_succeeds_exactly_once(pg_db, workers):
    """Workers die by SIGKILL at random moments; nothing runs twice, nothing is lost."""
    total = 300
    handles = worker_app.work.enqueue_many(worker_app.chaos, [(n,) for n in range(total)])
    ids = {h.workflow_id for h in handles}
    pool = [workers.spawn("work") for _ in range(3)]
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 240
    while statuses()["succeeded"] < total:
        assert time.monotonic() < deadline, f"not done: {statuses()}"
        time.sleep(rng.uniform(0.2, 0.6))
        if kills < 12:
            victim = rng.randrange(len(pool))
            workers.kill(pool[victim])
            kills += 1
            pool[victim] = workers.spawn("work")
    assert workers.terminate_all() == [0, 0, 0]

    records = {r.workflow_id: r for r in worker_app.app.list_workflows(limit=100_000)}
    assert set(records) == ids
    assert Counter(r.status for r in records.values()) == {"succeeded": total}
    assert [h.result(timeout=1) for h in handles] == [2 * n for n in range(total)]
    rows = effect_rows(pg_db)
    per_effect = Counter((r.workflow_id, r.label) for r in rows)
    assert len(per_effect) == 2 * total
    assert set(per_effect.values()) == {1}, "a @transaction step ran twice"
    assert kills >= 5
    # Someone resumed the workflows the killed workers held: more than one pid
    # wrote the two effects of some workflow.
    pids = {}
    for row in rows:
        pids.setdefault(row.workflow_id, set()).add(row.pid)
    assert any(len(p) == 2 for p in pids.values())


@pytest.mark.parametrize("grace", [30.0, 0.2])
def test_sigterm_finishes_or_releases_then_exits_cleanly(db, workers, grace):
    """A long grace lets the running workflows finish; a short one releases them."""
    pause = 0.8 if grace > 1 else 3.0
    handles = [worker_app.work.enqueue(worker_app.busy, pause) for _ in range(4)]
    first = workers.spawn("work", grace=grace)
    wait_for(lambda: len(effect_rows(db)) >= 4, 60)  # all four started
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0, first.log.read_text()  # type: ignore[attr-defined]
    log = first.log.read_text()  # type: ignore[attr-defined]
    if grace > 1:
        assert statuses() == {"succeeded": 4}
    else:
        assert "released 4 running workflow(s)" in log
        records = [worker_app.app.get_workflow(h.workflow_id) for h in handles]
        assert {(r.status, r.owner) for r in records} == {("pending", None)}
        workers.spawn("work")
        for handle in handles:
            handle.result(timeout=60)
    labels = Counter((r.workflow_id, r.label) for r in effect_rows(db))
    assert sorted(labels.values()) == [1] * 8  # start and stop, once each


def test_lost_connections_are_reestablished(pg_db, workers, postgres_admin_url):
    """Killing every server connection of the worker, repeatedly, loses nothing."""
    total = 60
    handles = worker_app.work.enqueue_many(worker_app.chaos, [(n,) for n in range(total)])
    proc = workers.spawn("work")
    dbname = pg_db.url.database
    kicked = 0
    with psycopg.connect(str(pg_db.url.set(drivername="postgresql")), autocommit=True) as admin:
        for _ in range(4):
            time.sleep(0.4)
            kicked += len(
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'durable-toolkit' AND datname = %s",
                    (dbname,),
                ).fetchall()
            )
    assert [h.result(timeout=120) for h in handles] == [2 * n for n in range(total)]
    assert statuses() == {"succeeded": total}
    per_effect = Counter((r.workflow_id, r.label) for r in effect_rows(pg_db))
    assert len(per_effect) == 2 * total and set(per_effect.values()) == {1}
    assert kicked >= 4
    assert proc.poll() is None, "the worker died with its connections"
    assert workers.terminate_all() == [0]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = best = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def test_limits_hold_across_worker_processes(pg_db, workers):
    """Rate limit and global concurrency are shared by all workers; per-worker caps hold."""
    limited = worker_app.limited.enqueue_many(worker_app.busy, [(0.0,)] * 16)
    capped = worker_app.capped.enqueue_many(worker_app.busy, [(0.3,)] * 9)
    workers.spawn("limited", "capped")
    workers.spawn("limited", "capped")
    for handle in [*limited, *capped]:
        handle.result(timeout=120)
    assert workers.terminate_all() == [0, 0]

    starts = sorted(
        worker_app.app.get_workflow(h.workflow_id).started_at.timestamp() for h in limited
    )
    # At most 5 starts in any 1-second window (rate_limit=(5, 1.0)), all workers together.
    assert all(starts[i + 5] - starts[i] >= 1.0 - 1e-3 for i in range(len(starts) - 5))

    capped_ids = {h.workflow_id for h in capped}
    spans: dict[str, dict[str, Any]] = {}
    for row in effect_rows(pg_db):
        if row.workflow_id in capped_ids:
            spans.setdefault(row.workflow_id, {})[row.label] = row
    intervals = [(s["start"].at, s["stop"].at) for s in spans.values()]
    assert len(intervals) == 9
    assert _max_overlap(intervals) <= 3  # concurrency=3 across both workers
    for pid in {s["start"].pid for s in spans.values()}:
        mine = [(s["start"].at, s["stop"].at) for s in spans.values() if s["start"].pid == pid]
        assert _max_overlap(mine) <= 2  # worker_concurrency=2


def test_one_workflow_per_tick_across_workers(pg_db, workers):
    pool = [workers.spawn(WORKER_APP_SCHEDULE="latest") for _ in range(3)]
    time.sleep(4.5)
    assert workers.terminate_all() == [0] * len(pool)
    ticks = [r for r in worker_app.app.list_workflows(limit=1000) if r.name == "tick"]
    assert len(ticks) >= 2
    assert {r.status for r in ticks} == {"succeeded"}
    labels = Counter(r.label for r in effect_rows(pg_db))
    assert len(labels) == len(ticks) and set(labels.values()) == {1}
    assert len({r.pid for r in effect_rows(pg_db)}) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["catch-up", "latest"])
def test_a_worker_that_was_down_catches_up_or_skips(db, workers, mode):
    workers.spawn(WORKER_APP_SCHEDULE=mode)
    wait_for(lambda: len(effect_rows(db)) >= 1, 30)
    assert workers.terminate_all() == [0]
    time.sleep(3.2)  # at least three ticks pass with no worker
    workers.spawn(WORKER_APP_SCHEDULE=mode)
    time.sleep(1.5)
    assert workers.terminate_all() == [0]
    seconds = sorted(int(datetime.fromisoformat(r.label).timestamp()) for r in effect_rows(db))
    assert len(seconds) == len(set(seconds))
    gaps = [b - a for a, b in pairwise(seconds)]
    if mode == "catch-up":
        assert gaps and set(gaps) == {1}, seconds
    else:
        assert max(gaps) >= 3, seconds


def test_workflows_not_registered_wait_for_a_worker_that_has_them(db, workers):
    newer = worker_app.work.enqueue(worker_app.newer, 7)
    known = worker_app.work.enqueue(worker_app.chaos, 1)
    workers.spawn("work", WORKER_APP_WITHOUT="newer")
    assert known.result(timeout=60) == 2
    time.sleep(1.0)
    assert newer.status() == "enqueued"
    assert workers.terminate_all() == [0]
    workers.spawn("work")
    assert newer.result(timeout=60) == 7
    assert [r.label for r in effect_rows(db)] == ["begin", "end", "newer"]


def test_a_second_sqlite_worker_is_refused(db, workers, backend):
    if backend != "sqlite":
        pytest.skip("SQLite only")
    workers.spawn("work")
    second = subprocess.run(
        [sys.executable, "-m", "toolkit", "worker", "--app", APP],
        cwd=ROOT,
        env={**os.environ, "DURABLE_DATABASE_URL": workers.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert "SQLite supports one executing process" in second.stderr
    assert "Traceback" not in second.stderr


def test_taken_over_work_counts_against_the_worker_cap(db, workers):
    """A worker that takes over a dead worker's queue work claims no more than its cap allows."""
    handles = worker_app.capped.enqueue_many(worker_app.busy, [(1.5,)] * 4)
    first = workers.spawn("capped")
    wait_for(lambda: len(effect_rows(db)) >= 2, 60)  # worker_concurrency=2: two started
    workers.kill(first)
    # A free liveness lock alone is not proof enough for a worker's background pass
    # (a live worker's session may have been killed): let the 2 s leases run out, so
    # the new worker's first pass takes the two over before it claims anything.
    time.sleep(2.5)
    taken_over_at = time.time()
    second = workers.spawn("capped")
    for handle in handles:
        handle.result(timeout=60)
    assert workers.terminate_all() == [0]
    spans: dict[str, dict[str, Any]] = {}
    for row in effect_rows(db):
        spans.setdefault(row.workflow_id, {})[row.label] = row
    assert {s["stop"].pid for s in spans.values()} == {second.pid}
    intervals = [
        (s["start"].at if s["start"].pid == second.pid else taken_over_at, s["stop"].at)
        for s in spans.values()
    ]
    assert _max_overlap(intervals) <= 2


def test_a_frozen_worker_loses_its_lease_and_cannot_write_after_it(pg_db, workers):
    """SIGSTOP a worker mid-step: its lease (2 s) runs out, another worker takes the workflow
    over; after SIGCONT the frozen one's checkpoints and transactions are refused (fenced)."""
    handle = worker_app.work.enqueue(worker_app.busy, 4.0)
    frozen = workers.spawn("work")
    wait_for(lambda: len(effect_rows(pg_db)) >= 1, 60)  # started: inside the 4 s pause
    rescuer = workers.spawn("work")
    frozen.send_signal(signal.SIGSTOP)
    try:
        assert handle.result(timeout=60) is None
    finally:
        frozen.send_signal(signal.SIGCONT)
    time.sleep(5.0)  # the frozen worker wakes, ends its pause, tries to checkpoint
    rows = effect_rows(pg_db)
    assert Counter(r.label for r in rows) == {"start": 1, "stop": 1}
    assert {r.pid for r in rows if r.label == "stop"} == {rescuer.pid}
    assert frozen.poll() is None, "the fenced worker carries on"
    assert workers.terminate_all() == [0, 0]


def test_a_sigkilled_worker_is_listed_dead_then_dropped_when_it_is_replaced(db, workers):
    """`durable workers list` shows a worker killed by SIGKILL as dead once its lease
    timeout passes (it never deleted its row), and its successor as alive."""

    def listed() -> dict[str, dict[str, Any]]:
        args = ["workers", "list", "--json", "--lease-timeout", "2", "--database-url", workers.url]
        out = subprocess.run(
            [sys.executable, "-m", "toolkit", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return {w["pid"]: w for w in json.loads(out.stdout)["workers"]}

    first = workers.spawn("work")
    wait_for(lambda: first.pid in listed(), 60)
    assert listed()[first.pid]["alive"] is True
    workers.kill(first)
    assert first.returncode == -signal.SIGKILL
    wait_for(lambda: listed()[first.pid]["alive"] is False, 30, every=0.5)
    dead = listed()[first.pid]
    assert dead["registered"] is True and dead["queues"] == ["work"]
    second = workers.spawn("work")
    wait_for(lambda: second.pid in listed(), 60)
    now = listed()
    assert now[second.pid]["alive"] is True
    assert now[first.pid]["alive"] is False  # kept for a day, never shown alive again
    assert workers.terminate_all() == [0]
    assert second.pid not in listed()  # a clean stop deletes its row
