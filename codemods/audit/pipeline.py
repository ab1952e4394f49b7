"""One audit run as ``durable audit`` does it: scan, then filter, dedupe and baseline.

:func:`audit` wraps :func:`codemods.audit.scanner.run_audit` with what makes
the result fit a team's workflow:

* paths become relative to the **repository root** (the nearest folder
  holding ``.git`` above the first audited path; else the audited folder), so
  findings, fingerprints and SARIF URIs do not depend on which folder was
  audited;
* test files are skipped unless asked for (:data:`config.TEST_GLOBS`);
* ``[tool.durable.audit]`` settings (exclude, select, ignore, min-risk) and
  ``# durable: ignore`` comments drop findings (suppressed ones are counted);
* excerpts of long sites show their retry lines (:mod:`excerpts`), not only the head;
* :func:`triage.dedupe` makes one finding per site;
* with a baseline, findings already in it move to ``report.known``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from codemods.audit.baseline import split_known
from codemods.audit.config import TEST_GLOBS, AuditConfig
from codemods.audit.excerpts import EXCERPT_LINES, site_excerpt
from codemods.audit.model import AuditReport, FileError, Hotspot
from codemods.audit.scanner import run_audit
from codemods.audit.suppress import is_suppressed
from codemods.audit.triage import dedupe


def repository_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds ``.git`` (folder or file)."""
    here = start.resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def base_folder(paths: Sequence[Path]) -> Path:
    """What report paths are relative to: the repository root, else the audited folder."""
    resolved = [p.resolve() for p in paths]
    repo = repository_root(resolved[0])
    if repo is not None and all(p == repo or repo in p.parents for p in resolved):
        return repo
    folders = [p if p.is_dir() else p.parent for p in resolved]
    return Path(os.path.commonpath(folders))


def _matches(path: str, patterns: Sequence[str]) -> bool:
    for g in patterns:
        g = g.strip("/")
        if fnmatch.fnmatch(path, g) or path.startswith(g + "/") or fnmatch.fnmatch(path, g + "/*"):
            return True
    return False


def audit(
    paths: Sequence[str | Path],
    config: AuditConfig | None = None,
    *,
    jobs: int | None = None,
    excludes: Sequence[str] = (),
    baseline_ids: set[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Audit ``paths`` with ``config``; hotspots worst first, one per site.

    ``excludes`` are extra globs (``--exclude``); ``baseline_ids`` the
    fingerprints of a baseline (None: no baseline).
    """
    config = config or AuditConfig()
    roots = [Path(p) for p in paths]
    base = base_folder(roots)
    globs = [*config.exclude, *excludes]
    scan_globs = [*globs, *(() if config.include_tests else TEST_GLOBS)]
    # globs with a folder part also apply to paths from the config's folder and the base
    config_dir = config.source.parent.resolve() if config.source else base
    path_globs = [g for g in globs if "/" in g.strip("/")]

    report = AuditReport(root=", ".join(str(p) for p in roots), base=str(base))
    report.config_file = str(config.source) if config.source else None
    offset = [0, 0]
    raw: list[Hotspot] = []
    for root in roots:

        def progress(done: int, total: int) -> None:
            if on_progress:
                on_progress(offset[0] + done, offset[1] + total)

        part = run_audit([root], jobs=jobs, excludes=scan_globs, on_progress=progress)
        offset[0] += part.files_scanned
        offset[1] += part.files_scanned
        report.files_scanned += part.files_scanned
        report.files_parsed += part.files_parsed
        report.lines_scanned += part.lines_scanned
        report.seconds += part.seconds
        folder = root.resolve() if root.is_dir() else None

        def rebased(rel: str, folder: Path | None = folder, root: Path = root) -> str:
            full = folder / rel if folder is not None else root.resolve()
            return Path(os.path.relpath(full, base)).as_posix()

        raw += [replace(h, path=rebased(h.path)) for h in part.hotspots]
        report.errors += [FileError(rebased(e.path), e.line, e.message) for e in part.errors]

    def dropped(h: Hotspot) -> bool:
        if not config.wants(h.kind, h.risk):
            return True
        if not path_globs:
            return False
        from_config = Path(os.path.relpath(base / h.path, config_dir)).as_posix()
        return _matches(h.path, path_globs) or _matches(from_config, path_globs)

    kept: list[Hotspot] = []
    lines: dict[str, list[str]] = {}
    for h in raw:
        if dropped(h):
            continue
        if h.path not in lines:
            try:
                text = (base / h.path).read_text(encoding="utf-8", errors="replace")
                lines[h.path] = text.splitlines()
            except OSError:
                lines[h.path] = []
        if is_suppressed(h, lines[h.path]):
            report.suppressed.append(h)
            continue
        if h.end_line - h.start_line + 1 > EXCERPT_LINES and lines[h.path]:
            h = replace(h, excerpt=site_excerpt(lines[h.path], h.start_line, h.end_line))
        kept.append(h)
    report.hotspots, report.merged = dedupe(kept)
    if baseline_ids is not None:
        report.hotspots, report.known, report.baseline_gone = split_known(
            report.hotspots, baseline_ids
        )
    report.errors = [e for e in report.errors if not _matches(e.path, path_globs)]
    report.errors.sort(key=lambda e: (e.path, e.line or 0))
    return report
