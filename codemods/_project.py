"""Which top-level modules are the rewritten project's own ("first party" to isort and ruff).

The codemods add ``from toolkit import ...`` to a file. isort and ruff sort
third-party imports (toolkit) into a block before the project's own, so the
codemod must tell the two apart the way they do: names listed as
``known-first-party`` in the project's settings, plus every package or module
found in its source directories (the project root and ``src/`` unless ``src``
or ``src_paths`` says otherwise). The project root is the nearest directory
above the file that holds a settings file or ``.git``.
"""

from __future__ import annotations

import configparser
import functools
import tomllib
from pathlib import Path
from typing import Any

ROOT_MARKERS = (
    "pyproject.toml",
    "ruff.toml",
    ".ruff.toml",
    "setup.cfg",
    ".isort.cfg",
    "tox.ini",
    "setup.py",
    ".git",
)


def first_party_modules(filename: str) -> frozenset[str]:
    """Top-level module names that are the project's own, for a file on disk.

    Empty when ``filename`` is not an existing file (source given as a string)
    or no project root is found above it. Unreadable settings are ignored.
    """
    path = Path(filename)
    if not path.is_file():
        return frozenset()
    directory = path.resolve().parent
    for candidate in (directory, *directory.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return _first_party(candidate)
    return frozenset()


@functools.lru_cache(maxsize=32)
def _first_party(root: Path) -> frozenset[str]:
    known: set[str] = set()
    third: set[str] = set()
    sources: list[str] = []
    for settings in _settings(root):
        known.update(_names(settings.get("known_first_party")))
        third.update(_names(settings.get("known_third_party")))
        sources.extend(_names(settings.get("src")))
    found: set[str] = set()
    for source in sources or [".", "src"]:
        directory = (root / source).resolve()
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            name = entry.stem if entry.suffix == ".py" else entry.name
            if name.isidentifier() and (entry.is_dir() or entry.suffix == ".py"):
                found.add(name)
    return frozenset((found - third) | known)


def _settings(root: Path) -> list[dict[str, Any]]:
    """The isort settings of every settings file at ``root``, with isort's key names."""
    found: list[dict[str, Any]] = []
    pyproject = _toml(root / "pyproject.toml")
    tool = pyproject.get("tool", {})
    ruff = tool.get("ruff", {})
    for table in (ruff, _toml(root / "ruff.toml"), _toml(root / ".ruff.toml")):
        lint_isort = {**table.get("isort", {}), **table.get("lint", {}).get("isort", {})}
        found.append(
            {
                "known_first_party": lint_isort.get("known-first-party"),
                "known_third_party": lint_isort.get("known-third-party"),
                "src": table.get("src"),
            }
        )
    isort = tool.get("isort", {})
    found.append({**isort, "src": isort.get("src_paths")})
    for name, section in (
        (".isort.cfg", "settings"),
        ("setup.cfg", "isort"),
        ("setup.cfg", "tool:isort"),
        ("tox.ini", "isort"),
        ("tox.ini", "tool:isort"),
    ):
        parser = configparser.ConfigParser()
        try:
            parser.read(root / name, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        if parser.has_section(section):
            options = dict(parser.items(section, raw=True))
            found.append({**options, "src": options.get("src_paths")})
    return found


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def _names(value: Any) -> list[str]:
    """Module names from a TOML list or an ini value (comma- or line-separated)."""
    if isinstance(value, str):
        items = value.replace("\n", ",").split(",")
    elif isinstance(value, list):
        items = [str(item) for item in value]
    else:
        return []
    return [item.strip().removesuffix(".*") for item in items if item.strip()]
