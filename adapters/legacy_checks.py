"""Checks of a declared mapping against the reflected legacy table.

Each function returns the problems it found as short phrases (empty: none);
:class:`~adapters.legacy_table.LegacyTable` joins them into one
:class:`~adapters.legacy_table.MappingError` line before anything is touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

RUN_SUFFIX = "#9999"
"""The longest run suffix a workflow id is checked for (a row re-queued 9,998 times)."""

_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def key_width(column: sa.Column[Any], backend: str) -> int | None:
    """The most characters a key of this column takes as text (None: unbounded or unknown)."""
    typ = column.type
    if isinstance(typ, sa.SmallInteger):
        return 6
    if isinstance(typ, sa.BigInteger):
        return 20
    if isinstance(typ, sa.Integer):
        # SQLite integers are 64-bit whatever the declared type; elsewhere INTEGER is 32-bit
        return 20 if backend == "sqlite" else 11
    if isinstance(typ, sa.Uuid):
        return 36
    if isinstance(typ, sa.Numeric) and typ.precision is not None:
        return int(typ.precision) + 2
    if isinstance(typ, sa.String) and typ.length:
        return int(typ.length)
    return None


def id_width_problem(
    lock: sa.Column[Any], key: sa.Column[Any], prefix: str, backend: str
) -> str | None:
    """Why the lock-owner column cannot hold every workflow id, or None.

    A workflow id is written whole into the lock-owner column and compared as
    written, so the column must be as wide as the longest id: the prefix, the
    widest key and a run suffix (``#9999``).
    """
    width = getattr(lock.type, "length", None)
    if not width:
        return None
    widest = key_width(key, backend)
    if widest is None:
        return None  # unbounded keys: each id is checked when its row is claimed
    needed = len(prefix) + widest + len(RUN_SUFFIX)
    if width >= needed:
        return None
    return (
        f"locked_by column {lock.name!r} is {lock.type} ({width} characters) but the workflow "
        f"ids it holds need {needed} ({prefix!r} + a key of up to {widest} + a run suffix "
        f"{RUN_SUFFIX!r}); widen the column or give the adapter a shorter name="
    )


def _allowed_by_checks(
    status: sa.Column[Any], checks: Iterable[dict[str, Any]]
) -> tuple[str, set[str]] | None:
    """The name and text literals of a CHECK constraint listing the status values, if any."""
    word = re.compile(rf"(?<![\w$]){re.escape(status.name)}(?![\w$])", re.IGNORECASE)
    for check in checks:
        text = str(check.get("sqltext") or "")
        if not word.search(text):
            continue
        literals = {m.replace("''", "'") for m in _LITERAL.findall(text)}
        if len(literals) >= 2:
            return str(check.get("name") or "unnamed"), literals
    return None


def status_problems(
    status: sa.Column[Any], values: dict[str, Any], checks: Iterable[dict[str, Any]]
) -> list[str]:
    """What is wrong with the declared status values for this column (type, width, ENUM, CHECK).

    ``values``: role -> the value the adapter writes or compares for it.
    """
    problems: list[str] = []
    typ = status.type
    numeric = isinstance(typ, sa.Integer | sa.Numeric | sa.Float | sa.Boolean)
    text = isinstance(typ, sa.String | sa.Enum)
    for role, value in values.items():
        if numeric and isinstance(value, str):
            problems.append(
                f"the {role} value {value!r} is text but column {status.name!r} is {typ}"
            )
        elif text and not isinstance(value, str):
            problems.append(
                f"the {role} value {value!r} is not text but column {status.name!r} is {typ}"
            )
    if problems:
        return problems
    if isinstance(typ, sa.Enum) and typ.enums:
        missing = {r: v for r, v in values.items() if v not in typ.enums}
        if missing:
            listed = ", ".join(f"{r} {v!r}" for r, v in missing.items())
            problems.append(
                f"column {status.name!r} is an ENUM of {', '.join(map(repr, typ.enums))}, "
                f"which does not allow {listed}"
            )
        return problems
    length = getattr(typ, "length", None)
    if isinstance(typ, sa.String) and length:
        long = {r: v for r, v in values.items() if len(v) > length}
        if long:
            listed = ", ".join(f"{r} {v!r}" for r, v in long.items())
            problems.append(f"column {status.name!r} is {typ}: too narrow for {listed}")
    if text:
        found = _allowed_by_checks(status, checks)
        if found is not None:
            name, allowed = found
            missing = {r: v for r, v in values.items() if v not in allowed}
            if missing:
                listed = ", ".join(f"{r} {v!r}" for r, v in missing.items())
                problems.append(
                    f"the CHECK constraint {name!r} on column {status.name!r} allows only "
                    f"{', '.join(map(repr, sorted(allowed)))}, not {listed}"
                )
    return problems


def check_constraints(inspector: Any, table: str, schema: str | None) -> list[dict[str, Any]]:
    """The table's CHECK constraints as reflected (empty where the dialect cannot tell)."""
    try:
        return list(inspector.get_check_constraints(table, schema))
    except NotImplementedError:
        return []
