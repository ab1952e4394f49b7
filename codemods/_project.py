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
    """Module names (or glob patterns) that are the project's own, for a file on disk.

    The project root is the nearest directory above the file whose settings
    configure ruff or isort, else the nearest one with any marker. The
    package the file itself belongs to is always the project's own (ruff's
    ``detect-same-package``). Empty when ``filename`` is not an existing file
    (source given as a string). Unreadable settings are ignored.
    """
    path = Path(filename)
    if not path.is_file():
        return frozenset()
    directory = path.resolve().parent
    return _own_package(directory) | _first_party_at(directory)


@functools.lru_cache(maxsize=256)
def _first_party_at(directory: Path) -> frozenset[str]:
    nearest = None
    for candidate in (directory, *directory.parents):
        if _settings(candidate):  # configures ruff or isort
            return _first_party(candidate)
        if nearest is None and any((candidate / marker).exists() for marker in ROOT_MARKERS):
            nearest = candidate
    return _first_party(nearest) if nearest is not None else frozenset()


def _own_package(directory: Path) -> frozenset[str]:
    """The top-level package that holds ``directory`` (directories with ``__init__.py``)."""
    top = None
    while (directory / "__init__.py").is_file():
        top, directory = directory.name, directory.parent
    return frozenset([top]) if top is not None and top.isidentifier() else frozenset()


@functools.lru_cache(maxsize=32)
def _first_party(root: Path) -> frozenset[str]:
    known: set[str] = set()
    third: set[str] = set()
    sources: list[str] = []
    for settings in _settings(root):
        known.update(_names(settings.get("known_first_party")))
        known.update(_names(settings.get("known_local_folder")))
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
    """The isort settings of every file at ``root`` that configures ruff or isort, with
    isort's key names (a ``pyproject.toml`` without either table has none)."""
    found: list[dict[str, Any]] = []
    pyproject = _toml(root / "pyproject.toml")
    tool = pyproject.get("tool", {})
    ruff_tables = [tool["ruff"]] if "ruff" in tool else []
    for name in ("ruff.toml", ".ruff.toml"):
        if (root / name).is_file():
            ruff_tables.append(_toml(root / name))
    for table in ruff_tables:
        lint_isort = {**table.get("isort", {}), **table.get("lint", {}).get("isort", {})}
        found.append(
            {
                "known_first_party": lint_isort.get("known-first-party"),
                "known_third_party": lint_isort.get("known-third-party"),
                "known_local_folder": lint_isort.get("known-local-folder"),
                "src": table.get("src"),
            }
        )
    if "isort" in tool:
        isort = tool["isort"]
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
    return [item.strip() for item in items if item.strip()]
