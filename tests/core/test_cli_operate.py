"""The operator's commands against real databases and real processes: workflows start,
schedules list, loading --app, missing extras, and a worker that meets unknown workflows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit import Durable
from toolkit.cli import main

JOBS = """
from toolkit import Durable

app = Durable()
mail = app.queue("mail")

@app.workflow(name="greet")
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"

@app.scheduled("*/5 * * * *", name="sweep")
def sweep(tick) -> str:
    return tick.isoformat()
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with ``jobs.py`` (the current directory, as for a user)."""
    (tmp_path / "jobs.py").write_text(JOBS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("jobs", "broken"):
        sys.modules.pop(name, None)
    return tmp_path


def test_start_runs_here_or_enqueues(project: Path, db_url: str) -> None:
    runner = CliRunner()
    base = ["workflows", "start", "greet", "--app", "jobs:app", "--database-url", db_url]
    ran = runner.invoke(main, [*base, "--args", '["ann"]', "--kwargs", '{"punctuation": "?"}'])
    assert ran.exit_code == 0, ran.output
    wid, rest = ran.output.split(": ", 1)
    assert rest == 'succeeded: "hello ann?"\n'
    again = runner.invoke(main, [*base, "--args", '["bob"]', "--id", wid])  # idempotent start
    assert again.output == f'{wid}: succeeded: "hello ann?"\n'
    queued = runner.invoke(main, [*base, "--args", '["cid"]', "--queue", "mail", "--id", "g-1"])
    assert queued.output == "g-1: enqueued on mail\n"
    check = Durable(db_url)
    try:
        record = check.get_workflow("g-1")
        assert (record.status, record.queue_name) == ("enqueued", "mail")
        assert json.loads(record.inputs or "") == {"args": ["cid"], "kwargs": {}}
    finally:
        check.close()
    unknown = runner.invoke(main, [*base[:2], "nope", *base[3:]])
    assert unknown.output == (
        "Error: jobs:app registers no workflow named 'nope' (registered: greet, sweep)\n"
    )
    no_queue = runner.invoke(main, [*base, "--queue", "sms"])
    assert no_queue.output == "Error: jobs:app declares no queue 'sms' (declared: mail)\n"
    bad = runner.invoke(main, [*base, "--args", "[oops"])
    assert bad.exit_code == 2 and "Invalid value for --args: not JSON" in bad.output


def test_schedules_list_shows_last_and_next_tick(project: Path, db_url: str) -> None:
    import jobs

    app: Durable = jobs.app
    app.configure(url=db_url)
    try:
        schedule = app.schedules["sweep"]
        tick = 1_790_000_100_000  # a multiple of five minutes, in ms
        app.storage.schedule_ticks(
            schedule="sweep",
            plan=lambda last: ([tick], tick),
            make_row=lambda t: app.schedule_row(schedule, t),
            owner="test:1:abc",
            lease_ms=1,
        )
    finally:
        app.close()
    runner = CliRunner()
    args = ["schedules", "list", "--app", "jobs:app", "--database-url", db_url]
    doc = json.loads(runner.invoke(main, [*args, "--json"]).stdout)
    (row,) = doc["schedules"]
    assert row["schedule"] == "sweep" and row["cron"] == "*/5 * * * *"
    assert row["last_tick"] == "2026-09-21T14:15:00+00:00"
    assert row["last_workflow_id"] == "sweep@2026-09-21T14:15:00+00:00"
    assert row["last_status"] == "waiting"  # its owner's 1 ms lease ran out
    assert row["next_tick"] > row["last_tick"]
    table = runner.invoke(main, args, env={"COLUMNS": "100"})
    assert "sweep@2026-09-21T14:15:00+00:00" in table.output


def test_an_app_that_fails_to_import_is_one_line_naming_file_and_line(project: Path) -> None:
    (project / "broken.py").write_text(
        textwrap.dedent(
            """
            from toolkit import Durable

            app = Durable()
            LIMIT = int("ten")
            """
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(main, ["worker", "--app", "broken:app"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: cannot import 'broken': broken.py:5: ValueError: invalid literal for int() "
        "with base 10: 'ten' (-v for the traceback)\n"
    )
    sys.modules.pop("broken", None)
    verbose = runner.invoke(main, ["-v", "workflows", "start", "x", "--app", "broken:app"])
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stdout == "" and "(-v for the traceback)" not in verbose.stderr
    missing = runner.invoke(main, ["worker", "--app", "nowhere.jobs:app"])
    assert missing.output.startswith("Error: cannot import 'nowhere.jobs': no module named")
    wrong = runner.invoke(main, ["worker", "--app", "jobs:greet"])
    assert wrong.output == (
        "Error: jobs:greet is not a toolkit.Durable application (jobs.greet is a function)\n"
    )


def test_a_missing_extra_is_named(tmp_path: Path) -> None:
    code = 'import sys; sys.modules["pika"] = None; from toolkit.cli import main; main()'
    args = ["dlq", "import-rabbitmq", "--amqp-url", "amqp://u:p@127.0.0.1:1/%2F", "--queue", "q"]
    url = f"sqlite:///{tmp_path}/state.db"
    result = subprocess.run(
        [sys.executable, "-c", code, *args, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: this needs the module 'pika', which is not installed: "
        "pip install 'durable-toolkit[rabbitmq]'\n"
    )


def test_worker_reports_a_workflow_its_app_does_not_register(project: Path, db_url: str) -> None:
    other = Durable(db_url, lease_timeout=0.5)

    @other.workflow(name="billing.close_month")
    def close_month() -> None:
        other.sleep(600)

    other.start(close_month, workflow_id="close-2026-11")
    other.close()  # it waits for a takeover by a worker that has its code
    time.sleep(1)  # its lease ran out
    env = {**os.environ, "PYTHONPATH": str(project), "DURABLE_DATABASE_URL": db_url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "worker", "--app", "jobs:app", "--report-every", "60"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        runner = CliRunner()
        deadline = time.monotonic() + 30
        marks: dict = {}
        while time.monotonic() < deadline and not marks:
            shown = runner.invoke(
                main, ["workflows", "show", "close-2026-11", "--json", "--database-url", db_url]
            )
            assert shown.exit_code == 0, shown.output
            marks = json.loads(shown.stdout)["unregistered_in"]
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    assert len(marks) == 1, out
    assert worker.returncode == 0, out
    lines = [line for line in out.splitlines() if "billing.close_month" in line]
    assert len(lines) == 1, out
    assert (
        "WARNING toolkit.worker: 1 workflow(s) named 'billing.close_month' wait for a "
        in (lines[0])
    )
    assert "jobs:app does not register 'billing.close_month'" in lines[0]
    assert "(first: close-2026-11)" in lines[0]
    text = runner.invoke(
        main, ["workflows", "show", "close-2026-11", "--database-url", db_url], terminal_width=200
    )
    assert "unknown:  worker " in text.output
    assert "does not register 'billing.close_month'" in text.output
    checked = runner.invoke(
        main,
        ["workflows", "show", "close-2026-11", "--app", "jobs:app", "--database-url", db_url],
    )
    assert "unknown:  jobs:app does not register 'billing.close_month'" in checked.output


SLOW_JOBS = """
import time
from pathlib import Path
from toolkit import Durable

app = Durable()
exports = app.queue("exports")

@app.step(name="upload")
def upload() -> str:
    Path("uploading").touch()
    time.sleep(120)
    return "uploaded"

@app.workflow(name="export")
def export() -> str:
    return upload()
"""


def test_a_second_signal_ends_the_shutdown_grace(tmp_path: Path, db_url: str) -> None:
    """The first SIGTERM lets the running step finish (grace 30 s); the second releases it."""
    (tmp_path / "slow_jobs.py").write_text(SLOW_JOBS, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DURABLE_DATABASE_URL": db_url}
    enqueue = (
        "from slow_jobs import app, exports, export\n"
        "exports.enqueue(export, workflow_id='e-1')\n"
        "app.close()"
    )
    subprocess.run([sys.executable, "-c", enqueue], cwd=tmp_path, env=env, check=True)
    worker = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "worker", "--app", "slow_jobs:app"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "uploading").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert worker.poll() is None  # within its 30 s of grace
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, out
    assert "INFO toolkit.worker: signal 15: stopping" in out
    assert "INFO toolkit.worker: signal 15 again: releasing running workflows now" in out
    assert "released 1 running workflow(s) for other workers" in out
    assert "Traceback" not in out
    check = Durable(db_url)
    try:
        record = check.get_workflow("e-1")
        assert (record.status, record.owner) == ("pending", None)
    finally:
        check.close()


def test_run_until_signalled_restores_the_handlers(tmp_path: Path) -> None:
    """In-process, from the main thread: SIGINT stops the loop, and the previous
    handlers are back afterwards (a library call leaves no trace)."""
    import threading

    from toolkit import Worker

    app = Durable(f"sqlite:///{tmp_path}/state.db")
    app.queue("q")
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    worker = Worker(app)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        worker.run_until_signalled()
    finally:
        timer.cancel()
        app.close()
    assert time.monotonic() - started < 10
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
