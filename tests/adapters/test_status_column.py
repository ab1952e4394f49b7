"""The status-column adapter on legacy tables in SQLite, PostgreSQL and MariaDB.

The legacy values are deliberately not the role names (``queued``/``working``/
``finished``/``dead``), to show that legacy readers keep their own vocabulary.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.status_column import (
    LegacyColumns,
    MappingError,
    StatusColumnAdapter,
    StatusValues,
)
from toolkit import Durable, RetryPolicy

STATUS = StatusValues(
    pending="queued", running="working", done="finished", failed="dead", other=("cancelled",)
)
COLUMNS = LegacyColumns(
    attempts="attempts",
    last_error="last_error",
    next_retry_at="next_retry_at",
    locked_by="locked_by",
    locked_at="locked_at",
    updated_at="updated_at",
)
FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, backoff=1.0)


def jobs_table(md: sa.MetaData, name: str = "jobs") -> sa.Table:
    return sa.Table(
        name,
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("payload", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(300)),
        sa.Column("next_retry_at", sa.DateTime),
        sa.Column("locked_by", sa.String(100)),
        sa.Column("locked_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
    )


def row(id: int, status: str = "queued", **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": id,
        "kind": "email",
        "payload": f"p{id}",
        "status": status,
        "attempts": 0,
        "last_error": None,
        "next_retry_at": None,
        "locked_by": None,
        "locked_at": None,
        "updated_at": None,
    }
    base.update(values)
    return base


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


@contextlib.contextmanager
def jobs_maker() -> Iterator[Callable[..., sa.Table]]:
    """Create the legacy ``jobs`` table in a database and fill it (engines closed after)."""
    engines: list[sa.Engine] = []

    def make(url: str, rows: list[dict[str, Any]], name: str = "jobs") -> sa.Table:
        engine = engine_for(url)
        engines.append(engine)
        md = sa.MetaData()
        table = jobs_table(md, name)
        md.create_all(engine)
        if rows:
            with engine.begin() as conn:
                conn.execute(table.insert(), rows)
        return table

    try:
        yield make
    finally:
        for engine in engines:
            engine.dispose()


@pytest.fixture
def make_jobs() -> Iterator[Callable[..., sa.Table]]:
    with jobs_maker() as make:
        yield make


def snapshot(url: str, table: str = "jobs") -> list[tuple[Any, ...]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            return [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id))]
    finally:
        engine.dispose()


def dashboard(url: str) -> dict[str, int]:
    """The legacy dashboard's query: how many jobs in each status."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
            return {status: int(n) for status, n in rows}
    finally:
        engine.dispose()


def rows_by_id(url: str) -> dict[int, dict[str, Any]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            t = sa.Table("jobs", sa.MetaData(), autoload_with=conn)
            return {r.id: dict(r._mapping) for r in conn.execute(sa.select(t))}
    finally:
        engine.dispose()


def ago(**delta: float) -> datetime:
    return (datetime.now(UTC) - timedelta(**delta)).replace(tzinfo=None, microsecond=0)


@pytest.fixture
def sqlite_app(tmp_path: Any) -> Iterator[Durable]:
    app = Durable(f"sqlite:///{tmp_path}/state.db", lease_timeout=2.0)
    yield app
    app.close()


# -- the mapping is checked before anything is touched --------------------------------------


def test_mapping_errors_name_table_column_and_values(legacy_url, make_jobs, sqlite_app):
    make_jobs(legacy_url, [row(1), row(2, "working"), row(3, "archived"), row(4, "???")])
    before = snapshot(legacy_url)

    def adapter(**changes: Any) -> StatusColumnAdapter:
        kwargs: dict[str, Any] = {
            "table": "jobs",
            "key": "id",
            "status": STATUS,
            "columns": COLUMNS,
            "handler": lambda r: None,
            "name": f"a{len(made)}",
        }
        kwargs.update(changes)
        made.append(1)
        return StatusColumnAdapter(sqlite_app, legacy_url, **kwargs)

    made: list[int] = []
    with pytest.raises(MappingError, match=r"legacy table 'missing' not found .*jobs"):
        adapter(table="missing").check()
    with pytest.raises(MappingError, match=r"no attempts column 'tries', locked_by column 'owner'"):
        adapter(columns=LegacyColumns(attempts="tries", locked_by="owner")).check()
    with pytest.raises(MappingError, match=r"key column 'kind' .* neither its primary key"):
        adapter(key="kind").check()
    with pytest.raises(MappingError, match=r"column 'status' holds values that are not declared: "):
        adapter().check()
    try:
        adapter().shadow()
    except MappingError as exc:
        message = str(exc)
    assert "'???' (1 row)" in message and "'archived' (1 row)" in message
    assert "StatusValues(other=...)" in message
    with pytest.raises(MappingError, match=r"attempts column 'payload' is VARCHAR"):
        adapter(columns=LegacyColumns(attempts="payload")).check()
    with pytest.raises(ValueError, match="four different values"):
        StatusValues(pending="a", running="a", done="c", failed="d")
    with pytest.raises(ValueError, match="exactly one of handler"):
        StatusColumnAdapter(sqlite_app, legacy_url, table="jobs", key="id", status=STATUS)

    ok = adapter(status=StatusValues(**{**_values(STATUS), "other": ("archived", "???")}))
    assert ok.check() == {"queued": 1, "working": 1, "archived": 1, "???": 1}
    assert snapshot(legacy_url) == before
    assert sqlite_app._storage is None  # the workflow database was never opened


def _values(values: StatusValues) -> dict[str, Any]:
    return {
        "column": values.column,
        "pending": values.pending,
        "running": values.running,
        "done": values.done,
        "failed": values.failed,
    }


# -- shadow ------------------------------------------------------------------------------------


def test_shadow_reports_and_changes_nothing(legacy_url, make_jobs, sqlite_app):
    make_jobs(
        legacy_url,
        [
            row(1),
            row(2, attempts=1, last_error="Timeout"),
            row(3),
            row(4, next_retry_at=ago(minutes=-30)),  # due in 30 minutes
            row(5, attempts=3, last_error="HTTP 500"),  # past a budget of 3
            row(6, "working", locked_by="worker-7", locked_at=ago(hours=2)),
            row(7, "working", locked_by="worker-2", locked_at=ago(minutes=1)),
            row(8, "finished", attempts=1),
            row(9, "dead", attempts=3, last_error="gave up"),
            row(10, "cancelled"),
        ],
    )
    before = snapshot(legacy_url)
    adapter = StatusColumnAdapter(
        sqlite_app,
        legacy_url,
        table="jobs",
        key="id",
        status=STATUS,
        columns=COLUMNS,
        handler=lambda r: None,
        retry=FAST,
    )

    report = adapter.shadow(stuck_after=timedelta(minutes=30))

    assert snapshot(legacy_url) == before
    assert sqlite_app._storage is None
    assert report.would_start == [1, 2, 3] and report.would_start_total == 3
    assert report.not_due == 1 and report.next_due is not None
    assert report.past_budget == [(5, 3)]
    assert report.running_total == 2
    assert [r.key for r in report.stuck] == [6]
    stuck = report.stuck[0]
    assert stuck.locked_by == "worker-7" and not stuck.durable
    assert stuck.age is not None and 7100 < stuck.age < 7300
    assert report.failed_total == 1
    assert report.counts["queued (pending)"] == 5 and report.counts["cancelled"] == 1
    text = str(report)
    assert "nothing was changed" in text
    assert "would start now: 3 row(s): 1, 2, 3" in text
    assert "past their retry budget of 3 attempts: 1 pending row(s): 5 (3 attempts)" in text
    assert "6: 2h 0m (locked by worker-7)" in text or "6: 1h 59m (locked by worker-7)" in text
    assert "at least once" in text
    assert report.to_dict()["stuck"][0]["key"] == 6


# -- takeover ----------------------------------------------------------------------------------


def test_takeover_runs_rows_and_writes_back_legacy_values(legacy_url, db_url, make_jobs):
    make_jobs(
        legacy_url,
        [
            row(1),
            row(2),
            row(3, payload="flaky"),
            row(4, payload="broken"),
            row(5, "finished", attempts=1),
            row(6, "working", locked_by="legacy-worker", locked_at=ago(minutes=5)),
        ],
    )
    app = Durable(db_url, lease_timeout=2.0)
    calls: Counter[int] = Counter()
    entered, release = threading.Event(), threading.Event()
    broken = {"on": True}

    def handle(job: dict[str, Any]) -> str:
        calls[job["id"]] += 1
        if job["id"] == 2 and not release.is_set():
            entered.set()
            release.wait(20)
        if job["payload"] == "flaky" and calls[3] < 3:
            raise ConnectionError(f"flaky attempt {calls[3]}")
        if job["payload"] == "broken" and broken["on"]:
            raise RuntimeError("boom 4")
        return f"sent {job['payload']}"

    queue = app.queue("legacy-jobs", worker_concurrency=1)
    adapter = StatusColumnAdapter(
        app,
        legacy_url,
        table="jobs",
        key="id",
        status=STATUS,
        columns=COLUMNS,
        handler=handle,
        retry=FAST,
        queue=queue,
    )
    try:
        with adapter.takeover(poll_interval=0.1) as takeover:
            assert entered.wait(30)
            # The legacy dashboard while row 2 runs: the values it always saw.
            assert dashboard(legacy_url) == {"finished": 2, "working": 2, "queued": 2}
            running = rows_by_id(legacy_url)[2]
            assert running["locked_by"] == "jobs:2" and running["locked_at"] is not None
            release.set()
            assert takeover.wait_idle(timeout=60)

        assert dashboard(legacy_url) == {"finished": 4, "dead": 1, "working": 1}
        rows = rows_by_id(legacy_url)
        assert [rows[i]["attempts"] for i in (1, 2, 3, 4)] == [1, 1, 3, 3]
        assert rows[3]["last_error"] == "ConnectionError: flaky attempt 2"
        assert rows[4]["last_error"] == "RuntimeError: boom 4"
        for i in (1, 2, 3, 4):
            assert rows[i]["locked_by"] is None and rows[i]["locked_at"] is None
            assert rows[i]["next_retry_at"] is None and rows[i]["updated_at"] is not None
        assert rows[6]["locked_by"] == "legacy-worker"  # never claimed: not pending
        assert rows[5]["updated_at"] is None
        assert calls == {1: 1, 2: 1, 3: 3, 4: 3}
        assert app.get_workflow("jobs:1").status == "succeeded"
        assert app.handle("jobs:3").result(timeout=5) == "sent flaky"
        assert app.get_workflow("jobs:4").status == "failed"
        assert "failed after 3 attempt(s): RuntimeError: boom 4" in str(
            app.get_workflow("jobs:4").error
        )

        # Starting a row twice is impossible: a new poll starts nothing.
        assert adapter.claim().started == []

        # A legacy admin re-queues the dead row after fixing the bug: a new run starts.
        broken["on"] = False
        engine = engine_for(legacy_url)
        t = sa.Table("jobs", sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.id == 4).values(status="queued", attempts=0))
        engine.dispose()
        report = adapter.claim()
        assert report.started == ["jobs:4#2"] and report.restarted == ["jobs:4#2"]
        with adapter.takeover(poll_interval=0.1) as takeover:
            assert takeover.wait_idle(timeout=60)
        assert app.handle("jobs:4#2").result(timeout=5) == "sent broken"
        assert rows_by_id(legacy_url)[4]["status"] == "finished"
        assert dashboard(legacy_url) == {"finished": 5, "working": 1}
    finally:
        release.set()
        app.close()
        adapter.legacy.dispose()


def test_same_database_write_backs_are_transactions(db_url, make_jobs):
    """The legacy table in the workflow database: write-backs commit with their checkpoints."""
    app = Durable(db_url, lease_timeout=2.0)
    app.upgrade()
    make_jobs(db_url, [row(1), row(2, payload="broken")])
    effects: list[int] = []

    @app.transaction(name="record_effect")
    def record_effect(conn: sa.Connection, job_id: int) -> None:
        conn.execute(sa.text("INSERT INTO effects (job_id) VALUES (:j)"), {"j": job_id})

    def process(job: dict[str, Any]) -> int:
        record_effect(job["id"])
        effects.append(job["id"])
        if job["payload"] == "broken":
            raise ValueError("bad payload")
        return int(job["id"])

    with app.connection().begin() as conn:
        conn.execute(sa.text("CREATE TABLE effects (job_id INTEGER NOT NULL)"))
    adapter = StatusColumnAdapter(
        app,
        None,
        table="jobs",
        key="id",
        status=STATUS,
        columns=COLUMNS,
        workflow=process,
        retry=RetryPolicy(max_attempts=2, initial_delay=0.05),
    )
    try:
        assert adapter.same_database and "exactly once" in adapter.promise
        with adapter.takeover(poll_interval=0.1) as takeover:
            assert takeover.wait_idle(timeout=60)
        assert dashboard(db_url) == {"finished": 1, "dead": 1}
        kinds = {s.name: s.status for s in app.list_steps("jobs:1")}
        assert kinds == {
            "legacy.jobs.begin": "succeeded",
            "legacy.jobs.load_row": "succeeded",
            "record_effect": "succeeded",
            "legacy.jobs.done": "succeeded",
        }
        with app.connection().connect() as conn:
            stored = sorted(conn.execute(sa.text("SELECT job_id FROM effects")).scalars())
        assert stored == [1, 2, 2]  # row 2: two attempts, each recorded once
    finally:
        app.close()
        adapter.legacy.dispose()


def test_row_taken_by_a_legacy_worker_after_the_claim_is_left_alone(tmp_path, make_jobs):
    legacy = f"sqlite:///{tmp_path}/legacy.db"
    table = make_jobs(legacy, [row(1)])
    app = Durable(f"sqlite:///{tmp_path}/state.db", lease_timeout=2.0)
    ran: list[int] = []
    adapter = StatusColumnAdapter(
        app,
        legacy,
        table="jobs",
        key="id",
        status=STATUS,
        columns=COLUMNS,
        handler=lambda job: ran.append(job["id"]),
    )
    try:
        assert adapter.claim().started == ["jobs:1"]
        assert adapter.claim().already_running == ["jobs:1"]
        engine = engine_for(legacy)
        with engine.begin() as conn:  # the old worker, still running, grabs the row
            conn.execute(sa.update(table).values(status="working", locked_by="legacy-worker-3"))
        engine.dispose()
        with adapter.takeover(poll_interval=0.1) as takeover:
            assert takeover.wait_idle(timeout=30)
        assert ran == []
        assert rows_by_id(legacy)[1]["locked_by"] == "legacy-worker-3"
        assert app.get_workflow("jobs:1").status == "succeeded"
    finally:
        app.close()
        adapter.legacy.dispose()


# -- a takeover process killed mid-way -------------------------------------------------------

TAKEOVER_PROGRAM = """
import json, os, sys, time
from pathlib import Path

import sqlalchemy as sa

from adapters.status_column import LegacyColumns, StatusColumnAdapter, StatusValues
from toolkit import Durable, current_step

system, legacy, workdir = sys.argv[1:4]
WORK = Path(workdir)
app = Durable(system, lease_timeout=2.0)


@app.transaction(name="record_effect")
def record_effect(conn, job_id):
    conn.execute(sa.text("INSERT INTO effects (job_id) VALUES (:j)"), {"j": job_id})


@app.step(name="send")
def send(job_id):
    with open(WORK / "calls", "a") as f:
        f.write(f"{job_id} {current_step().idempotency_key}\\n")
        f.flush()
        os.fsync(f.fileno())
    if os.environ.get("HANG_AT") == str(job_id):
        (WORK / "ready").write_text(str(os.getpid()))
        time.sleep(600)
    return f"sent {job_id}"


def process(job):
    record_effect(job["id"])
    return send(job["id"])


adapter = StatusColumnAdapter(
    app,
    None if legacy == "same" else legacy,
    table="jobs",
    key="id",
    status=StatusValues(
        pending="queued", running="working", done="finished", failed="dead", other=("cancelled",)
    ),
    columns=LegacyColumns(
        attempts="attempts", last_error="last_error", next_retry_at="next_retry_at",
        locked_by="locked_by", locked_at="locked_at", updated_at="updated_at",
    ),
    workflow=process,
    queue=app.queue("jobs", worker_concurrency=2),
)

if os.environ.get("EXIT_AFTER_LEGACY_COMMIT"):
    # Die between the two commits of a cross-database write-back: the legacy UPDATE
    # of row N's "done" has committed, its checkpoint has not.
    import contextlib

    writing = adapter.legacy.writing

    @contextlib.contextmanager
    def crash_after_commit():
        with writing() as conn:
            yield conn
        try:
            step = current_step()
        except Exception:  # the claim writes outside any step
            return
        target = "jobs:" + os.environ["EXIT_AFTER_LEGACY_COMMIT"]
        if step.name == "legacy.jobs.done" and step.workflow_id == target:
            os._exit(17)

    adapter.legacy.writing = crash_after_commit

with adapter.takeover(poll_interval=0.1) as takeover:
    idle = takeover.wait_idle(timeout=90)
print(json.dumps({"idle": idle}))
app.close()
"""


@pytest.mark.parametrize(
    ("where", "crash"),
    [("same", "sigkill-in-handler"), ("mariadb", "sigkill-in-handler"), ("mariadb", "exit")],
)
def test_takeover_process_killed_mid_way(where, crash, db_url, make_jobs, tmp_path, request):
    """A takeover process dies at row 4; a second process finishes every row exactly once.

    ``sigkill-in-handler``: SIGKILL inside row 4's handler step. ``exit``: the
    process exits between the legacy commit of row 4's ``done`` write-back and
    its checkpoint (the window of the cross-database arrangement).
    """
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    legacy = db_url if where == "same" else request.getfixturevalue("mariadb_url")
    Durable(db_url).upgrade()
    make_jobs(legacy, [row(i) for i in range(1, 7)])
    engine = engine_for(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE effects (job_id INTEGER NOT NULL)"))
    program = tmp_path / "takeover.py"
    program.write_text(TAKEOVER_PROGRAM)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    argv = [sys.executable, str(program), db_url, "same" if where == "same" else legacy]
    argv.append(str(tmp_path))

    if crash == "exit":
        died = subprocess.run(
            argv, env={**env, "EXIT_AFTER_LEGACY_COMMIT": "4"}, capture_output=True, timeout=120
        )
        assert died.returncode == 17, died.stderr.decode()
        assert rows_by_id(legacy)[4]["status"] == "finished"  # the legacy commit survived
        probe = Durable(db_url)
        assert probe.get_workflow("jobs:4").status == "pending"  # its checkpoint did not
        probe.close()
    else:
        first = subprocess.Popen(
            argv, env={**env, "HANG_AT": "4"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert first.poll() is None, first.communicate()[1].decode()
            assert time.monotonic() < deadline, "the takeover never reached row 4"
            time.sleep(0.02)
        assert dashboard(legacy)["working"] >= 1
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert rows_by_id(legacy)[4]["status"] == "working"  # died holding it

    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.strip().splitlines()[-1]) == {"idle": True}

    assert dashboard(legacy) == {"finished": 6}
    rows = rows_by_id(legacy)
    assert all(r["attempts"] == 1 and r["locked_by"] is None for r in rows.values())
    with engine.connect() as conn:
        effects = Counter(conn.execute(sa.text("SELECT job_id FROM effects")).scalars())
    engine.dispose()
    assert effects == {i: 1 for i in range(1, 7)}  # the @transaction: exactly once
    calls = (tmp_path / "calls").read_text().split("\n")
    sends = Counter(line.split()[0] for line in calls if line)
    # A step is at least once. Row 4 died after its handler's checkpoint ("exit": its
    # handler ran once) or inside the handler ("sigkill": twice). The worker runs two
    # rows at a time, so the other row in flight when the process died may run twice.
    assert sends["4"] == (1 if crash == "exit" else 2)
    assert set(sends) == {str(i) for i in range(1, 7)}
    assert sum(sends.values()) - sends["4"] <= 5 + 1
    for key in sends:  # a re-run of a row's handler reuses its idempotency key
        assert len({line for line in calls if line.startswith(f"{key} ")}) == 1
    app = Durable(db_url)
    try:
        records = app.list_workflows(name="legacy.jobs")
        assert sorted(r.workflow_id for r in records) == [f"jobs:{i}" for i in range(1, 7)]
        assert {r.status for r in records} == {"succeeded"}
    finally:
        app.close()


def test_workers_poll_the_table_when_the_app_says_so(db_url, make_jobs):
    """``app.poll(adapter.claim)``: a plain worker claims and runs the legacy rows, no poller."""
    from toolkit import Worker

    make_jobs(db_url, [row(i) for i in range(1, 6)])
    app = Durable(db_url, lease_timeout=2.0)
    done: list[str] = []
    jobs = StatusColumnAdapter(
        app,
        None,  # the legacy table lives in the workflow database
        table="jobs",
        key="id",
        status=STATUS,
        columns=COLUMNS,
        handler=lambda r: done.append(r["payload"]),
    )
    app.poll(jobs.claim, every=0.1)
    worker = Worker(app).start()
    try:
        deadline = time.monotonic() + 60
        while dashboard(db_url) != {STATUS.done: 5}:
            assert time.monotonic() < deadline, dashboard(db_url)
            time.sleep(0.05)
    finally:
        worker.stop(grace=5)
        app.close()
    assert sorted(done) == [f"p{i}" for i in range(1, 6)]
