"""`durable audit` end to end through click, on real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from codemods.audit import run_audit
from codemods.audit.cli import audit
from toolkit.cli import main

LEGACY = Path(__file__).parent / "fixtures" / "legacy"

LOW_ONLY = """import time

import requests


def fetch(url):
    for attempt in range(3):
        try:
            return requests.get(url, timeout=5)
        except requests.Timeout:
            time.sleep(2 ** attempt)
    raise RuntimeError(url)
"""


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["audit", *args], catch_exceptions=False)


def test_terminal_report_by_default() -> None:
    result = _invoke(str(LEGACY), "--no-progress")
    assert result.exit_code == 0
    assert "hotspots" in result.output and "retry-loop" in result.output


def test_fail_on_thresholds(tmp_path: Path) -> None:
    (tmp_path / "low.py").write_text(LOW_ONLY)
    assert _invoke(str(tmp_path), "--fail-on", "low").exit_code == 1
    assert _invoke(str(tmp_path), "--fail-on", "medium").exit_code == 0
    assert _invoke(str(tmp_path), "--fail-on", "high").exit_code == 0
    assert _invoke(str(LEGACY), "--fail-on", "high").exit_code == 1


def test_empty_folder_passes_every_threshold(tmp_path: Path) -> None:
    result = _invoke(str(tmp_path), "--fail-on", "low")
    assert result.exit_code == 0
    assert "0 hotspots" in result.output


def test_every_format_writes_a_file(tmp_path: Path, expected: set[tuple]) -> None:  # type: ignore[type-arg]
    for fmt, check in [
        ("json", lambda t: json.loads(t)["summary"]["hotspots"] == len(expected)),
        ("sarif", lambda t: json.loads(t)["version"] == "2.1.0"),
        ("markdown", lambda t: t.startswith("# durable audit")),
        ("html", lambda t: t.startswith("<!DOCTYPE html>")),
        ("terminal", lambda t: "hotspots" in t),
    ]:
        out = tmp_path / f"report.{fmt}"
        result = _invoke(str(LEGACY), "--format", fmt, "-o", str(out), "--no-progress")
        assert result.exit_code == 0, result.output
        assert check(out.read_text()), fmt


def test_json_to_stdout_is_pure_json() -> None:
    result = _invoke(str(LEGACY), "--format", "json", "--no-progress")
    assert json.loads(result.output)["schema_version"].startswith("1.")


def test_exclude_skips_matching_paths() -> None:
    result = _invoke(str(LEGACY), "--format", "json", "--exclude", "app", "--no-progress")
    paths = {h["path"] for h in json.loads(result.output)["hotspots"]}
    assert paths and not any(p.startswith("app/") for p in paths)


def test_progress_bar_runs(tmp_path: Path) -> None:
    (tmp_path / "low.py").write_text(LOW_ONLY)
    result = _invoke(str(tmp_path), "--progress")
    assert result.exit_code == 0


def test_parallel_scan_gives_the_same_report(tmp_path: Path, expected: set[tuple]) -> None:  # type: ignore[type-arg]
    # enough files to use the process pool (more than two chunks)
    for i in range(15):
        shutil.copytree(LEGACY, tmp_path / f"copy{i:02d}")
    serial = run_audit([tmp_path], jobs=1)
    parallel = run_audit([tmp_path], jobs=2)
    assert serial.files_scanned > 200
    assert [h.to_dict() for h in parallel.hotspots] == [h.to_dict() for h in serial.hotspots]
    assert parallel.errors == serial.errors
    assert len(serial.hotspots) == 15 * len(expected)


def test_audit_does_not_import_adapters() -> None:
    code = (
        "import sys\n"
        "from codemods.audit.cli import audit\n"
        "from codemods.audit import run_audit\n"
        f"run_audit([{str(LEGACY)!r}], jobs=1)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'adapters']\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docs_cover_every_option() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text()
    for param in audit.params:
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                assert f"`{opt}" in text, f"docs/audit.md does not document {opt}"
