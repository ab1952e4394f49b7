"""Crash and resume with real processes killed by os._exit and SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from toolkit import Durable

APP = Path(__file__).with_name("crash_app.py")


def spawn(url: str, mode: str, wid: str, scenario: str, work: Path, **env: str):
    return subprocess.Popen(
        [sys.executable, str(APP), url, mode, wid, scenario, str(work)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(url: str, mode: str, wid: str, scenario: str, work: Path, **env: str):
    proc = spawn(url, mode, wid, scenario, work, **env)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def recover(url: str, wid: str, scenario: str, work: Path) -> dict:
    code, out, err = run(url, "recover", wid, scenario, work)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def calls(work: Path) -> list[str]:
    path = work / "calls"
    return path.read_text().splitlines() if path.exists() else []


def kill_when_ready(proc: subprocess.Popen, ready: Path) -> None:
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the child never reached the kill point"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("k", [1, 4, 10])
def test_exit_inside_step_k_resumes_without_repeating_earlier_steps(db_url, tmp_path, k):
    code, _, err = run(db_url, "run", "wf-ten", "ten_steps", tmp_path, CRASH_AT=f"step{k}")
    assert code == 17, err
    assert calls(tmp_path) == [f"step{i}:wf-ten:{i}" for i in range(1, k + 1)]

    result = recover(db_url, "wf-ten", "ten_steps", tmp_path)

    assert result["recovered"] == ["wf-ten"]
    assert result["status"] == "succeeded"
    assert result["result"] == [i * 10 for i in range(1, 11)]
    lines = calls(tmp_path)
    # steps 1..k-1 ran once; step k ran twice (at-least-once), with the same key.
    for i in range(1, 11):
        expected = 2 if i == k else 1
        assert lines.count(f"step{i}:wf-ten:{i}") == expected, lines


def test_exit_after_the_last_step_reruns_only_that_step(db_url, tmp_path):
    """The last step's checkpoint commits with the workflow's end: a crash in between
    re-runs that one step (at least once, same key), never the ones before it."""
    code, _, err = run(db_url, "run", "wf-end", "ten_steps", tmp_path, CRASH_AT="after-last-step")
    assert code == 17, err
    result = recover(db_url, "wf-end", "ten_steps", tmp_path)
    assert result["status"] == "succeeded"
    assert result["result"] == [i * 10 for i in range(1, 11)]
    lines = calls(tmp_path)
    for i in range(1, 11):
        assert lines.count(f"step{i}:wf-end:{i}") == (2 if i == 10 else 1), lines


def test_sigkill_inside_a_step_resumes(db_url, tmp_path):
    proc = spawn(db_url, "run", "wf-kill", "ten_steps", tmp_path, HANG_AT="step6")
    kill_when_ready(proc, tmp_path / "ready-step6")

    result = recover(db_url, "wf-kill", "ten_steps", tmp_path)

    assert result["status"] == "succeeded"
    assert result["result"] == [i * 10 for i in range(1, 11)]
    lines = calls(tmp_path)
    assert [lines.count(f"step{i}:wf-kill:{i}") for i in range(1, 11)] == [1] * 5 + [2] + [1] * 4


def _payments(url: str) -> list[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        rows = [r[0] for r in conn.execute(sa.text("SELECT order_id FROM payments"))]
    engine.dispose()
    return rows


def _create_payments(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE payments (order_id TEXT NOT NULL)"))
    engine.dispose()


@pytest.mark.parametrize("where", ["in-pay", "after-pay"])
def test_transaction_is_exactly_once_across_a_crash(db_url, tmp_path, where):
    _create_payments(db_url)
    code, _, err = run(db_url, "run", "wf-pay", "payment", tmp_path, CRASH_AT=where)
    assert code == 17, err
    # Killed inside the transaction: nothing committed. Killed after it: row and checkpoint.
    assert _payments(db_url) == ([] if where == "in-pay" else ["o-1"])

    result = recover(db_url, "wf-pay", "payment", tmp_path)

    assert result["status"] == "succeeded", result
    assert result["result"] == "paid-o-1:30"
    assert _payments(db_url) == ["o-1"]
    lines = calls(tmp_path)
    assert lines.count("pay") == (2 if where == "in-pay" else 1)
    # Step 1's checkpoint committed before the transaction began: never run again.
    assert lines.count("step1:wf-pay:1") == 1


def test_sigkill_inside_a_transaction_leaves_no_write(db_url, tmp_path):
    _create_payments(db_url)
    proc = spawn(db_url, "run", "wf-pay-k", "payment", tmp_path, HANG_AT="in-pay")
    kill_when_ready(proc, tmp_path / "ready-in-pay")
    assert _payments(db_url) == []

    result = recover(db_url, "wf-pay-k", "payment", tmp_path)

    assert result["status"] == "succeeded", result
    assert _payments(db_url) == ["o-1"]


def test_attempt_count_survives_a_crash_during_retries(db_url, tmp_path):
    code, _, err = run(db_url, "run", "wf-retry", "retries", tmp_path, CRASH_AT="fail-attempt3")
    assert code == 17, err
    assert calls(tmp_path) == ["fail1", "fail2", "fail3"]

    result = recover(db_url, "wf-retry", "retries", tmp_path)

    # Attempts 1 and 2 were recorded as failed; the crashed attempt 3 runs again,
    # then attempt 4 is the last one allowed: the budget was not reset.
    assert calls(tmp_path) == ["fail1", "fail2", "fail3", "fail3", "fail4"]
    assert result["status"] == "failed"
    assert "OSError: attempt 4 failed" in result["error"]


def test_durable_sleep_resumes_with_what_is_left(db_url, tmp_path):
    proc = spawn(db_url, "run", "wf-sleep", "sleeper", tmp_path, HANG_AT="never")
    deadline = time.monotonic() + 30
    while "step1:wf-sleep:1" not in calls(tmp_path):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # now inside the 3-second durable sleep
    started_sleeping = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    result = recover(db_url, "wf-sleep", "sleeper", tmp_path)

    assert result["status"] == "succeeded"
    # It woke at the recorded time (about 3 s after the sleep began), not 3 s after recovery.
    assert result["result"] >= started_sleeping + 2.5
    assert calls(tmp_path) == ["step1:wf-sleep:1"]


def test_a_workflow_that_kills_every_process_fails_after_max_recoveries(db_url, tmp_path):
    """A poison workflow fails with RecoveryLimitError instead of crashing worker after worker."""
    poison = {"CRASH_AT": "step2", "MAX_RECOVERIES": "2"}
    code, _, err = run(db_url, "run", "wf-poison", "ten_steps", tmp_path, **poison)
    assert code == 17, err
    for _ in range(2):  # recovered twice, dies twice
        code, _, err = run(db_url, "recover", "wf-poison", "ten_steps", tmp_path, **poison)
        assert code == 17, err
    code, out, err = run(db_url, "recover", "wf-poison", "ten_steps", tmp_path, **poison)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["recovered"] == [] and result["status"] == "failed"
    assert "died 3 times; max_recoveries is 2" in result["error"]
    assert sum(c.startswith("step2") for c in calls(tmp_path)) == 3  # not a fourth time
    # Resume starts the count again; with the cause fixed (no crash), it finishes.
    app = Durable(db_url)
    try:
        app.resume("wf-poison")
    finally:
        app.close()
    result = recover(db_url, "wf-poison", "ten_steps", tmp_path)
    assert result["status"] == "succeeded"
