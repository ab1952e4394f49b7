"""The documentation's examples run and print what the documentation says.

Convention (in ``docs/*.md``):

* A fenced ```` ```python ```` block directly preceded by the line ``<!-- test -->``
  is *runnable*: it is written to ``example.py`` in a fresh temporary directory and
  run there with ``python example.py`` in its own process, with
  ``DURABLE_DATABASE_URL`` pointing to ``state.db`` in that directory. It must
  exit with status 0.
* If the runnable block is followed (blank lines allowed) by the line
  ``<!-- output -->`` and a fenced block, the example's standard output must be
  exactly that block's text (trailing spaces and blank lines ignored).
* Blocks without the marker are illustrations and are not run.

The other tests keep the reference pages complete: every public name of
:mod:`toolkit` has a section in ``docs/api.md`` and every ``durable`` command
and option is in ``docs/cli.md``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

import toolkit
from toolkit.cli import main as cli_main

DOCS = Path(__file__).resolve().parent.parent / "docs"
TEST_MARK = "<!-- test -->"
OUTPUT_MARK = "<!-- output -->"
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    expected: str | None

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def _fenced(lines: list[str], start: int) -> tuple[str, str, int] | None:
    """The (language, body, index after the closing fence) of a fence opening at ``start``."""
    match = FENCE.match(lines[start])
    if match is None:
        return None
    fence, language = match.group(1), match.group(2)
    body: list[str] = []
    for i in range(start + 1, len(lines)):
        if lines[i].strip() == fence:
            return language, "\n".join(body) + "\n", i + 1
        body.append(lines[i])
    raise ValueError(f"unclosed code fence at line {start + 1}")


def _next_nonblank(lines: list[str], start: int) -> int:
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def extract(path: Path) -> list[Example]:
    """The runnable examples of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    examples = []
    for i, line in enumerate(lines):
        if line.strip() != TEST_MARK:
            continue
        start = _next_nonblank(lines, i + 1)
        block = _fenced(lines, start) if start < len(lines) else None
        if block is None or block[0] != "python":
            raise ValueError(f"{path.name}:{i + 1}: {TEST_MARK} must precede a python block")
        _, code, after = block
        expected = None
        j = _next_nonblank(lines, after)
        if j < len(lines) and lines[j].strip() == OUTPUT_MARK:
            k = _next_nonblank(lines, j + 1)
            output = _fenced(lines, k) if k < len(lines) else None
            if output is None:
                raise ValueError(f"{path.name}:{j + 1}: {OUTPUT_MARK} must precede a code block")
            expected = output[1]
        examples.append(Example(path, start + 1, code, expected))
    return examples


def _all_examples() -> list[Example]:
    return [ex for path in sorted(DOCS.glob("*.md")) for ex in extract(path)]


EXAMPLES = _all_examples()


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


@pytest.mark.parametrize("example", EXAMPLES, ids=[ex.id for ex in EXAMPLES])
def test_example_runs(example: Example, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(example.code, encoding="utf-8")
    env = {
        **os.environ,
        "DURABLE_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "PYTHONUNBUFFERED": "1",
    }
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"{example.id} exited with {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    if example.expected is not None:
        assert _normalise(result.stdout) == _normalise(example.expected), (
            f"{example.id} printed something else than the documented output\n"
            f"--- stderr\n{result.stderr}"
        )


def test_most_concept_examples_are_runnable() -> None:
    by_file: dict[str, int] = {}
    for ex in EXAMPLES:
        by_file[ex.path.name] = by_file.get(ex.path.name, 0) + 1
    assert by_file.get("concepts.md", 0) >= 12, by_file
    assert by_file.get("guarantees.md", 0) >= 2, by_file


def test_extractor_reads_markers_and_outputs(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\nprint('not run')\n```\n\n"
        "<!-- test -->\n```python\nprint('hi')\n```\n\n<!-- output -->\n\n```text\nhi\n```\n\n"
        "<!-- test -->\n````python\nprint('```')\n````\n",
        encoding="utf-8",
    )
    first, second = extract(page)
    assert (first.line, first.code, first.expected) == (8, "print('hi')\n", "hi\n")
    assert (second.code, second.expected) == ("print('```')\n", None)


def _section_names(text: str) -> set[str]:
    """Names in the ``### `name` `` headings of a reference page."""
    return set(re.findall(r"^#{2,4} `([A-Za-z_][\w.]*)", text, flags=re.MULTILINE))


def test_api_page_covers_every_public_name() -> None:
    documented = _section_names((DOCS / "api.md").read_text(encoding="utf-8"))
    missing = [name for name in toolkit.__all__ if name not in documented]
    assert not missing, f"docs/api.md has no section for {missing}"


Commands = list[tuple[tuple[str, ...], click.Command]]


def _commands(group: click.Group, prefix: tuple[str, ...]) -> Commands:
    found: Commands = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        if name in ("audit", "codemod"):  # documented in docs/audit.md and docs/codemods.md
            continue
        command = group.get_command(ctx, name)
        assert command is not None
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
        else:
            found.append((path, command))
    return found


def test_cli_page_covers_every_command_and_option() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = _commands(cli_main, ("durable",))
    assert commands
    for path, command in commands:
        assert f"## `{' '.join(path)}" in text, f"docs/cli.md has no section for {path}"
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    if opt != "--help":
                        assert f"`{opt}" in text, f"{' '.join(path)} {opt} is not in docs/cli.md"
