"""docs/audit.md's examples run, in order, in a fresh repository, and print what it shows.

* a ```python or ```toml block whose first line is ``# PATH`` is written to PATH;
* every ``durable ...`` line of a ```sh block, and every ``run: durable ...`` of a
  ```yaml block, runs and exits 0, or N when its comment says ``exits N``;
* a ```console block's ``$ durable ...`` lines run and print the lines that follow
  (a line ending in ``...`` matches any line starting with the text before it; a
  line that is only ``...`` matches any number of lines).

(The ```python block marked ``<!-- test -->`` is run by tests/test_docs.py.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
FENCE = re.compile(r"^```(\w*)\s*$")


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group(1):
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            out.append((m.group(1), lines[i + 1 : j]))
            i = j
        i += 1
    return out


def _run(command: str) -> tuple[int, str]:
    args = shlex.split(command, comments=True)
    assert args[:2] == ["durable", "audit"], command
    result = CliRunner().invoke(main, args[1:], catch_exceptions=False)
    return result.exit_code, result.stdout


def _matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    head = expected[0]
    if head == "...":
        return any(_matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    if not actual:
        return False
    ok = actual[0].startswith(head[:-3]) if head.endswith("...") else actual[0] == head
    return ok and _matches(expected[1:], actual[1:])


def test_every_example_of_docs_audit_md(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    ran = 0
    for lang, body in _blocks(DOC.read_text(encoding="utf-8")):
        if lang in ("python", "toml") and body and re.match(r"# [\w./-]+\.(py|toml)$", body[0]):
            path = tmp_path / body[0][2:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(body[1:]) + "\n")
        elif lang in ("sh", "yaml"):
            for line in body:
                command = re.sub(r"^\s*-?\s*run:\s*", "", line) if lang == "yaml" else line
                if not command.startswith("durable "):
                    continue
                want = re.search(r"#.*\bexits (\d)", command)
                code, out = _run(command)
                assert code == (int(want.group(1)) if want else 0), f"{command}\n{out}"
                ran += 1
        elif lang == "console":
            commands = [i for i, line in enumerate(body) if line.startswith("$ ")]
            for n, i in enumerate(commands):
                end = commands[n + 1] if n + 1 < len(commands) else len(body)
                code, out = _run(body[i][2:])
                assert code in (0, 1), body[i]
                assert _matches(body[i + 1 : end], out.splitlines()), f"{body[i]}\n{out}"
                ran += 1
    assert ran >= 12
    assert (tmp_path / "audit-baseline.json").is_file()
