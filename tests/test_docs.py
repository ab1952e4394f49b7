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

Shell sessions (in the pages of ``SESSION_PAGES``: ``docs/cli.md`` and
``docs/migrating.md``): every fenced block whose first line starts with ``$ `` is
run, command by command, in one fresh directory per page (what a command leaves
there, the next one finds), and what each command prints (stdout and stderr) must
be the lines shown after it:

* ``<!-- file: NAME -->`` before a fenced block writes the block to ``NAME`` in
  that directory when the page reaches it (the example programs);
* ``<!-- run: COMMAND -->`` runs a command there without showing it (setup);
* ``<!-- not run: REASON -->`` before a session block skips it (counted, and the
  reason is required); ``[...]`` on a line of its own in an output stands for any
  lines, ``<n>`` in a line for any number and ``<any>`` for any text (what varies
  from run to run: timing, random failures);
* ``<!-- session port: 8765 -->`` replaces that port in the commands by a free one
  (and back in what they print), ``<!-- session env: NAME=VALUE -->`` exports a
  variable (``{port}`` in it: that free port), so two runs never meet;
* ``<!-- session start: repo -->`` starts the page's shell at the repository's root;
  ``<!-- session dir: /tmp/shop -->`` makes that path the fresh directory; ``cd``
  and ``export`` carry over from command to command, and background jobs (``&``)
  are killed when the page ends;
* before comparing, timestamps, owner ids, process ids, UUIDs, durations,
  traceback line numbers and the directory are masked, and runs of spaces (and a
  table's rule) are one, so a table's layout may differ with the masked values'
  lengths.

``DURABLE_DOCS_UPDATE=1`` rewrites the outputs in the pages with what the
commands print (outputs with ``[...]``, ``<n>`` or ``<any>`` are kept): review the diff.

The other tests keep the reference pages complete: every public name of
:mod:`toolkit` has a section in ``docs/api.md`` and every ``durable`` command
and option is in ``docs/cli.md``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
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


# -- shell sessions -----------------------------------------------------------------------------

SESSION_PAGES = ("cli.md", "migrating.md")
FILE_MARK = re.compile(r"^<!-- file: (\S+) -->$")
RUN_MARK = re.compile(r"^<!-- run: (.+) -->$")
NOT_RUN_MARK = re.compile(r"^<!-- not run: (.+) -->$")
ELLIPSIS = "[...]"
DOC_DIR = "/tmp/cli"
"""The directory the pages' outputs were produced in (tracebacks show it)."""


@dataclass
class Command:
    line: int  # 1-based line of the command in the page
    text: str  # the command, continuation lines joined
    expected: list[str]
    block: int  # index of its block in the page's session


@dataclass
class Action:
    kind: str  # "file", "run", "commands", "skipped"
    line: int
    text: str = ""
    name: str = ""
    commands: list[Command] | None = None
    span: tuple[int, int] = (0, 0)  # the block's body lines (0-based, end exclusive)


def session(path: Path) -> list[Action]:
    """The setup, files and commands of a page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    actions: list[Action] = []
    pending_file: str | None = None
    skip: str | None = None
    i = 0
    block = 0
    while i < len(lines):
        line = lines[i].strip()
        if m := FILE_MARK.match(line):
            pending_file = m.group(1)
        elif m := RUN_MARK.match(line):
            actions.append(Action("run", i + 1, text=m.group(1)))
        elif m := NOT_RUN_MARK.match(line):
            skip = m.group(1).strip()
        elif FENCE.match(lines[i]):
            _, body, after = _fenced(lines, i)  # type: ignore[misc]
            body_lines = body.splitlines()
            if pending_file is not None:
                actions.append(Action("file", i + 1, text=body, name=pending_file))
            elif body_lines and body_lines[0].startswith("$ "):
                if skip is not None:
                    actions.append(Action("skipped", i + 1, text=skip))
                else:
                    commands = _commands_of(body_lines, i + 2, block)
                    actions.append(
                        Action("commands", i + 1, commands=commands, span=(i + 1, after - 1))
                    )
                    block += 1
            pending_file, skip = None, None
            i = after
            continue
        elif line and not line.startswith("<!--"):
            pending_file = None if not line else pending_file
        i += 1
    return actions


def _commands_of(body: list[str], first_line: int, block: int) -> list[Command]:
    commands: list[Command] = []
    i = 0
    while i < len(body):
        if not body[i].startswith("$ "):
            raise ValueError(f"line {first_line + i}: output before any command")
        start = i
        text = body[i][2:]
        while text.endswith("\\") and i + 1 < len(body):
            i += 1
            text = text[:-1] + " " + body[i].strip()
        i += 1
        expected = []
        while i < len(body) and not body[i].startswith("$ "):
            expected.append(body[i])
            i += 1
        commands.append(Command(first_line + start, text, expected, block))
    return commands


def _mask(text: str, workdir: str, doc_dir: str = DOC_DIR) -> str:
    import socket

    text = text.replace(workdir, doc_dir).replace(socket.gethostname(), "vm")
    rules = [
        (r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:[+-]\d\d:\d\d|Z)?", "<time>"),
        (r"\b\d{4}-\d\d-\d\d\b", "<date>"),
        (r"\b\d\d:\d\d:\d\d\b", "<clock>"),
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>"),
        (r"\bvm:\d+:[0-9a-f]+\b", "<owner>"),
        (r"\bvm(\s+)\d+\b", "vm <pid>"),
        (r"\b(process|pid) \d+\b", r"\1 <pid>"),
        (r'"pid": \d+', '"pid": <pid>'),
        (r"\b\d+\.\d+s\b", "<seconds>"),
        (r"\bline \d+\b", "line <line>"),
        (r"\b[0-9a-f]{20}\b", "<digest>"),
    ]
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return text


def _comparable(lines: list[str], workdir: str, doc_dir: str = DOC_DIR) -> list[str]:
    masked = _mask("\n".join(lines), workdir, doc_dir).splitlines()
    out = [re.sub(r"─+", "─", re.sub(r"\s{2,}", " ", line.rstrip())) for line in masked]
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def _matches(expected: list[str], actual: list[str]) -> bool:
    parts = []
    for line in expected:
        if line.strip() == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pattern = re.escape(line).replace("<n>", r"\d+").replace("<any>", r"[^\n]*")
            parts.append(pattern + r"\n")
    return re.fullmatch("".join(parts), "".join(x + "\n" for x in actual)) is not None


def _session_env(workdir: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        "DURABLE_DATABASE_URL": "sqlite:///.durable/state.db",
        "COLUMNS": "100",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }


SETTING_MARK = re.compile(r"^<!-- session (start|dir|port|env): (\S+) -->$")
REPO = DOCS.parent


def settings(path: Path) -> dict[str, str]:
    """``<!-- session start: repo -->`` (the first command runs at the repository's root,
    not in the fresh directory) and ``<!-- session dir: /tmp/shop -->`` (that path in
    the page's commands is the fresh directory, and outputs show it so)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := SETTING_MARK.match(line.strip()):
            found[m.group(1)] = m.group(2)
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Shell:
    """One shell session: each command runs in its own ``bash``, in the directory and
    with the exported variables the previous one left (``cd`` and ``export`` carry
    over); background jobs (``&``) run on and are killed at the end."""

    def __init__(
        self, workdir: Path, start: Path, doc_dir: str | None, setting: dict[str, str] | None = None
    ) -> None:
        self.workdir, self.doc_dir = workdir, doc_dir
        self.state = workdir.parent / "shell-state.sh"
        lines = [f"cd {_quote(str(start))}"]
        setting = setting or {}
        self.port = (setting["port"], str(_free_port())) if "port" in setting else None
        if "env" in setting:  # NAME=VALUE, {port}: the free port standing for the page's
            name, _, value = setting["env"].partition("=")
            port = self.port[1] if self.port else ""
            lines.append(f"export {name}={_quote(value.replace('{port}', port))}")
        self.state.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.groups: list[int] = []

    def run(self, command: str, lines: int = 0) -> str:
        """Run ``command``; a background job is given 1.5 s, and up to 60 s more until it
        has printed ``lines`` lines (the page's, ``[...]`` aside), since a loaded machine
        can be slow to start it."""
        if self.doc_dir:
            command = command.replace(self.doc_dir, str(self.workdir))
        if self.port:  # the page's port is a free one: two runs at once never meet
            command = command.replace(self.port[0], self.port[1])
        script = (
            f". {_quote(str(self.state))}\n{command}\n"
            f'{{ export -p; printf "cd %q\\n" "$PWD"; }} > {_quote(str(self.state))}\n'
        )
        out_path = self.workdir.parent / f"shell-out-{len(self.groups)}.txt"
        with out_path.open("w") as out:
            proc = subprocess.Popen(
                ["bash", "-c", script],
                env=_session_env(self.workdir),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.groups.append(proc.pid)
            proc.wait(timeout=300)
        if command.rstrip().endswith("&") or " & " in command:
            time.sleep(1.5)  # what a background job prints when it starts
            deadline = time.monotonic() + 60
            while (
                len(out_path.read_text(encoding="utf-8", errors="replace").splitlines()) < lines
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
        text = out_path.read_text(encoding="utf-8", errors="replace")
        if self.port:
            text = text.replace(f":{self.port[1]}", f":{self.port[0]}")
        return text

    def close(self) -> None:
        import signal

        for group in self.groups:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _run(command: str, workdir: Path) -> str:
    shell = Shell(workdir, workdir, None)
    try:
        return shell.run(command)
    finally:
        shell.close()


def run_session(path: Path, workdir: Path) -> list[tuple[Command, list[str]]]:
    """Run a page's session in ``workdir``; every command with what it printed."""
    ran: list[tuple[Command, list[str]]] = []
    setting = settings(path)
    start = REPO if setting.get("start") == "repo" else workdir
    shell = Shell(workdir, start, setting.get("dir"), setting)
    try:
        for action in session(path):
            if action.kind == "file":
                (workdir / action.name).parent.mkdir(parents=True, exist_ok=True)
                (workdir / action.name).write_text(action.text, encoding="utf-8")
            elif action.kind == "run":
                shell.run(action.text)
            elif action.kind == "commands":
                for command in action.commands or []:
                    shown = sum(1 for line in command.expected if line.strip() != ELLIPSIS)
                    ran.append((command, shell.run(command.text, shown).splitlines()))
    finally:  # background processes a page started never outlive it
        shell.close()
    return ran


def _update_page(
    path: Path, ran: list[tuple[Command, list[str]]], workdir: Path, doc_dir: str
) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    by_line = {c.line: (c, out) for c, out in ran}
    new: list[str] = []
    i = 0
    while i < len(lines):
        if i + 1 in by_line:
            command, out = by_line.pop(i + 1)
            keep = any(
                x.strip() == ELLIPSIS or "<n>" in x or "<any>" in x for x in command.expected
            )
            n = 1
            while not lines[i + n - 1].endswith(command.text.split()[-1]) and n < 50:
                n += 1  # continuation lines
            new.extend(lines[i : i + n])
            i += n
            if keep:
                new.extend(command.expected)
            else:
                shown = [x.rstrip().replace(str(workdir), doc_dir) for x in out]
                new.extend(shown)
            i += len(command.expected)
            continue
        new.append(lines[i])
        i += 1
    path.write_text("\n".join(new) + "\n", encoding="utf-8")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", SESSION_PAGES)
def test_page_sessions_print_what_the_page_shows(page: str, tmp_path: Path) -> None:
    path = DOCS / page
    workdir = tmp_path / "cli"
    workdir.mkdir()
    ran = run_session(path, workdir)
    assert ran, f"{page} runs no command"
    doc_dir = settings(path).get("dir", DOC_DIR)
    if os.environ.get("DURABLE_DOCS_UPDATE") == "1":
        _update_page(path, ran, workdir, doc_dir)
        return
    failures = []
    for command, out in ran:
        expected = _comparable(command.expected, str(workdir), doc_dir)
        actual = _comparable(out, str(workdir), doc_dir)
        if not _matches(expected, actual):
            failures.append(
                f"{page}:{command.line}: $ {command.text}\n--- the page shows\n"
                + "\n".join(command.expected)
                + "\n--- it printed\n"
                + "\n".join(out)
            )
    assert not failures, "\n\n".join(failures)


def test_session_pages_skip_few_blocks_and_say_why() -> None:
    for page in SESSION_PAGES:
        skipped = [a for a in session(DOCS / page) if a.kind == "skipped"]
        assert all(a.text for a in skipped)
        assert len(skipped) <= 2, [(page, a.line, a.text) for a in skipped]


def test_session_reader_joins_continuations_and_reads_outputs(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- file: a.txt -->\n```\nhello\n```\n\n<!-- run: echo setup -->\n\n"
        "```\n$ cat a.txt \\\n    a.txt\nhello\nhello\n$ true\n```\n\n"
        "<!-- not run: needs a cluster -->\n```\n$ kubectl apply\n```\n",
        encoding="utf-8",
    )
    kinds = [(a.kind, a.name or a.text) for a in session(page)]
    assert kinds[0] == ("file", "a.txt") and kinds[1] == ("run", "echo setup")
    assert kinds[3] == ("skipped", "needs a cluster")
    (first, second) = session(page)[2].commands or []
    assert (first.text, first.expected) == ("cat a.txt  a.txt", ["hello", "hello"])
    assert (second.text, second.expected) == ("true", [])
    workdir = tmp_path / "w"
    workdir.mkdir()
    ran = run_session(page, workdir)
    assert [out for _, out in ran] == [["hello", "hello"], []]
    assert _matches(["a", ELLIPSIS, "d"], ["a", "b", "c", "d"])
    assert _matches(["done <n>, <any>"], ["done 12, failed 2"])
    assert not _matches(["done <n>"], ["done x"])
    assert not _matches(["a", "d"], ["a", "b", "d"])
    assert _comparable(["  x  at 2026-11-26 07:18:45   done  "], "/w") == [" x at <time> done"]
