"""Benchmark: ``durable codemod`` in diff mode over a large real codebase.

Downloads the wheel of a pure-Python package from the package index (``pip download``),
unpacks it under ``bench/corpus/`` (ignored by git) and runs every codemod over its
source, changing nothing. Prints files per second, lines per second, and what the
codemods found, as a Markdown table row for ``bench/README.md``.

    python bench/codemod_bench.py                      # pip==24.2 and Django==5.1.4
    python bench/codemod_bench.py --package rich==13.9.4 --jobs 2
    python bench/codemod_bench.py --path some/checkout --jobs 1
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
DEFAULT_PACKAGES = ("pip==24.2", "Django==5.1.4")

sys.path.insert(0, str(HERE.parent))

from codemods.runner import iter_python_files, run  # noqa: E402


def fetch(spec: str) -> Path:
    """Download and unpack the wheel of ``spec`` once; the folder of its source."""
    name, _, version = spec.partition("==")
    target = CORPUS / f"{name.lower()}-{version or 'latest'}"
    if target.is_dir():
        return target
    download = CORPUS / "_dl"
    download.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    subprocess.run(
        [*command, "-q", "-d", str(download), spec],
        check=True,
    )
    wheels = sorted(download.glob(f"{name.replace('-', '_')}-{version}*.whl"), key=os.path.getmtime)
    wheels = wheels or sorted(download.glob(f"{name}-{version}*.whl"), key=os.path.getmtime)
    wheels = wheels or sorted(
        (w for w in download.glob("*.whl") if w.name.lower().startswith(name.lower())),
        key=os.path.getmtime,
    )
    if not wheels:
        raise SystemExit(f"no wheel downloaded for {spec}")
    with zipfile.ZipFile(wheels[-1]) as archive:
        archive.extractall(target)
    return target


def measure(label: str, root: Path, jobs: int) -> dict[str, object]:
    """Run every codemod in diff mode over ``root``; timings and counts."""
    files = list(iter_python_files([root]))
    lines = sum(len(p.read_bytes().splitlines()) for p in files)
    started = time.perf_counter()
    results = list(run([root], jobs=jobs))
    seconds = time.perf_counter() - started
    statuses = Counter(r.status for r in results)
    actions = Counter(s.action for r in results for s in r.sites)
    by_codemod = Counter((s.selector, s.action) for r in results for s in r.sites)
    return {
        "corpus": label,
        "files": len(results),
        "lines": lines,
        "jobs": jobs,
        "seconds": seconds,
        "files_per_s": len(results) / seconds,
        "lines_per_s": lines / seconds,
        "would_rewrite_files": statuses["rewritten"],
        "failed_files": statuses["failed"],
        "sites": dict(actions),
        "by_codemod": {f"{k[0]}:{k[1]}": v for k, v in sorted(by_codemod.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", action="append", help="NAME==VERSION to download")
    parser.add_argument("--path", action="append", help="an existing folder to scan")
    parser.add_argument("--jobs", type=int, action="append", help="worker processes")
    parser.add_argument(
        "--no-precheck",
        action="store_true",
        help="run libcst on every file (the cost of a file that holds retry code)",
    )
    args = parser.parse_args()
    if args.no_precheck:
        os.environ["DURABLE_CODEMOD_NO_PRECHECK"] = "1"
    corpora: list[tuple[str, Path]] = [(p, Path(p)) for p in args.path or []]
    if not corpora:
        corpora = [(spec, fetch(spec)) for spec in (args.package or DEFAULT_PACKAGES)]
    jobs_list = args.jobs or [1, os.cpu_count() or 1]
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        "| corpus | files | lines | jobs | seconds | files/s | lines/s | files to rewrite |"
        " sites rewritten / skipped / kept | failed files |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, root in corpora:
        for jobs in dict.fromkeys(jobs_list):
            r = measure(label, root, jobs)
            sites = r["sites"]
            assert isinstance(sites, dict)
            found = " / ".join(str(sites.get(k, 0)) for k in ("rewritten", "skipped", "kept"))
            print(
                f"| {label} | {r['files']} | {r['lines']} | {jobs} | {r['seconds']:.1f} |"
                f" {r['files_per_s']:.1f} | {r['lines_per_s']:.0f} | {r['would_rewrite_files']} |"
                f" {found} | {r['failed_files']} |",
                flush=True,
            )
            print(f"<!-- {label} jobs={jobs}: {r['by_codemod']} -->", flush=True)


if __name__ == "__main__":
    main()
