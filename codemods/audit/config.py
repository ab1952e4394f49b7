"""``[tool.durable.audit]`` in ``pyproject.toml``: the audit's project settings.

The file is found from the first audited path upward: the nearest
``pyproject.toml`` that has a ``[tool.durable.audit]`` table (as ruff finds
``[tool.ruff]``). Command-line options override it. Unknown keys and bad
values are a :class:`ConfigError` (one line naming the file and the key).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codemods.audit.model import Kind, Risk

#: what the audit calls a test file: excluded unless ``include-tests`` / ``--include-tests``
TEST_GLOBS: tuple[str, ...] = ("tests", "test", "test_*.py", "*_test.py", "conftest.py")

KEYS = ("exclude", "select", "ignore", "min-risk", "include-tests", "fail-on", "baseline")


class ConfigError(ValueError):
    """A bad ``[tool.durable.audit]`` table or option value."""


@dataclass(frozen=True)
class AuditConfig:
    """Settings of one audit run (defaults: every kind, every risk, tests excluded)."""

    exclude: tuple[str, ...] = ()
    select: frozenset[Kind] | None = None
    ignore: frozenset[Kind] = frozenset()
    min_risk: Risk = Risk.LOW
    include_tests: bool = False
    fail_on: Risk | None = None
    baseline: Path | None = None
    #: the ``pyproject.toml`` these settings came from (None: defaults)
    source: Path | None = None

    def wants(self, kind: Kind, risk: Risk) -> bool:
        """True when a finding of this kind and risk is reported."""
        if self.select is not None and kind not in self.select:
            return False
        return kind not in self.ignore and risk.rank >= self.min_risk.rank


def parse_kinds(values: list[str] | tuple[str, ...], where: str) -> frozenset[Kind]:
    """Kinds from names (``retry-loop``...), comma-separated items allowed."""
    names = [v.strip() for value in values for v in str(value).split(",") if v.strip()]
    valid = {k.value for k in Kind}
    for name in names:
        if name not in valid:
            raise ConfigError(
                f"{where}: unknown kind {name!r} (expected {', '.join(sorted(valid))})"
            )
    return frozenset(Kind(n) for n in names)


def parse_risk(value: object, where: str) -> Risk:
    if value not in {r.value for r in Risk}:
        raise ConfigError(f"{where}: expected low, medium or high, got {value!r}")
    return Risk(str(value))


def _strings(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return list(value)


def find_config(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` with ``[tool.durable.audit]``."""
    here = start.resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and _table(candidate) is not None:
            return candidate
    return None


def _table(path: Path) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("durable", {}).get("audit")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.durable.audit] must be a table")
    return table


def load_config(path: Path) -> AuditConfig:
    """Read ``[tool.durable.audit]`` from ``path`` (an empty table gives the defaults)."""
    table = _table(path) or {}
    where = f"{path} [tool.durable.audit]"
    for key in table:
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
    include_tests = table.get("include-tests", False)
    if not isinstance(include_tests, bool):
        raise ConfigError(f"{where} include-tests: expected true or false")
    baseline = table.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise ConfigError(f"{where} baseline: expected a path")
    return AuditConfig(
        exclude=tuple(_strings(table.get("exclude", []), f"{where} exclude")),
        select=(
            parse_kinds(_strings(table["select"], f"{where} select"), f"{where} select")
            if "select" in table
            else None
        ),
        ignore=parse_kinds(_strings(table.get("ignore", []), f"{where} ignore"), f"{where} ignore"),
        min_risk=parse_risk(table.get("min-risk", "low"), f"{where} min-risk"),
        include_tests=include_tests,
        fail_on=parse_risk(table["fail-on"], f"{where} fail-on") if "fail-on" in table else None,
        baseline=(path.parent / baseline) if baseline else None,
        source=path,
    )
