"""The text pre-filter: what it lets through to the parser and what it skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from codemods.audit import run_audit
from codemods.audit.scanner import worth_parsing

PARSED = {
    "no-sleep-range-try": "for i in range(3):\n    try:\n        return f()\n"
    "    except ConnectionError:\n        pass\n",
    "counter-name": "while tries < 3:\n    tries += 1\n",
    "tenacity": "from tenacity import retry\n",
    "job-table": "class Job(Base):\n    status = Column(String)\n    attempts = Column(Integer)\n",
    "dead-letter": "args = {'x-dead-letter-exchange': 'dlx'}\n",
    "failed-model": "FailedTask.objects.create(task_id=t)\n",
    "cron": "app.conf.beat_schedule = {}  # cron\n",
}
SKIPPED = {
    "plain": "def add(a, b):\n    return a + b\n",
    "geometry": "entries = geometry.symmetries()  # attempts to simplify\n",
    "statement": "stmt = select(t).where(t.c.id == 1)  # SQL statement state\n",
    "order-status": "order.status = 'paid'\n",
}


@pytest.mark.parametrize("name", sorted(PARSED))
def test_files_that_may_hold_a_hotspot_are_parsed(name: str) -> None:
    assert worth_parsing(PARSED[name].encode())


@pytest.mark.parametrize("name", sorted(SKIPPED))
def test_files_that_cannot_hold_one_are_skipped(name: str) -> None:
    assert not worth_parsing(SKIPPED[name].encode())


def test_a_skipped_file_with_a_syntax_error_is_not_reported(tmp_path: Path) -> None:
    # the pre-filter runs before the parser: a broken file with no keyword is not parsed
    (tmp_path / "broken.py").write_text("def f(:\n    return 1\n")
    (tmp_path / "broken_retry.py").write_text("import time\ndef f(:\n    time.sleep(1)\n")
    report = run_audit([tmp_path], jobs=1)
    assert [e.path for e in report.errors] == ["broken_retry.py"]
    assert report.files_scanned == 2 and report.files_parsed == 0
