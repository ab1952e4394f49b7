"""Benchmark ``durable audit`` over a large real codebase.

Usage::

    .venv/bin/python bench/audit_bench.py --setup          # download the corpus (PyPI wheels)
    .venv/bin/python bench/audit_bench.py [--jobs N] [--repeat 3]

The corpus is unpacked under ``bench/corpus/audit/`` (gitignored): wheels of
django, sqlalchemy, sympy and celery, about 1.2 million lines of Python.
Prints files/s, lines/s and wall time per run, the machine and the date.

``--ansible`` measures the issue's speed target instead: the ansible 12.3.0
wheel (downloaded with pip into ``--cache``, default ``/work/cache/wheels``,
never into the repository) audited with 2 jobs, against a bare two-process
``ast.parse`` of the same Python files in the same run; the target is a
ratio of at most 2.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from codemods.audit import run_audit, scanner

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus" / "audit"
PACKAGES = ("django==5.2.19", "sqlalchemy==2.1.9", "sympy==1.14.0", "celery==5.7.0")


def setup() -> None:
    """Download the wheels with pip (no dependencies) and unpack them."""
    wheels = CORPUS / "_wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels)]
    subprocess.run([*cmd, *PACKAGES], check=True)
    for whl in sorted(wheels.glob("*.whl")):
        target = CORPUS / whl.stem
        if not target.exists():
            with zipfile.ZipFile(whl) as zf:
                zf.extractall(target)


ANSIBLE = "ansible==12.3.0"


def _parse_files(paths: list[str]) -> int:
    import ast

    n = 0
    for p in paths:
        try:
            ast.parse(Path(p).read_bytes(), filename=p)
            n += 1
        except (SyntaxError, ValueError, RecursionError):
            pass
    return n


def bare_parse(root: Path, jobs: int = 2) -> tuple[float, int]:
    """Wall seconds of a bare ``ast.parse`` of every ``.py`` under ``root`` (``jobs`` processes)."""
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(str(p) for p in root.rglob("*.py"))
    chunks = [files[i : i + 200] for i in range(0, len(files), 200)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        parsed = sum(pool.map(_parse_files, chunks))
    return time.perf_counter() - t0, parsed


def ansible_tree(cache: Path) -> Path:
    """The ansible 12.3.0 wheel, downloaded and unpacked under ``cache`` (once)."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / "ansible-12.3.0"
    if not (target / ".complete").exists():
        wheels = sorted(cache.glob("ansible-12.3.0-*.whl"))
        if not wheels:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache)]
            subprocess.run([*cmd, ANSIBLE], check=True)
            wheels = sorted(cache.glob("ansible-12.3.0-*.whl"))
        with zipfile.ZipFile(wheels[0]) as zf:
            zf.extractall(target)
        (target / ".complete").write_text(wheels[0].name)
    return target


def ansible_ratio(cache: Path, repeat: int) -> None:
    """Audit (2 jobs) vs bare two-process ast.parse of the ansible wheel, same run."""
    root = ansible_tree(cache)
    print(f"machine: {machine()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for i in range(repeat):
        load = os.getloadavg()[0]
        bare, parsed = bare_parse(root)
        t0 = time.perf_counter()
        report = run_audit([root], jobs=2)
        audit = time.perf_counter() - t0
        s = report.summary()
        print(
            f"run {i + 1}: {s['files_scanned']} files, {parsed} .py parsed by the bare pass in "
            f"{bare:.2f}s; audit {audit:.2f}s ({s['files_parsed']} parsed, {s['hotspots']} "
            f"hotspots): ratio {audit / bare:.2f} (target <= 2); load average {load:.1f}"
        )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--setup", action="store_true", help="download and unpack the corpus")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--parse-all",
        action="store_true",
        help="switch the text pre-filter off (parse every Python file) to measure what it saves",
    )
    parser.add_argument("--ansible", action="store_true", help="the ansible 12.3.0 ratio target")
    parser.add_argument("--cache", type=Path, default=Path("/work/cache/wheels"))
    args = parser.parse_args()
    if args.ansible:
        ansible_ratio(args.cache, args.repeat)
        return
    if args.setup:
        setup()
        return
    if args.parse_all:
        scanner.worth_parsing = lambda data: True  # workers are forked: they inherit it
    roots = [p for p in sorted(CORPUS.iterdir()) if p.is_dir() and p.name != "_wheels"]
    if not roots:
        sys.exit("no corpus: run with --setup first")
    print(f"machine: {machine()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"corpus: {', '.join(p.name for p in roots)}")
    for i in range(args.repeat):
        load = os.getloadavg()[0]
        c0 = _cpu()
        t0 = time.perf_counter()
        report = run_audit(roots, jobs=args.jobs)
        wall = time.perf_counter() - t0
        cpu = _cpu() - c0
        s = report.summary()
        print(
            f"run {i + 1}: {s['files_scanned']} files ({s['files_parsed']} parsed after the "
            f"pre-filter), {s['lines_scanned']:,} lines in {wall:.2f}s: "
            f"{s['files_scanned'] / wall:,.0f} files/s, {s['lines_scanned'] / wall:,.0f} lines/s; "
            f"{s['hotspots']} hotspots (high {s['by_risk']['high']}, medium "
            f"{s['by_risk']['medium']}, low {s['by_risk']['low']}), "
            f"{s['files_failed']} files not parsed; CPU {cpu:.2f}s (all processes), "
            f"load average before the run {load:.1f}"
        )


if __name__ == "__main__":
    main()
