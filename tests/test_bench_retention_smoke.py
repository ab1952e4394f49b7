"""The retention and telemetry benchmarks run end to end at tiny sizes, so they cannot rot.

No figure is checked (they belong in bench/README.md): only that every part ran
and printed its table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.postgres
def test_bench_retention_runs(postgres_admin_url: str, tmp_path: Path) -> None:
    out = tmp_path / "samples.json"
    tiny = "--finished 500 --rounds 1 --n-one 5 --n-ten 2 --n-claims 5 --n-queue 20"
    steady = "--duration 4 --retention 1 --prune-interval 0.5 --sample-every 1"
    steady += " --prune --probe-seconds 1"
    cmd = [sys.executable, str(BENCH / "bench_retention.py"), "--postgres", postgres_admin_url]
    proc = subprocess.run(
        [*cmd, *tiny.split(), *steady.split(), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = json.loads(out.read_text())
    for which in ("empty", "full"):
        assert set(samples["part1"][which]) >= {
            "one_wf_s",
            "ten_steps_s",
            "queue_wf_s",
            "claim_bench_p50_ms",
            "claim_limited_p95_ms",
        }
    assert len(samples["part2"]) >= 2
    assert "the worker pruned" in proc.stdout
    assert samples["part3"]["deleted"] > 0  # 29 of the 30 days of finished workflows
    assert samples["part3"]["during"]["claim_limited_n"] > 0
    assert len(samples["part1_rounds"]) == 1 and "within 10%" in proc.stdout


def test_bench_retention_sqlite_runs(tmp_path: Path) -> None:
    """Parts 1 and 3 on SQLite (the Pruner's batches), no server needed."""
    out = tmp_path / "samples.json"
    tiny = "--finished 300 --rounds 2 --n-one 3 --n-ten 1 --n-claims 3"
    prune = "--skip-part2 --prune --prune-with pruner --probe-seconds 1"
    cmd = [sys.executable, str(BENCH / "bench_retention.py"), "--backend", "sqlite"]
    proc = subprocess.run(
        [*cmd, *tiny.split(), *prune.split(), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = json.loads(out.read_text())
    assert "queue_wf_s" not in samples["part1"]["full"]  # one worker process per file
    assert len(samples["part1"]["full"]["claim_limited_p50_ms"]) == 2
    assert samples["part3"]["with"] == "pruner" and samples["part3"]["deleted"] > 0


@pytest.mark.postgres
def test_bench_telemetry_runs(postgres_admin_url: str, tmp_path: Path) -> None:
    out = tmp_path / "samples.json"
    cmd = [sys.executable, str(BENCH / "bench_telemetry.py"), "--postgres", postgres_admin_url]
    sizes = ["--baseline", "HEAD", "--rounds", "1", "--n-one", "5", "--n-ten", "2"]
    proc = subprocess.run(
        [*cmd, *sizes, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"baseline", "off", "on"}
