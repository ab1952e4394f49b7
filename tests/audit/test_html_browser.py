"""Open the HTML report in a real headless Chromium: read the rendered DOM, click a
filter, group, page, and take screenshots, at 1,000 findings.

The browser is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages, NUL-separated, commands on fd 3, replies on fd 4); no extra package.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from codemods.audit import AuditReport, audit
from codemods.audit.htmlreport import PAGE_SIZE, render_html
from codemods.audit.model import KIND_TITLES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (apt-get install -y chromium); the HTML browser test needs it",
)
LEGACY = Path(__file__).parent / "fixtures" / "legacy"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


class Browser:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        # bash (dash has no fds above 9) puts the pipe ends on the fds Chromium expects
        # (3: commands, 4: replies); the copies go first, so their numbers cannot collide
        redirect = (
            f'exec 98<&{to_chrome_r} 99>&{from_chrome_w}; exec "$0" "$@" 3<&98 4>&99 98<&- 99>&-'
        )
        self.proc = subprocess.Popen(
            [
                "bash",
                "-c",
                redirect,
                CHROMIUM,
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
            ],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.session: str | None = None

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, _, self._buffer = self._buffer.partition(b"\0")
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        raise TimeoutError(method)

    def open(self, url: str, width: int = 1280, height: int = 900) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("document.body && document.body.dataset.ready === '1'")

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.eval(f"!!({expression})"):
                return
            time.sleep(0.05)
        raise TimeoutError(expression)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) in the middle of the element."""
        box = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)  # fmt: skip

    def select(self, selector: str, value: str) -> None:
        self.eval(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)});"
            f" s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()"
        )

    def screenshot(self, path: Path, full_page: bool = False) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            w, h = self.eval("[document.documentElement.scrollWidth,"
                             " document.documentElement.scrollHeight]")  # fmt: skip
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()


def _page(tmp_path: Path, report: AuditReport) -> str:
    page = tmp_path / "audit.html"
    page.write_text(render_html(report), encoding="utf-8")
    return page.as_uri()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_chromium_renders_the_fixture_report(browser: Browser, tmp_path: Path) -> None:
    report = audit([LEGACY], jobs=1)
    browser.open(_page(tmp_path, report))
    ids = browser.eval("[...document.querySelectorAll('tr.finding')].map(r => r.dataset.id)")
    assert ids == [h.id for h in report.hotspots][:PAGE_SIZE]
    dom = browser.eval("document.documentElement.outerHTML")
    segments = set(re.findall(r'<rect [^>]*data-kind="([\w-]+)" data-risk="(\w+)"', dom))
    assert segments == {(h.kind.value, h.risk.value) for h in report.hotspots}
    for title in KIND_TITLES.values():
        assert title in dom
    # the summary comes first: cards and "start here" above the findings table
    order = browser.eval(
        "['summary', 'start', 'findings'].map(id => document.getElementById(id)"
        ".getBoundingClientRect().top)"
    )
    assert order == sorted(order)
    # a click on a row shows its code
    browser.click("tr.finding")
    code = browser.eval("document.querySelector('tr.detail pre').textContent")
    assert code == report.hotspots[0].excerpt
    shot = browser.screenshot(tmp_path / "fixture.png")
    assert len(shot) > 20_000


def test_a_thousand_findings_filter_group_and_stay_short(
    browser: Browser, tmp_path: Path, synthetic: Callable[[int], AuditReport]
) -> None:
    report = synthetic(1000)
    browser.open(_page(tmp_path, report))
    rows = "document.querySelectorAll('tr.finding').length"
    height = "document.documentElement.scrollHeight"
    assert browser.eval(rows) == PAGE_SIZE
    assert browser.eval(height) < 4_000  # one page of 50 compact rows, not 30,000 px
    full = browser.screenshot(tmp_path / "thousand.png", full_page=True)
    assert _png_size(full)[1] < 4_000 and len(full) > 50_000

    # click the "low" and "medium" chips off: only the high findings remain
    high = sum(1 for h in report.hotspots if h.risk.value == "high")
    browser.click("#risk-low")
    browser.click("#risk-medium")
    browser.wait_for(f"document.body.dataset.shown === '{high}'")
    risks = browser.eval("[...document.querySelectorAll('tr.finding')].map(r => r.dataset.risk)")
    assert set(risks) == {"high"} and len(risks) == min(PAGE_SIZE, high)
    count = browser.eval("document.getElementById('count').textContent")
    assert f"of {high} findings (1000 in all)" in count

    # the next page, then grouping by helper: collapsed groups, one row each
    browser.click("#next")
    browser.wait_for("document.getElementById('page').textContent.startsWith('page 2')")
    browser.select("#f-group", "group")
    groups = browser.eval("document.querySelectorAll('tr.group').length")
    helpers = {h.group for h in report.hotspots if h.risk.value == "high"}  # None: "(no helper)"
    assert groups == len(helpers) >= 2 and browser.eval(rows) == 0
    browser.click("tr.group")
    assert 0 < browser.eval(rows) <= PAGE_SIZE
    browser.select("#f-group", "dir")
    dirs = {h.path.rpartition("/")[0] for h in report.hotspots if h.risk.value == "high"}
    assert browser.eval("document.querySelectorAll('tr.group').length") == min(len(dirs), PAGE_SIZE)
    assert f"in {len(dirs)} groups" in browser.eval("document.getElementById('count').textContent")
    # by file: 1,000 files would be 1,000 group rows; they come 50 a page
    browser.click("#risk-low")
    browser.click("#risk-medium")
    browser.select("#f-group", "path")
    files = len({h.path for h in report.hotspots})
    assert files > PAGE_SIZE
    assert browser.eval("document.querySelectorAll('tr.group').length") == PAGE_SIZE
    assert browser.eval(height) < 4_000
    assert f"in {files} groups" in browser.eval("document.getElementById('count').textContent")
    shot = browser.screenshot(tmp_path / "grouped.png")
    assert _png_size(shot) == (1280, 900)

    # the text filter
    browser.select("#f-group", "")
    browser.eval(
        "(() => { const i = document.getElementById('f-text'); i.value = 'variant 996';"
        " i.dispatchEvent(new Event('input')); })()"
    )
    assert browser.eval("document.body.dataset.shown") == "1"
