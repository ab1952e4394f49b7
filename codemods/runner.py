"""Run the codemods over files and directories: diff or write, in parallel, never stopping.

Guarantees:

* a file that does not parse, is generated (``@generated``), is excluded or makes a
  codemod fail is reported and never stops the run;
* in diff mode no file is written;
* in write mode a file is written only when its text changed, atomically (a temporary
  file renamed over it);
* running twice changes nothing more: the second run finds no rewritable site.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import libcst as cst
from libcst.codemod import CodemodContext

from . import CODEMODS
from ._base import ANNOTATION_PREFIX, Site, sites_of
from ._retry_once import retry_once
from ._unfollowed import unfollowed_sites
from ._use_sites import ProjectIndex, build_index, find_uses
from .project_retry import (
    EARLIER_SITES,
    ORIGINAL_SOURCE,
    PROJECT_INDEX,
    ProjectRetryCodemod,
    use_site,
)

#: the marker of generated files; split so that this file is not taken for one
GENERATED_MARKER = "@" + "generated"
SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "node_modules",
    "build",
    "dist",
    ".eggs",
}

#: below this many files, starting worker processes costs more than it saves
_MIN_FILES_PER_POOL = 8

Status = Literal["unchanged", "rewritten", "generated", "excluded", "failed"]


@dataclass
class FileResult:
    """What happened to one file. ``error`` is set for ``failed`` (with the line if known)."""

    path: str
    status: Status
    sites: list[Site] = field(default_factory=list)
    diff: str = ""
    new_code: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the new code)."""
        return {
            "path": self.path,
            "status": self.status,
            "sites": [s.as_dict() for s in self.sites],
            "error": self.error,
        }


def iter_python_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every ``*.py`` file under ``paths``, sorted, skipping VCS, virtualenv and cache folders."""
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
            for name in sorted(files):
                if name.endswith(".py"):
                    yield Path(root) / name


def is_excluded(path: Path, exclude: Sequence[str]) -> bool:
    """``path`` matches one of the glob patterns (on the whole path or on any part)."""
    text = path.as_posix()
    return any(
        fnmatch.fnmatch(text, pattern) or any(fnmatch.fnmatch(part, pattern) for part in path.parts)
        for pattern in exclude
    )


def transform_source(
    source: str,
    selectors: Sequence[str] = tuple(CODEMODS),
    filename: str = "<string>",
    annotate: bool = False,
    project: ProjectIndex | None = None,
) -> tuple[str, list[Site]]:
    """Run the selected codemods on ``source``; the new code and the sites, with the line
    numbers of ``source``. Raises :class:`libcst.ParserSyntaxError` if it does not parse.

    ``project``: the definitions of the project's own decorators that other files of the
    run hold, with their decisions (:func:`codemods._use_sites.build_index`)."""
    code, sites = _run_codemods(source, selectors, filename, annotate, project)
    if "retry-loop" in selectors:
        code, sites, listed = retry_once(
            source,
            code,
            sites,
            lambda text: _run_codemods(text, selectors, filename, annotate, project),
        )
        unfollowed = unfollowed_sites(source, filename, sites)
        sites.extend(unfollowed)
        if annotate:
            code = _annotate_listed(source, code, [*listed, *unfollowed])
    sites.sort(key=lambda s: (s.line, s.selector))
    return code, sites


def _annotate_listed(source: str, code: str, listed: Sequence[Site]) -> str:
    """``code`` with the ``# durable: ... not rewritten: <reason>`` comment above each of
    the ``listed`` sites (lines of ``source``) that no codemod annotated itself: the
    retry loops the audit reads and the codemod does not follow, the retries-once kept.
    A comment already there is replaced, so a second run changes nothing."""
    if not listed:
        return code
    old, new = source.splitlines(keepends=True), code.splitlines(keepends=True)
    where: dict[int, int] = {}  # line of source -> index in new, where unchanged
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, a0, a1, b0, _b1 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(a1 - a0):
                where[a0 + k + 1] = b0 + k
    for site in sorted(listed, key=lambda s: s.line, reverse=True):
        index = where.get(site.line)
        if index is None:
            continue
        line = new[index]
        indent = line[: len(line) - len(line.lstrip())]
        text = f"{ANNOTATION_PREFIX}{site.selector} not rewritten: {site.reason}"
        if site.policy:
            text += f" (policy read: {site.policy})"
        comment = indent + " ".join(text.split()) + "\n"
        mine = f"{ANNOTATION_PREFIX}{site.selector} not rewritten:"
        if index > 0 and new[index - 1].strip().startswith(mine):
            new[index - 1] = comment
        else:
            new.insert(index, comment)
    return "".join(new)


def _run_codemods(
    source: str,
    selectors: Sequence[str],
    filename: str,
    annotate: bool,
    project: ProjectIndex | None,
) -> tuple[str, list[Site]]:
    """Each selected codemod in turn on the code the previous one left."""
    code = source
    sites: list[Site] = []
    original_lines = source.splitlines()
    precheck = not os.environ.get("DURABLE_CODEMOD_NO_PRECHECK")  # the benchmark's worst case
    for selector in selectors:
        codemod_class = CODEMODS[selector]
        uses = codemod_class is ProjectRetryCodemod
        # uses: also a decorator named after a definition of the run, or defined here
        named = uses and (
            bool(sites) or (project is not None and any(n in code for n in project.names))
        )
        if precheck and not codemod_class.might_apply(code) and not named:
            continue
        if uses and not annotate:  # it only reports: its ast analysis, without libcst
            found = find_uses(code, filename, sites, project, source)
            lines = _line_map(original_lines, code.splitlines()) if code != source else {}
            sites.extend(_with_lines(use_site(u), lines) for u in found)
            continue
        context = CodemodContext(filename=filename)
        if uses:  # the use sites are answered with their definitions' decisions
            context.scratch[EARLIER_SITES] = list(sites)
            context.scratch[ORIGINAL_SOURCE] = source
            if project is not None:
                context.scratch[PROJECT_INDEX] = project
        codemod = codemod_class(context, annotate=annotate)
        module = codemod.transform_module(cst.parse_module(code))
        stage_sites = sites_of(context)
        if code != source:
            lines = _line_map(original_lines, code.splitlines())
            stage_sites = [_with_lines(s, lines) for s in stage_sites]
        sites.extend(stage_sites)
        code = module.code
    return code, sites


def _with_lines(site: Site, lines: dict[int, int]) -> Site:
    return replace(
        site,
        line=lines.get(site.line, site.line),
        end_line=lines.get(site.end_line, site.end_line) if site.end_line else 0,
    )


def _line_map(original: list[str], current: list[str]) -> dict[int, int]:
    """1-based line of ``current`` -> the line it came from (or replaced) in ``original``."""
    mapping: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(a=original, b=current, autojunk=False)
    for _tag, a0, a1, b0, b1 in matcher.get_opcodes():
        for j in range(b0, b1):
            mapping[j + 1] = min(a0 + (j - b0), max(a1 - 1, a0)) + 1
    return mapping


def process_file(
    path: str,
    selectors: Sequence[str],
    annotate: bool = False,
    exclude: Sequence[str] = (),
    project: ProjectIndex | None = None,
) -> FileResult:
    """Read, transform and diff one file; never raises."""
    if is_excluded(Path(path), exclude):
        return FileResult(path, "excluded")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            source = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        return FileResult(path, "failed", error=f"cannot read: {exc}")
    if GENERATED_MARKER in source:
        return FileResult(path, "generated")
    try:
        new_code, sites = transform_source(source, selectors, path, annotate, project)
    except cst.ParserSyntaxError as exc:
        line, message = _syntax_error_at(source, exc)
        return FileResult(path, "failed", error=f"line {line}: does not parse: {message}")
    except Exception as exc:  # a codemod bug must not stop the run
        return FileResult(path, "failed", error=f"codemod error: {type(exc).__name__}: {exc}")
    if new_code == source:
        return FileResult(path, "unchanged", sites)
    diff = "".join(
        difflib.unified_diff(
            source.splitlines(keepends=True),
            new_code.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )
    return FileResult(path, "rewritten", sites, diff, new_code)


def _syntax_error_at(source: str, exc: cst.ParserSyntaxError) -> tuple[int, str]:
    """The line and message of a syntax error: Python's own parser places it where the
    code went wrong (libcst's may point at the end of an unclosed bracket's file)."""
    try:
        ast.parse(source)
    except SyntaxError as error:
        if error.lineno:
            return error.lineno, error.msg
    except ValueError:
        pass
    return exc.raw_line, exc.message.splitlines()[0] if exc.message else "syntax error"


def _process_star(
    args: tuple[str, Sequence[str], bool, Sequence[str], ProjectIndex | None],
) -> FileResult:
    return process_file(*args)


def run(
    paths: Iterable[str | Path],
    selectors: Sequence[str] = tuple(CODEMODS),
    *,
    write: bool = False,
    jobs: int = 1,
    annotate: bool = False,
    exclude: Sequence[str] = (),
) -> Iterator[FileResult]:
    """Process every Python file under ``paths``; yields results in path order.

    With ``write`` each changed file is replaced atomically. ``jobs`` > 1 uses that many
    worker processes.
    """
    unknown = [s for s in selectors if s not in CODEMODS]
    if unknown:
        raise ValueError(f"unknown codemod {unknown[0]!r}; choose from {', '.join(CODEMODS)}")
    files = [str(p) for p in iter_python_files(paths)]
    project = None
    if ProjectRetryCodemod.SELECTOR in selectors and len(files) > 1:
        # the definitions of the project's own decorators, read once for their uses
        kept = [f for f in files if not is_excluded(Path(f), exclude)]
        others = [s for s in CODEMODS if s != ProjectRetryCodemod.SELECTOR]
        project = build_index(kept, others)
    work = [(f, tuple(selectors), annotate, tuple(exclude), project) for f in files]
    if jobs > 1 and len(work) >= _MIN_FILES_PER_POOL:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            chunk = max(1, min(32, len(work) // (jobs * 4)))
            for result in pool.map(_process_star, work, chunksize=chunk):
                yield _finish(result, write)
    else:
        for item in work:
            yield _finish(_process_star(item), write)


def _finish(result: FileResult, write: bool) -> FileResult:
    if write and result.status == "rewritten" and result.new_code is not None:
        _write_atomically(Path(result.path), result.new_code)
    return result


def _write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


__all__ = ["FileResult", "iter_python_files", "process_file", "run", "transform_source"]
