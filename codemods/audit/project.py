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

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codemods.audit.effects import Effects
from codemods.audit.model import Fix, Hotspot, Kind, Risk

if TYPE_CHECKING:
    from codemods._use_sites import Definition


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
    helpers: list[HelperDef],
    uses: list[UseSite],
    seen: set[tuple[str, int]],
    files: dict[str, str] | None = None,
) -> list[Hotspot]:
    """One hotspot per use site of a project retry helper (``seen``: (path, line) reported).

    ``files`` maps each scanned file's relative path to the file: with it, each use is
    answered as ``durable codemod`` answers it (the ``project-retry`` codemod's reason,
    with the codemods' decision on the helper's definition)."""
    by_name: dict[str, list[HelperDef]] = {}
    for h in helpers:
        by_name.setdefault(h.name, []).append(h)
    by_module = {module_of(rel): rel for rel in files or {}}
    definitions: dict[HelperDef, Definition | None] = {}
    out: list[Hotspot] = []
    for use in uses:
        name = use.resolved.rsplit(".", 1)[-1]
        found = [h for h in by_name.get(name, ()) if _matches(use.resolved, h, module_of(use.path))]
        if not found or (use.path, use.start_line) in seen:
            continue
        helper = found[0]
        seen.add((use.path, use.start_line))
        answer = None
        if files is not None:
            from codemods._use_sites import use_reason  # libcst loads only when asked

            if helper not in definitions:
                definitions[helper] = _definition(helper, by_module, files)
            module = use.resolved.rpartition(".")[0]
            answer = use_reason(use.label, module, definitions[helper])
        out.append(use_hotspot(use, helper, answer))
    return out


def _definition(
    helper: HelperDef, by_module: dict[str, str], files: dict[str, str]
) -> Definition | None:
    """The helper's definition with the codemods' decision on it (as ``durable codemod``
    reads it for the uses in other files of its run)."""
    from codemods import decide  # the codemods (libcst) load only when asked
    from codemods._use_sites import Definition, decision_for, definition_spans

    rel = by_module.get(helper.module)
    if rel is None:
        return None
    try:
        source = Path(files[rel]).read_text(encoding="utf-8")
        spans = definition_spans(ast.parse(source))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    span = spans.get(helper.qualname) or spans.get(helper.name)
    if span is None:
        return None
    return Definition(rel, span[0], span[1], decision_for(decide(source, files[rel]), span))


def use_hotspot(use: UseSite, helper: HelperDef, answer: tuple[str, str] | None = None) -> Hotspot:
    """The finding for one use of a project helper, ranked by what the decorated code does.

    ``answer``: the ``project-retry`` codemod's (reason, definition's policy) for the use."""
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
    note = (
        f"replace @{use.label} with @step(retry=RetryPolicy(...)), or rewrite the helper "
        "once as a durable step"
    )
    refusal = "project retry helper: no codemod rewrites its use sites"
    if answer is not None:
        refusal, policy = answer
        read = f"; policy read: {policy}" if policy else ""
        note = f"{note}; the project-retry codemod leaves it: {refusal}{read}"
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
        fix=Fix("manual", "@step", False, note),
        refusal=refusal,
        side_effects=eff.labels,
        start_col=use.start_col,
        end_col=use.start_col + len(use.label) + 1,  # the `@name` of the decorator line
        group=group,
        why=tuple(why),
    )
