"""``@transaction`` on an app database apart from the state store stays exactly-once.

Every pair: state store SQLite or PostgreSQL x app database PostgreSQL, MariaDB or
SQLite. Real processes are SIGKILLed inside a transaction, between its app commit
and its checkpoint, and during a queue run of 200 workflows; every business effect
happens once and every workflow ends with the right result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.appdb import appdb_app
from toolkit import Durable, current_workflow_id
from toolkit.errors import ConfigurationError, DatabaseUnavailableError

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.appdb.appdb_app:app"


def _ledger(app_db_url: str) -> Counter[tuple[str, str]]:
    engine = sa.create_engine(app_db_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(appdb_app.ledger.c.workflow_id, appdb_app.ledger.c.label))
            return Counter((w, label) for w, label in rows)
    finally:
        engine.dispose()


@pytest.fixture
def urls(db_url: str, app_db_url: str) -> Iterator[tuple[str, str]]:
    """(state store, app database), both upgraded, with the ledger in the app database."""
    app = Durable(db_url, app_database_url=app_db_url)
    app.upgrade()
    app.close()
    engine = sa.create_engine(app_db_url, poolclass=sa.NullPool)
    appdb_app.metadata.create_all(engine)
    engine.dispose()
    yield db_url, app_db_url


def _app(urls: tuple[str, str], **kwargs: Any) -> Durable:
    return Durable(urls[0], app_database_url=urls[1], **kwargs)


def test_writes_go_to_the_app_database_exactly_once(urls):
    app = _app(urls)

    @app.transaction(name="book")
    def book(conn: sa.Connection, label: str) -> str:
        wid = current_workflow_id() or "outside"
        conn.execute(appdb_app.ledger.insert().values(workflow_id=wid, label=label, pid=1))
        return f"{wid}:{label}"

    @app.workflow(name="two")
    def two() -> list[str]:
        return [book("a"), book("b")]

    try:
        assert app.run(two, workflow_id="w1") == ["w1:a", "w1:b"]
        assert app.run(two, workflow_id="w1") == ["w1:a", "w1:b"]  # same id: no new run
        assert book("c") == "outside:c"  # outside a workflow: the app database too
        assert _ledger(urls[1]) == Counter({("w1", "a"): 1, ("w1", "b"): 1, ("outside", "c"): 1})
        assert [s.status for s in app.list_steps("w1")] == ["succeeded", "succeeded"]
        state = sa.inspect(app.storage.engine)
        assert not state.has_table("ledger")  # nothing of the business in the state store
        assert app.prune_app_outputs(older_than=0) == 2  # succeeded: no replay needs them
    finally:
        app.close()


def _run(mode: str, wid: str, urls: tuple[str, str], tmp: Path, **env: str) -> Any:
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "appdb" / "appdb_app.py"), mode, wid],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DURABLE_DATABASE_URL": urls[0],
            "DURABLE_APP_DATABASE_URL": urls[1],
            "CRASH_DIR": str(tmp),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("where", ["in-book", "after-book"])
def test_a_kill_inside_or_after_the_app_commit_runs_nothing_twice(urls, tmp_path, where):
    wid = f"crash-{where}"
    crashed = _run("run", wid, urls, tmp_path, CRASH_AT=where)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = _run("recover", wid, urls, tmp_path)  # a new process: another app object
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == [f"{wid}:a", f"{wid}:b", 7]
    assert _ledger(urls[1]) == Counter({(wid, "a"): 1, (wid, "b"): 1})


class Workers:
    def __init__(self, urls: tuple[str, str], logs: Path) -> None:
        self.urls, self.logs = urls, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.procs) + 1}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "toolkit", "worker", "--app", APP, "--lease-timeout", "2"],
                cwd=ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": str(ROOT),
                    "DURABLE_DATABASE_URL": self.urls[0],
                    "DURABLE_APP_DATABASE_URL": self.urls[1],
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        _wait_for(lambda: proc.poll() is not None or "serving" in log.read_text(), 60)
        assert proc.poll() is None, log.read_text()
        return proc


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_worker_killed_during_a_queue_run_of_200(urls, tmp_path, backend):
    appdb_app.app.configure(url=urls[0], app_database_url=urls[1])
    workers = Workers(urls, tmp_path)
    try:
        several = backend == "postgres"  # SQLite: one executing process at a time
        first = workers.spawn()
        if several:
            workers.spawn()
        handles = appdb_app.work.enqueue_many(appdb_app.pair, [(i,) for i in range(200)])
        app = appdb_app.app
        _wait_for(lambda: app.list_workflows(status="succeeded", limit=1000).__len__() >= 40, 60)
        first.send_signal(signal.SIGKILL)
        first.wait()
        if not several:
            workers.spawn()  # the next process takes the dead one's workflows over
        for i, handle in enumerate(handles):
            wid = handle.workflow_id
            assert handle.result(timeout=120) == [f"{wid}:a", f"{wid}:b", i]
        ledger = _ledger(urls[1])
        assert set(ledger.values()) == {1}, {k: n for k, n in ledger.items() if n != 1}
        assert len(ledger) == 400
    finally:
        for proc in workers.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
        appdb_app.app.close()


def test_two_state_stores_sharing_one_app_database_never_mix(app_db_url, tmp_path):
    engine = sa.create_engine(app_db_url, poolclass=sa.NullPool)
    appdb_app.metadata.create_all(engine)
    engine.dispose()
    results = []
    for name in ("one", "two"):
        app = Durable(f"sqlite:///{tmp_path}/{name}.db", app_database_url=app_db_url)
        app.upgrade()

        @app.transaction(name="book")
        def book(conn: sa.Connection, label: str, _name: str = name) -> str:
            conn.execute(appdb_app.ledger.insert().values(workflow_id=_name, label=label, pid=1))
            return f"{_name}:{label}"

        @app.workflow(name="same")
        def same() -> str:
            return book("x")

        try:
            results.append(app.run(same, workflow_id="same-id"))
        finally:
            app.close()
    assert results == ["one:x", "two:x"]  # same workflow id and key, different stores
    assert _ledger(app_db_url) == Counter({("one", "x"): 1, ("two", "x"): 1})


def test_bad_app_databases_fail_at_start_up_with_one_line(tmp_path, app_db_url):
    state = f"sqlite:///{tmp_path}/state.db"
    with pytest.raises(ConfigurationError, match="unsupported app database"):
        Durable(state, app_database_url="oracle://scott@db/orcl")
    with pytest.raises(ConfigurationError, match="invalid app database URL"):
        Durable(state, app_database_url="not a url")

    def start(app: Durable) -> None:
        @app.workflow(name="noop")
        def noop() -> None:
            return None

        app.run(noop)

    missing = Durable(state, app_database_url=app_db_url)  # never upgraded: no outputs table
    try:
        with pytest.raises(ConfigurationError, match="durable db upgrade") as info:
            start(missing)
        assert "\n" not in str(info.value)
    finally:
        missing.close()
    down = Durable(state, app_database_url="postgresql://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(DatabaseUnavailableError, match="app database") as info:
            start(down)
        assert "\n" not in str(info.value)
    finally:
        down.close()


def test_the_app_database_url_comes_from_the_environment(tmp_path, monkeypatch):
    app_db = f"sqlite:///{tmp_path}/app.db"
    monkeypatch.setenv("DURABLE_APP_DATABASE_URL", app_db)
    app = Durable(f"sqlite:///{tmp_path}/state.db")
    try:
        assert app.app_database is not None
        assert app.app_database.describe() == app_db
    finally:
        app.close()
    monkeypatch.setenv("DURABLE_APP_DATABASE_URL", f"sqlite:///{tmp_path}/state.db")
    same = Durable(f"sqlite:///{tmp_path}/state.db")
    assert same.app_database is None  # the same database: nothing is apart


def _mariadb_database(charset: str) -> Iterator[str]:
    from tests.adapters.conftest import _mariadb_admin

    engine, url = _mariadb_admin()
    name = f"appdb_{charset}_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET {charset}"))  # our name
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture
def latin1_mariadb() -> Iterator[str]:
    yield from _mariadb_database("latin1")


def test_any_valid_id_works_on_a_latin1_mysql_app_database(latin1_mariadb, tmp_path):
    app = Durable(f"sqlite:///{tmp_path}/state.db", app_database_url=latin1_mariadb)
    app.upgrade()

    @app.transaction(name="touch")
    def touch(conn: sa.Connection) -> str:
        return str(current_workflow_id())

    @app.workflow(name="one")
    def one() -> str:
        return touch()

    try:
        for wid in ("заказ-1", "order-\U0001f600"):
            assert app.run(one, workflow_id=wid) == wid
    finally:
        app.close()


@pytest.mark.slow
def test_a_transaction_that_loses_its_connection_every_time_fails(mariadb_url, tmp_path):
    """MariaDB drops the connection of a packet above max_allowed_packet: that is the
    transaction's fault, not an outage, so its attempt fails instead of looping."""
    from toolkit import TransactionConnectionLost  # noqa: F401  (exported)
    from toolkit.errors import DurableError

    app = Durable(f"sqlite:///{tmp_path}/state.db", app_database_url=mariadb_url)
    app.upgrade()
    with app.connection().connect() as conn:
        limit = int(conn.execute(sa.text("SELECT @@max_allowed_packet")).scalar_one())

    @app.transaction(name="huge")
    def huge(conn: sa.Connection) -> str:
        return "x" * (limit + 1024)

    @app.workflow(name="big")
    def big() -> int:
        return len(huge())

    try:
        with pytest.raises(DurableError, match="lost its database connection 5 times"):
            app.run(big, workflow_id="big-1", timeout=120)
    finally:
        app.close()


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("postgresql://u@localhost/shop", "postgresql://u@127.0.0.1:5432/shop", True),
        ("postgresql://u@[::1]:5432/shop", "postgresql://u@127.0.0.1/shop", True),
        ("postgresql://u@127.0.0.1:5433/shop", "postgresql://u@127.0.0.1/shop", False),
        ("postgresql://u@127.0.0.1/shop", "postgresql://u@127.0.0.1/state", False),
        ("postgresql://u@db.internal/shop", "postgresql://u@127.0.0.1/shop", False),
        ("mysql+pymysql://root@localhost/shop", "mysql+pymysql://root@127.0.0.1:3306/shop", True),
        ("mysql+pymysql://root@localhost/shop", "postgresql://u@localhost/shop", False),
    ],
)
def test_same_database_reads_loopback_names_and_default_ports_as_one(a, b, same):
    from sqlalchemy.engine import make_url

    from toolkit.appdb import same_database

    assert same_database(make_url(a), make_url(b)) is same
