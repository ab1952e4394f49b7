"""The benchmark harness runs end to end at tiny sizes, so it cannot rot.

No figure is checked (timings belong in bench/README.md, never in tests): only
that every measurement ran and produced a value.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_core.py"
TINY = [
    "--rounds",
    "1",
    "--n-one",
    "5",
    "--n-ten",
    "2",
    "--n-bytes",
    "3",
    "--n-ceiling",
    "20",
    "--n-queue",
    "20",
    "--n-enqueue",
    "50",
    "--idle-seconds",
    "0.2",
    "--settle",
    "0.1",
]
EVERY_METRIC = {
    "ten_steps_s",
    "one_wf_s",
    "cpu_us_per_step",
    "queue_wf_s",
    "enqueue_10k_s",
    "recovery_ms",
    "bytes_per_step",
    "idle_cpu_pct",
    "idle_rss_mb",
    "busy_rss_mb",
}


def _run(tmp_path: Path, *extra: str) -> dict[str, dict[str, list[float]]]:
    out = tmp_path / "samples.json"
    md = tmp_path / "table.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), *TINY, "--json", str(out), "--markdown", str(md), *extra],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "commit ceiling" in proc.stdout
    assert "| metric |" in md.read_text()
    results: dict[str, dict[str, list[float]]] = json.loads(out.read_text())["results"]
    return results


def test_harness_ours_sqlite_and_postgres(tmp_path: Path, postgres_admin_url: str) -> None:
    pytest.importorskip("psutil")
    results = _run(tmp_path, "--no-dbos", "--postgres", postgres_admin_url)
    assert results["ceiling"]["ceiling"] and results["SQLite ceiling"]["ceiling"]
    assert set(results["PG ours"]) == EVERY_METRIC
    assert set(results["SQLite ours"]) == EVERY_METRIC
    assert "PG DBOS" not in results


@pytest.mark.skipif(
    importlib.util.find_spec("dbos") is None,
    reason="DBOS is not installed (pip install -e '.[bench]')",
)
def test_harness_with_dbos(tmp_path: Path, postgres_admin_url: str) -> None:
    pytest.importorskip("psutil")
    results = _run(tmp_path, "--no-sqlite", "--postgres", postgres_admin_url)
    assert set(results["PG DBOS"]) == EVERY_METRIC
    assert set(results["PG ours"]) == EVERY_METRIC
