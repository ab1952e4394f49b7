"""Open the HTML report in a real headless Chromium and read the rendered DOM."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from codemods.audit import AuditReport
from codemods.audit.model import KIND_TITLES
from codemods.audit.reports import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (apt-get install -y chromium); the HTML browser test needs it",
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_chromium_renders_every_hotspot(legacy_report: AuditReport, tmp_path: Path) -> None:
    page = tmp_path / "audit.html"
    page.write_text(render_html(legacy_report), encoding="utf-8")
    proc = _chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = proc.stdout
    assert proc.returncode == 0 and "<html" in dom, proc.stderr[-2000:]
    articles = re.findall(r'<article class="hotspot (high|medium|low)" id="h-([0-9a-f]{16})"', dom)
    assert [hid for _, hid in articles] == [h.id for h in legacy_report.hotspots]
    assert [risk for risk, _ in articles] == [h.risk.value for h in legacy_report.hotspots]
    # the chart: one bar segment per (kind, risk) pair that has hotspots
    segments = set(re.findall(r'<rect [^>]*data-kind="([\w-]+)" data-risk="(\w+)"', dom))
    assert segments == {(h.kind.value, h.risk.value) for h in legacy_report.hotspots}
    for title in KIND_TITLES.values():
        assert title in dom
    assert "requests.post(" in dom  # an excerpt made it to the page


def test_chromium_screenshot_is_not_blank(legacy_report: AuditReport, tmp_path: Path) -> None:
    page = tmp_path / "audit.html"
    page.write_text(render_html(legacy_report), encoding="utf-8")
    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # text, cards and the chart, not an empty page
