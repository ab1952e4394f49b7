"""Across files: a project's own retry helpers and every place that uses them.

Each file's scan names the retry helpers it defines (home-made decorators,
facades over tenacity/oslo.db/backoff, recursive retry decorators, Celery
retry helpers) and the decorators it applies, with what the decorated
function does. After every file is scanned, :func:`link` matches the two by
import path, so ``@utils.retry(...)`` in ``volume/rbd.py`` is reported under
``cinder/utils.py``'s ``retry``. Matching is by dotted name through the
importing file's imports (relative imports included); nothing is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

from codemods.audit.effects import Effects
from codemods.audit.model import Fix, Hotspot, Kind, Risk


@dataclass(frozen=True)
class HelperDef:
    """A retry helper defined in a file (``module`` is its dotted path from the scan root)."""

    module: str
    name: str
    qualname: str
    what: str


@dataclass(frozen=True)
class UseSite:
    """A decorator applied in a file, resolved through that file's imports."""

    path: str
    resolved: str
    label: str
    start_line: int
    end_line: int
    start_col: int
    function: str
    excerpt: str
    effects: Effects


def module_of(rel: str) -> str:
    """``pkg/sub/mod.py`` -> ``pkg.sub.mod`` (``__init__`` is the package)."""
    mod = rel.rsplit(".", 1)[0].replace("/", ".")
    return mod.removesuffix(".__init__")


def _matches(resolved: str, helper: HelperDef, use_module: str) -> bool:
    head, _, name = resolved.rpartition(".")
    if name != helper.name:
        return False
    if not head:  # a bare name: defined in the same module
        return use_module == helper.module
    if head == helper.module or helper.module.endswith("." + head):
        return True
    # the scan root may sit above the package root (src/pkg/...) or below it
    return head.endswith("." + helper.module)


def link(
    helpers: list[HelperDef], uses: list[UseSite], seen: set[tuple[str, int]]
) -> list[Hotspot]:
    """One hotspot per use site of a project retry helper (``seen``: (path, line) reported)."""
    by_name: dict[str, list[HelperDef]] = {}
    for h in helpers:
        by_name.setdefault(h.name, []).append(h)
    out: list[Hotspot] = []
    for use in uses:
        name = use.resolved.rsplit(".", 1)[-1]
        found = [h for h in by_name.get(name, ()) if _matches(use.resolved, h, module_of(use.path))]
        if not found or (use.path, use.start_line) in seen:
            continue
        helper = found[0]
        seen.add((use.path, use.start_line))
        out.append(use_hotspot(use, helper))
    return out


def use_hotspot(use: UseSite, helper: HelperDef) -> Hotspot:
    """The finding for one use of a project helper, ranked by what the decorated code does."""
    eff = use.effects
    group = f"{helper.module}.{helper.qualname}"
    why = [f"Every call of `{use.function}` goes through the project's retry helper `{group}`."]
    if eff.external and not eff.idempotency_key:
        risk = Risk.HIGH
        reason = f"retries {eff.external[0]} through `{helper.name}` with no idempotency key"
        why.append(
            f"The function does {eff.external[0]}; a retry after a timeout can do it twice, "
            "and no idempotency key tells the other side it is the same request."
        )
    elif eff.db_write:
        risk = Risk.MEDIUM
        reason = f"retries a database write through `{helper.name}`"
        why.append("It writes to the database; an attempt that half-failed may be written twice.")
    elif eff.external:
        risk = Risk.MEDIUM
        reason = f"retries {eff.external[0]} through `{helper.name}` (idempotency key present)"
        why.append("It has side effects, but passes an idempotency key, so repeats are safe.")
    else:
        risk = Risk.LOW
        reason = f"retried through the project helper `{helper.name}` ({helper.what})"
        why.append(
            "No write or outside side effect is visible in the function, so a repeat is cheap."
        )
    return Hotspot(
        kind=Kind.RETRY_DECORATOR,
        pattern=f"@{use.label} (project helper)",
        path=use.path,
        start_line=use.start_line,
        end_line=use.end_line,
        function=use.function,
        excerpt=use.excerpt,
        risk=risk,
        reason=reason,
        fix=Fix(
            "manual",
            "@step",
            False,
            f"replace @{use.label} with @step(retry=RetryPolicy(...)), or rewrite the helper "
            "once as a durable step",
        ),
        refusal="project retry helper: no codemod rewrites its use sites",
        side_effects=eff.labels,
        start_col=use.start_col,
        end_col=use.start_col + len(use.label) + 1,  # the `@name` of the decorator line
        group=group,
        why=tuple(why),
    )
