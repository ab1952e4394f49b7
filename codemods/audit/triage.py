"""Turn raw hotspots into findings a team can act on.

* :func:`dedupe`: one finding per site. Nested sites of the same kind in one
  file (a retry loop inside a retry loop) and the same table declared in
  several places (model, migration, raw SQL) become one finding, the others
  listed in ``also_at``; identical sites get distinct fingerprints.
* :func:`group_by`: findings by helper, file, directory, kind or risk.
* :func:`start_here`: the short list to begin with (highest risk, least effort).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from codemods.audit.model import KIND_TITLES, Hotspot, Kind, Risk

_TABLE_KINDS = (Kind.STATUS_TABLE, Kind.DEAD_LETTER)
#: kinds whose nested sites are one site (a decorator inside a decorated function is not)
_NESTING_KINDS = frozenset(Kind) - {Kind.RETRY_DECORATOR}
#: explicit table names: the same name is the same table anywhere in the project
_TABLE_NAME = (
    re.compile(r"(?i)create\s+(?:\w+\s+)?table\s+(?:if\s+not\s+exists\s+)?[\"`\[]?(?:\w+\.)?(\w+)"),
    re.compile(r"db_table\s*=\s*[\"'](\w+)"),
    re.compile(r"__tablename__\s*=\s*[\"'](\w+)"),
    re.compile(r"(?:\bTable|create_table)\((?:\s*#[^\n]*)?\s*[\"'](\w+)"),
)
#: Django model names: the same name is the same table only within one app
_MODEL_NAME = (
    re.compile(r"CreateModel\((?:\s*#[^\n]*)?\s*name\s*=\s*[\"'](\w+)"),
    re.compile(r"^\s*class\s+(\w+)\s*\(", re.M),
)


def _app(path: str) -> str:
    """The Django app folder of a models or migrations file."""
    parts = path.split("/")[:-1]
    for marker in ("migrations", "models"):
        if marker in parts:
            return "/".join(parts[: parts.index(marker)])
    return "/".join(parts)


def table_name(h: Hotspot) -> str | None:
    """Which table a status-table or dead-letter *declaration* is, lower-cased, else None.

    An explicit name (SQL, ``__tablename__``, ``db_table``, ``Table(...)``) stands for
    itself; a Django model name is qualified by its app folder (``shop:job``).
    """
    if h.kind not in _TABLE_KINDS:
        return None
    for pattern in _TABLE_NAME:
        m = pattern.search(h.excerpt)
        if m:
            return m.group(1).lower()
    for pattern in _MODEL_NAME:
        m = pattern.search(h.excerpt)
        if m:
            return f"{_app(h.path)}:{m.group(1).lower()}"
    return None


def effort(h: Hotspot) -> int:
    """1 automatic codemod, 2 a decorator or a codemod with a manual step, 3 adapter, 4 manual."""
    if h.fix.automatic:
        return 1
    return {"codemod": 2, "decorator": 2, "adapter": 3}.get(h.fix.kind, 4)


EFFORT_LABEL = {1: "automatic codemod", 2: "small manual change", 3: "adapter", 4: "manual"}


def _declaration_rank(h: Hotspot) -> tuple[int, int, str, int]:
    """Which declaration of a table represents it: models before migrations and SQL."""
    p = "/" + h.path
    late = "/migrations/" in p or "/alembic/" in p or "/versions/" in p or p.endswith(".sql")
    return (-h.risk.rank, int(late), h.path, h.start_line)


def _merge(keep: Hotspot, others: list[Hotspot]) -> Hotspot:
    extra = tuple(o.location for o in others)
    extra += tuple(a for o in others for a in o.also_at)
    return replace(keep, also_at=keep.also_at + extra)


def dedupe(hotspots: Iterable[Hotspot]) -> tuple[list[Hotspot], int]:
    """One finding per site; returns (findings, how many were merged away).

    Keeps the worst of a nested pair (the outer one on a tie), and for a table
    the model declaration over migrations and SQL. Sorted worst first.
    """
    items = sorted(hotspots, key=lambda h: (h.path, h.start_line, -h.end_line, h.kind.value))
    merged = 0
    # 1. nested or identical sites of one kind in one file
    kept: list[Hotspot] = []
    folded: dict[int, list[Hotspot]] = {}
    for h in items:
        host = None
        for i in range(len(kept) - 1, -1, -1):
            k = kept[i]
            if k.path != h.path:
                break
            same = k.start_line == h.start_line and k.end_line == h.end_line
            nested = k.start_line <= h.start_line and h.end_line <= k.end_line
            if k.kind is h.kind and (same or (nested and h.kind in _NESTING_KINDS)):
                host = i
                break
        if host is None:
            kept.append(h)
            continue
        merged += 1
        k = kept[host]
        if h.risk.rank > k.risk.rank:  # the worse one represents the site
            kept[host] = h
            folded.setdefault(host, []).append(k)
        else:
            folded.setdefault(host, []).append(h)
    sites = [_merge(h, folded.get(i, [])) for i, h in enumerate(kept)]
    # 2. one table declared in several places
    by_table: dict[tuple[Kind, str], list[Hotspot]] = {}
    out: list[Hotspot] = []
    for h in sites:
        name = table_name(h)
        if name is None:
            out.append(h)
        else:
            by_table.setdefault((h.kind, name), []).append(h)
    for group in by_table.values():
        group.sort(key=_declaration_rank)
        out.append(_merge(group[0], group[1:]))
        merged += len(group) - 1
    # 3. identical sites in one file get distinct fingerprints
    out.sort(key=lambda h: (h.path, h.start_line, h.kind.value))
    seen: dict[str, int] = {}
    final = []
    for h in out:
        n = seen.get(h.id, 0)
        seen[h.id] = n + 1
        final.append(replace(h, occurrence=n) if n else h)
    final.sort(key=Hotspot.sort_key)
    return final, merged


@dataclass
class Group:
    """Findings sharing a helper, file, directory, kind or risk; worst first."""

    key: str
    title: str
    hotspots: list[Hotspot]

    @property
    def worst(self) -> Risk:
        return max((h.risk for h in self.hotspots), key=lambda r: r.rank)

    def counts(self) -> dict[str, int]:
        return {r.value: sum(1 for h in self.hotspots if h.risk is r) for r in Risk}


def directory(h: Hotspot) -> str:
    """The folder of a finding's file (``.`` at the top)."""
    head, _, _ = h.path.rpartition("/")
    return head or "."


GROUP_KEYS: dict[str, Callable[[Hotspot], str]] = {
    "helper": lambda h: h.group or "",
    "file": lambda h: h.path,
    "directory": directory,
    "kind": lambda h: h.kind.value,
    "risk": lambda h: h.risk.value,
}


def group_by(hotspots: Iterable[Hotspot], by: str) -> list[Group]:
    """Groups for ``by`` in GROUP_KEYS: most high-risk findings first, then medium, then low.

    For ``helper``, findings that go through no project helper are left out.
    """
    key = GROUP_KEYS[by]
    groups: dict[str, list[Hotspot]] = {}
    for h in hotspots:
        k = key(h)
        if by == "helper" and not k:
            continue
        groups.setdefault(k, []).append(h)
    out = []
    for k, hs in groups.items():
        hs.sort(key=Hotspot.sort_key)
        title = KIND_TITLES[Kind(k)] if by == "kind" else k
        out.append(Group(k, title, hs))
    out.sort(key=lambda g: (*(-n for n in reversed(g.counts().values())), g.key))
    return out


@dataclass
class StartItem:
    """One entry of the "start here" list: a site, or every use site of one helper."""

    title: str
    risk: Risk
    effort: str
    hotspots: list[Hotspot]

    @property
    def first(self) -> Hotspot:
        return self.hotspots[0]


def start_here(hotspots: Iterable[Hotspot], limit: int = 5) -> list[StartItem]:
    """The first things to fix: highest risk, then least effort, then the most sites at once.

    All use sites of one project helper are one item (fixing the helper fixes them).
    """
    candidates: list[tuple[tuple[int, int, int, str, int], StartItem]] = []
    helpers: dict[str, list[Hotspot]] = {}
    for h in hotspots:
        if h.group:
            helpers.setdefault(h.group, []).append(h)
            continue
        cost = effort(h)
        item = StartItem(
            f"{KIND_TITLES[h.kind]} in {h.location}" + (f" ({h.function})" if h.function else ""),
            h.risk,
            EFFORT_LABEL[cost],
            [h],
        )
        candidates.append(((-h.risk.rank, cost, -1, h.path, h.start_line), item))
    for name, hs in helpers.items():
        hs.sort(key=Hotspot.sort_key)
        cost = min(effort(h) for h in hs)
        worst = hs[0].risk
        files = len({h.path for h in hs})
        title = f"helper `{name}`: {len(hs)} use site{'s' if len(hs) != 1 else ''}"
        title += f" in {files} file{'s' if files != 1 else ''}"
        item = StartItem(title, worst, EFFORT_LABEL[cost], hs)
        candidates.append(((-worst.rank, cost, -len(hs), hs[0].path, hs[0].start_line), item))
    candidates.sort(key=lambda c: c[0])
    return [item for _, item in candidates[:limit]]
