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
