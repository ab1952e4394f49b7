"""Files written for a newer Python than the one running the audit are scanned, not skipped."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from codemods.audit import run_audit
from codemods.audit.newsyntax import lower_source, parse_python

NEWER = """import time

import requests

type Payload[T] = dict[str, T]


def charge[T](url: str, body: T) -> T:
    for attempt in range(5):
        try:
            print(f"attempt {attempt} for {body["id"]}")
            return requests.post(url, json=body)
        except requests.Timeout, requests.ConnectionError:
            time.sleep(2 ** attempt)
    raise RuntimeError(url)


class Box[T]:
    label = t"{Payload}"
"""


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="this Python reads all of it")
def test_the_running_python_cannot_read_the_sample() -> None:
    with pytest.raises(SyntaxError):
        ast.parse(NEWER)


def test_lowering_keeps_every_line_in_place() -> None:
    lowered = lower_source(NEWER)
    assert lowered.count("\n") == NEWER.count("\n")
    tree = ast.parse(lowered)
    starts = {type(n).__name__: n.lineno for n in tree.body}
    assert starts["FunctionDef"] == 8 and starts["ClassDef"] == 18
    assert "requests.post(url, json=body)" in lowered.splitlines()[11]


def test_multiline_fstring_keeps_following_lines() -> None:
    src = 'x = f"""a\n{d["k"]}\nb"""\ny = 1\n'
    tree = parse_python(src.encode())
    assert [n.lineno for n in tree.body] == [1, 4]


def test_a_file_neither_parser_reads_raises_the_ast_error() -> None:
    with pytest.raises(SyntaxError) as info:
        parse_python(b"print 'python 2'\n", "old.py")
    assert info.value.filename == "old.py"


def test_audit_reports_hotspots_in_newer_syntax(tmp_path: Path) -> None:
    (tmp_path / "billing.py").write_text(NEWER)
    report = run_audit([tmp_path], jobs=1)
    assert report.errors == []
    [hotspot] = [h for h in report.hotspots if h.kind.value == "retry-loop"]
    assert (hotspot.path, hotspot.start_line, hotspot.risk.value) == ("billing.py", 9, "high")


@pytest.mark.parametrize(
    "src",
    [
        'x = f"{\n    a  # a comment inside the expression\n}"\ny = 1\n',
        'x = f"{a!r:>{width}} {f"{b:{c}}"}"\ny = 1\n',
        'x = f"""{\n a}\n{b["k"]}\n"""\ny = 1\n',
        "def f[*Ts, **P](): pass\nclass C[T = int](Base): pass\ny = 1\n",
    ],
)
def test_tricky_newer_syntax_keeps_lines(src: str) -> None:
    tree = parse_python(src.encode())
    assert tree.body[-1].lineno == src.count("\n")
