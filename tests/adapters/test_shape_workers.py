"""Every table shape under real ``durable worker`` processes, on SQLite, PostgreSQL and MariaDB.

Per shape and legacy database: a shadow run changes nothing; then a worker
process polls the table (``app.poll(adapter.claim)``) and is SIGKILLed inside
the handler of row 2; while row 2's workflow is alive (its worker running,
then dead but its workflow pending) a sweeper with a zero "stuck" threshold
sweeps again and again and never requeues it; a second worker finishes every
row. A legacy reader samples the table all along and never sees an
inconsistent row, nor a row that comes back once gone. Each handler runs once
per attempt, except the killed one, which runs again with the same
idempotency key. A wrong mapping in a worker's poller logs one line, once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from adapters.cron_sweeper import CronSweeper
from adapters.status_column import MappingError, StatusColumnAdapter
from toolkit import Durable

from .shapes import SHAPES, create, read

ROOT = Path(__file__).resolve().parents[2]
N = 6
APP_MODULE = """
import os
import time
from pathlib import Path

from adapters.status_column import StatusColumnAdapter
from tests.adapters.shapes import SHAPES
from toolkit import Durable, RetryPolicy, current_step

shape = SHAPES[os.environ["SHAPE"]]
WORK = Path(os.environ["WORKDIR"])
app = Durable(os.environ["STATE_URL"], lease_timeout=2.0)
queue = app.queue("legacy-" + shape.name, worker_concurrency=1)


def handler(row):
    with open(WORK / "calls", "a") as f:
        f.write(f"{row['id']} {current_step().idempotency_key}\\n")
        f.flush()
        os.fsync(f.fileno())
    if row["id"] == 2 and not (WORK / "killed").exists():
        (WORK / "ready").write_text(str(os.getpid()))
        time.sleep(600)
    if row["payload"] == "broken":
        raise RuntimeError(f"broken {row['id']}")
    if row["payload"] == "flaky" and not (WORK / "flaked").exists():
        (WORK / "flaked").write_text("1")
        raise ConnectionError("flaky once")
    time.sleep(0.02)
    return f"sent {row['id']}"


kwargs = shape.kwargs()
if os.environ.get("WRONG_COLUMN"):
    kwargs["key"] = "no_such_key"
adapter = StatusColumnAdapter(
    app, os.environ["LEGACY_URL"], handler=handler, queue=queue,
    retry=RetryPolicy(max_attempts=2, initial_delay=0.05, backoff=1.0), **kwargs
)
app.poll(adapter.claim, every=0.2)
other = app.queue("other")


@app.workflow(name="ping")
def ping():
    return "pong"
"""


def spawn(tmp_path: Path, env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    out = open(tmp_path / log, "wb")  # noqa: SIM115 (closed with the process)
    args = [sys.executable, "-m", "toolkit", "worker", "--app", "shape_app:app"]
    args += ["--lease-timeout", "2", "--shutdown-grace", "5"]
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", **env},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Reader(threading.Thread):
    """A legacy reader: samples the table, checks each row, and that gone rows stay gone."""

    def __init__(self, url: str, shape: Any) -> None:
        super().__init__(daemon=True)
        self.url, self.shape = url, shape
        self.halt = threading.Event()
        self.samples = 0
        self.problems: list[str] = []

    def run(self) -> None:
        gone: set[int] = set()
        while not self.halt.is_set():
            rows = read(self.url, self.shape)
            self.samples += 1
            for i, r in rows.items():
                if not self.shape.consistent(r):
                    self.problems.append(f"inconsistent row {i}: {r}")
                if i in gone:
                    self.problems.append(f"row {i} came back: {r}")
            gone |= set(range(1, N + 1)) - set(rows)
            time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_shape_under_killed_workers(shape_name, legacy_url, tmp_path):
    shape = SHAPES[shape_name]
    create(legacy_url, shape, N)
    state = f"sqlite:///{tmp_path}/state.db"
    (tmp_path / "shape_app.py").write_text(APP_MODULE)
    env = {"SHAPE": shape.name, "WORKDIR": str(tmp_path), "STATE_URL": state}
    env["LEGACY_URL"] = legacy_url

    # Shadow from another process's point of view: reads only.
    app = Durable(state, lease_timeout=2.0)
    probe = StatusColumnAdapter(app, legacy_url, handler=print, **shape.kwargs())
    before = read(legacy_url, shape)
    assert probe.shadow().would_start_total == N
    assert read(legacy_url, shape) == before
    try:
        sweeper: CronSweeper | None = CronSweeper.for_adapter(
            probe, cron="* * * * *", stuck_after=0
        )
        assert sweeper is not None
        sweeper.check()
    except MappingError:
        sweeper = None  # no column says since when a row runs: nothing to sweep

    reader = Reader(legacy_url, shape)
    reader.start()
    first = spawn(tmp_path, env, "worker-1.log")
    second = None
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert first.poll() is None, (tmp_path / "worker-1.log").read_text()
            assert time.monotonic() < deadline, "row 2's handler never started"
            time.sleep(0.02)
        swept = 0
        if sweeper is not None:  # the workflow of row 2 is alive: never requeued
            for _ in range(5):
                assert sweeper.sweep().requeued == []
                swept += 1
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        (tmp_path / "killed").write_text("1")
        if sweeper is not None:  # its worker is dead, its workflow pending: still held
            report = sweeper.sweep()
            assert report.requeued == []
        second = spawn(tmp_path, env, "worker-2.log")
        deadline = time.monotonic() + 90
        while True:
            live = probe.live_workflows()
            rows = read(legacy_url, shape)
            if not live and all(shape.final(i, rows.get(i)) for i in range(1, N + 1)):
                break
            assert second.poll() is None, (tmp_path / "worker-2.log").read_text()
            assert time.monotonic() < deadline, (live, rows)
            time.sleep(0.1)
    finally:
        reader.halt.set()
        reader.join(timeout=30)
        for proc in (first, second):
            if proc is not None:
                stop(proc)
        probe.legacy.dispose()
    assert reader.problems == []
    assert reader.samples > 10

    calls: dict[int, list[str]] = defaultdict(list)
    for line in (tmp_path / "calls").read_text().splitlines():
        row_id, key = line.split()
        calls[int(row_id)].append(key)
    expected = {1: 1, 2: 2, 3: 2, 4: 2, 5: 1, 6: 1}  # 2: killed once; 3 flaky; 4 broken
    assert {i: len(keys) for i, keys in calls.items()} == expected
    assert len(set(calls[2])) == 1  # the killed attempt ran again with the same key
    statuses = {r.workflow_id: r.status for r in app.list_workflows(name=probe.workflow_name)}
    assert statuses == {f"{shape.name}:{i}": ("failed" if i == 4 else "succeeded") for i in calls}
    app.close()


@pytest.mark.slow
def test_a_wrong_mapping_in_a_worker_poller_is_one_line(tmp_path):
    shape = SHAPES["mail_queue"]
    legacy = f"sqlite:///{tmp_path}/legacy.db"
    create(legacy, shape, 2)
    (tmp_path / "shape_app.py").write_text(APP_MODULE)
    env = {"SHAPE": shape.name, "WORKDIR": str(tmp_path), "LEGACY_URL": legacy}
    env |= {"STATE_URL": f"sqlite:///{tmp_path}/state.db", "WRONG_COLUMN": "1"}
    proc = spawn(tmp_path, env, "worker.log")
    try:
        time.sleep(4)  # about 20 polls
    finally:
        stop(proc)
    log = (tmp_path / "worker.log").read_text()
    errors = [line for line in log.splitlines() if "no_such_key" in line]
    assert len(errors) == 1, log
    assert "MappingError" in errors[0] and "has no key column 'no_such_key'" in errors[0]
    assert "Traceback" not in log
    assert read(legacy, shape) == {i: read(legacy, shape)[i] for i in (1, 2)}


@pytest.mark.slow
def test_an_unreachable_legacy_database_is_one_line_and_other_work_goes_on(tmp_path):
    state = f"sqlite:///{tmp_path}/state.db"
    (tmp_path / "shape_app.py").write_text(APP_MODULE)
    env = {"SHAPE": "mail_queue", "WORKDIR": str(tmp_path), "STATE_URL": state}
    env["LEGACY_URL"] = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing listens there
    proc = spawn(tmp_path, env, "worker.log")
    app = Durable(state)

    @app.workflow(name="ping")
    def ping() -> str:  # the same workflow as the worker's, to enqueue it by name
        return "pong"

    try:
        time.sleep(2)
        handle = app.queue("other").enqueue("ping")
        assert handle.result(timeout=30) == "pong"  # the worker did not back off
        time.sleep(2)
    finally:
        stop(proc)
        app.close()
    log = (tmp_path / "worker.log").read_text()
    errors = [line for line in log.splitlines() if "cannot use the legacy database" in line]
    assert len(errors) == 1, log
    assert "LegacyPollError" in errors[0] and "Traceback" not in log
