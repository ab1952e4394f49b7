"""`durable audit` end to end through click, on real files: formats, exit codes,
test exclusion, suppression comments, [tool.durable.audit] and the baseline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from codemods.audit import run_audit
from codemods.audit.cli import audit
from toolkit.cli import main

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
REPO = Path(__file__).resolve().parents[2]

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

HIGH = """import time

import requests


def charge(url, body):{comment}
    for attempt in range(5):{inline}
        try:
            return requests.post(url, json=body)
        except requests.Timeout:
            time.sleep(2 ** attempt)
    raise RuntimeError(url)
"""


def _high(name: str = "charge", comment: str = "", inline: str = "") -> str:
    return HIGH.format(comment=comment, inline=inline).replace("charge", name)


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["audit", *args], catch_exceptions=False)


def _json(*args: str) -> dict:  # type: ignore[type-arg]
    result = _invoke(*args, "--format", "json", "--no-progress")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A repository with one high-risk retry loop in src/ and one in tests/."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "src" / "shop").mkdir(parents=True)
    (tmp_path / "src" / "shop" / "billing.py").write_text(_high())
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_billing.py").write_text(_high("charge_in_test"))
    return tmp_path


def test_terminal_report_by_default_is_one_line_per_finding() -> None:
    result = _invoke(str(LEGACY), "--no-progress")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(os.path.relpath(LEGACY) + "/")
    assert ": high " in lines[0] and lines[-1].startswith("Found ")


def test_fail_on_thresholds(tmp_path: Path) -> None:
    (tmp_path / "low.py").write_text(LOW_ONLY)
    assert _invoke(str(tmp_path), "--fail-on", "low").exit_code == 1
    assert _invoke(str(tmp_path), "--fail-on", "medium").exit_code == 0
    assert _invoke(str(tmp_path), "--fail-on", "high").exit_code == 0
    assert _invoke(str(LEGACY), "--fail-on", "high").exit_code == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert _invoke(str(tmp_path), "--select", "retry-loops").exit_code == 2
    assert _invoke(str(tmp_path), "--write-baseline").exit_code == 2
    missing = _invoke(str(tmp_path), "--baseline", str(tmp_path / "none.json"))
    assert missing.exit_code == 2 and "--write-baseline" in missing.output


def test_empty_folder_passes_every_threshold(tmp_path: Path) -> None:
    result = _invoke(str(tmp_path), "--fail-on", "low")
    assert result.exit_code == 0
    assert "Found 0 hotspots" in result.output


def test_every_format_writes_a_file(tmp_path: Path) -> None:
    for fmt, check in [
        ("json", lambda t: json.loads(t)["summary"]["hotspots"] > 40),
        ("sarif", lambda t: json.loads(t)["version"] == "2.1.0"),
        ("markdown", lambda t: t.startswith("## durable audit")),
        ("html", lambda t: t.startswith("<!DOCTYPE html>")),
        ("terminal", lambda t: t.splitlines()[-1].startswith("Found ")),
        ("github", lambda t: t.startswith("::error file=tests/audit/fixtures/legacy/")),
    ]:
        out = tmp_path / f"report.{fmt}"
        # the whole fixture once (json); a smaller part of it for the other formats
        scanned = LEGACY if fmt == "json" else LEGACY / "app" / "sweepers.py"
        result = _invoke(str(scanned), "--format", fmt, "-o", str(out), "--no-progress")
        assert result.exit_code == 0, result.output
        assert check(out.read_text()), fmt


def test_json_to_stdout_is_pure_json() -> None:
    assert _json(str(LEGACY))["schema_version"].startswith("2.")


def test_exclude_skips_matching_paths() -> None:
    paths = {h["path"] for h in _json(str(LEGACY), "--exclude", "app")["hotspots"]}
    assert paths and not any("/app/" in p for p in paths)


def test_tests_are_excluded_by_default(project: Path) -> None:
    paths = [h["path"] for h in _json(str(project))["hotspots"]]
    assert paths == ["src/shop/billing.py"]
    paths = [h["path"] for h in _json(str(project), "--include-tests")["hotspots"]]
    assert sorted(paths) == ["src/shop/billing.py", "tests/test_billing.py"]


def test_suppression_comments(project: Path) -> None:
    billing = project / "src" / "shop" / "billing.py"
    billing.write_text(_high(inline="  # durable: ignore[retry-loop]"))
    doc = _json(str(project))
    assert doc["hotspots"] == [] and doc["summary"]["suppressed"] == 1
    billing.write_text(_high(inline="  # durable: ignore[status-table]"))  # another kind
    assert len(_json(str(project))["hotspots"]) == 1
    billing.write_text(_high(comment="\n    # durable: ignore"))  # bare, on the line above
    assert _json(str(project))["hotspots"] == []


def test_pyproject_configuration_is_found_upward(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "shop"\n\n'
        "[tool.durable.audit]\n"
        'exclude = ["src/shop/legacy"]\n'
        'min-risk = "medium"\n'
        "include-tests = true\n"
    )
    legacy = project / "src" / "shop" / "legacy"
    legacy.mkdir()
    (legacy / "old.py").write_text(_high("old_charge"))
    (project / "src" / "shop" / "reads.py").write_text(LOW_ONLY)
    doc = _json(str(project / "src"))
    assert doc["config_file"] == str(project / "pyproject.toml")
    assert sorted(h["path"] for h in doc["hotspots"]) == ["src/shop/billing.py"]
    assert sorted(h["path"] for h in _json(str(project))["hotspots"]) == [
        "src/shop/billing.py",
        "tests/test_billing.py",
    ]
    assert len(_json(str(project), "--no-config")["hotspots"]) == 3  # billing, old, reads
    assert _json(str(project), "--select", "status-table")["hotspots"] == []
    (project / "pyproject.toml").write_text('[tool.durable.audit]\nminimum = "high"\n')
    bad = _invoke(str(project))
    assert bad.exit_code == 2 and "unknown key 'minimum'" in bad.output


def test_baseline_round_trip_fails_only_on_new_findings(project: Path) -> None:
    baseline = project / "audit-baseline.json"
    wrote = _invoke(str(project), "--baseline", str(baseline), "--write-baseline")
    assert wrote.exit_code == 0 and "1 findings" in wrote.output
    assert _invoke(str(project), "--baseline", str(baseline), "--fail-on", "low").exit_code == 0
    # unrelated edits move the known site: still known
    billing = project / "src" / "shop" / "billing.py"
    billing.write_text('"""Billing."""\n\n\n' + billing.read_text())
    assert _invoke(str(project), "--baseline", str(baseline), "--fail-on", "low").exit_code == 0
    # a new hotspot fails, and it is the only one reported
    (project / "src" / "shop" / "refunds.py").write_text(_high("refund"))
    result = _invoke(str(project), "--baseline", str(baseline), "--fail-on", "high")
    assert result.exit_code == 1
    [line] = [ln for ln in result.stdout.splitlines() if ": high " in ln]
    assert "refunds.py:7:5: high retry-loop" in line
    assert "1 in the baseline not shown" in result.stdout


def test_progress_bar_runs(tmp_path: Path) -> None:
    (tmp_path / "low.py").write_text(LOW_ONLY)
    result = _invoke(str(tmp_path), "--progress")
    assert result.exit_code == 0


def test_parallel_scan_gives_the_same_report(tmp_path: Path) -> None:
    # enough files to use the process pool (more than two chunks of 48): the legacy
    # fixture once, and 100 small modules, every tenth with a retry loop, so that
    # hotspots come from several chunks and must be merged back in order
    shutil.copytree(LEGACY, tmp_path / "legacy")
    small = tmp_path / "small"
    small.mkdir()
    for i in range(100):
        text = LOW_ONLY if i % 10 == 0 else f"def f{i}(x):\n    return x + {i}\n"
        (small / f"m{i:03d}.py").write_text(text)
    serial = run_audit([tmp_path], jobs=1)
    parallel = run_audit([tmp_path], jobs=2)
    assert serial.files_scanned > 2 * 48
    assert [h.to_dict() for h in parallel.hotspots] == [h.to_dict() for h in serial.hotspots]
    assert parallel.errors == serial.errors
    one_loop = run_audit([small / "m000.py"], jobs=1).hotspots
    assert len(one_loop) >= 1
    assert len(serial.hotspots) == len(run_audit([LEGACY], jobs=1).hotspots) + 10 * len(one_loop)


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
    text = (REPO / "docs" / "audit.md").read_text()
    for param in audit.params:
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                assert f"`{opt}" in text, f"docs/audit.md does not document {opt}"


def test_kind_and_risk_options(project: Path) -> None:
    (project / "src" / "shop" / "reads.py").write_text(LOW_ONLY)
    assert len(_json(str(project))["hotspots"]) == 2
    assert [h["risk"] for h in _json(str(project), "--min-risk", "high")["hotspots"]] == ["high"]
    assert _json(str(project), "--ignore", "retry-loop")["hotspots"] == []
    assert len(_json(str(project), "--select", "retry-loop,status-table")["hotspots"]) == 2


def test_config_option_names_the_file(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("conf") / "pyproject.toml"
    elsewhere.write_text('[tool.durable.audit]\nignore = ["retry-loop"]\n')
    assert _json(str(project), "--config", str(elsewhere))["hotspots"] == []
    assert _json(str(project), "--config", str(elsewhere))["config_file"] == str(elsewhere)


def test_markdown_limit_and_details_url() -> None:
    result = _invoke(str(LEGACY), "--format", "markdown", "--limit", "3", "--no-progress",
                     "--details-url", "https://ci.example/audit.html")  # fmt: skip
    assert result.exit_code == 0
    assert "### Top 3 findings" in result.stdout
    assert "more findings** in [the full report](https://ci.example/audit.html)" in result.stdout


def test_markdown_links_locations_inside_github_actions() -> None:
    env = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_SHA": "0123abc",
    }
    result = CliRunner(env=env).invoke(
        main, ["audit", str(LEGACY), "--format", "markdown", "--no-progress"]
    )
    assert result.exit_code == 0
    assert (
        "(https://github.com/acme/shop/blob/0123abc/tests/audit/fixtures/legacy/app/"
        in result.stdout
    )
    assert re.search(r"\.py#L\d+-L\d+\)", result.stdout)
