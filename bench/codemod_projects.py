"""Real projects, their own tests: does ``durable codemod --write`` break anything?

Usage::

    .venv/bin/python bench/codemod_projects.py [--project NAME] [--cache DIR] [--keep]

For each project below, the source distribution is downloaded from the package
index with ``pip download`` into ``--cache`` (outside the repository: their code
is never committed), unpacked twice (before / after), the project's retry-related
tests are run on the first copy, ``durable codemod --write`` rewrites the second
copy, and the same tests run on it. Each test that passed before and fails after
is printed with the codemod's notes for the files it touches: a new failure that
no note explains is a wrong rewrite.

The tests run in a virtualenv of their own (under ``--cache``) with the project's
test dependencies and this repository on ``PYTHONPATH`` (the rewritten code
imports ``toolkit``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path("/work/cache/codemod-projects")


@dataclass(frozen=True)
class Project:
    name: str
    version: str
    package: str  # the directory the codemod rewrites
    tests: tuple[str, ...]  # test files (or node ids) that exercise its retry code
    deps: tuple[str, ...] = ()  # what the tests need beyond pytest
    requirements: tuple[str, ...] = ()  # requirement files in the sdist to install
    touch: tuple[str, ...] = ()  # empty files the sdist lacks (a tests/__init__.py)
    copies: tuple[tuple[str, str], ...] = ()  # (source, target) files the tests expect


PROJECTS = [
    Project(
        "patroni",
        "4.1.5",
        "patroni",
        # its sdist lacks the tests/__init__.py helpers test_patroni.py imports
        ("tests/test_barman.py", "tests/test_utils.py", "tests/test_ctl.py"),
        ("psycopg2-binary", "mock", "requests"),
        ("requirements.txt",),
        ("tests/__init__.py",),
    ),
    Project(
        "streamlink",
        "7.1.3",
        "src/streamlink",
        ("tests/plugins/test_filmon.py", "tests/session/test_http.py"),
        (
            "requests-mock",
            "freezegun",
            "pytest-trio",
            "lxml",
            "isodate",
            "pycountry",
            "pycryptodome",
            "PySocks",
            "trio",
            "trio-websocket",
            "websocket-client",
        ),
        ("dev-requirements.txt",),
    ),
    Project(
        "s3cmd",
        "2.4.0",
        "S3",
        (),  # ships no tests: the rewrite is only checked to import
        ("python-dateutil", "python-magic"),
    ),
    Project(
        "apache-libcloud",
        "3.8.0",
        "libcloud",
        # test_vcloud.py: VCloud 1.5 create_node deploys the new vApp through the
        # loop the codemod rewrites (vcloud.py, "retry 3 times" around
        # ex_deploy_node), against recorded HTTP fixtures, offline.
        # test_retry_limit.py and test_google.py drive the sites it refuses
        # (utils/retry.py's time-budget retry, common/google.py's retry around
        # super().request): they must stay green because those files are untouched.
        (
            "libcloud/test/compute/test_vcloud.py",
            "libcloud/test/common/test_retry_limit.py",
            "libcloud/test/common/test_google.py",
        ),
        # requirements-tests.txt pins libvirt-python (a C build): only what these need
        ("requests", "requests-mock", "cryptography", "pyopenssl"),
        (),
        (),
        (("libcloud/test/secrets.py-dist", "libcloud/test/secrets.py"),),
    ),
]


def run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 1800
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def fetch(project: Project, cache: Path) -> Path:
    """The unpacked sdist (downloaded once)."""
    where = cache / f"{project.name}-{project.version}"
    if where.is_dir():
        return where
    cache.mkdir(parents=True, exist_ok=True)
    result = run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(cache),
            f"{project.name}=={project.version}",
        ]
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    archive = next(cache.glob(f"{project.name}-{project.version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(cache, filter="data")
    return where


def test_env(project: Project, cache: Path, source: Path) -> Path:
    """A virtualenv with pytest and the project's test dependencies."""
    home = cache / f"venv-{project.name}"
    python = home / "bin" / "python"
    if not (home / ".complete").exists():
        venv.create(home, with_pip=True, clear=True)
        wanted = ["pytest", *project.deps, *_runtime_deps()]
        for name in project.requirements:
            wanted += ["-r", str(source / name)]
        result = run([str(python), "-m", "pip", "install", "-q", *wanted])
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip().splitlines()[-1])
        (home / ".complete").write_text("")
    return python


def _runtime_deps() -> list[str]:
    """What ``toolkit`` imports at run time (the rewritten code imports it)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    return re.findall(r'"([^"]+)"', block)


def pytest_outcomes(python: Path, tree: Path, tests: tuple[str, ...]) -> dict[str, str]:
    """node id -> outcome for the given tests run in ``tree``."""
    if not tests:
        return {}
    report = tree / ".outcomes.txt"
    env = {"PYTHONPATH": f"{tree}:{tree / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    options = ["-q", "-p", "no:cacheprovider", "-rA", "--tb=line"]
    options.append("--continue-on-collection-errors")
    result = run([str(python), "-m", "pytest", *options, *tests], cwd=tree, env=env)
    report.write_text(result.stdout)
    outcomes: dict[str, str] = {}
    for line in result.stdout.splitlines():
        m = re.match(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", line)
        if m:
            outcomes[m.group(2)] = m.group(1)
    return outcomes


def codemod_write(tree: Path, package: str) -> dict[str, Any]:
    """Run ``durable codemod --write`` on the package; its JSON report."""
    result = run(
        [
            sys.executable,
            "-m",
            "toolkit",
            "codemod",
            str(tree / package),
            "--write",
            "--json",
            "--jobs",
            "2",
        ],
        cwd=ROOT,
    )
    if result.returncode not in (0, 3):
        raise RuntimeError(f"codemod failed: {result.stderr.strip()[-300:]}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def measure(project: Project, cache: Path) -> dict[str, Any]:
    source = fetch(project, cache)
    before, after = (
        cache / "work" / f"{project.name}-before",
        cache / "work" / f"{project.name}-after",
    )
    for tree in (before, after):
        if tree.exists():
            shutil.rmtree(tree)
        shutil.copytree(source, tree)
        for name in project.touch:
            (tree / name).touch()
        for origin, target in project.copies:
            shutil.copyfile(tree / origin, tree / target)
    report = codemod_write(after, project.package)
    sites = [(r["path"], s) for r in report["results"] for s in r["sites"]]
    python = test_env(project, cache, source) if project.tests else Path(sys.executable)
    first = pytest_outcomes(python, before, project.tests)
    second = pytest_outcomes(python, after, project.tests)
    broken = sorted(t for t, o in first.items() if o == "PASSED" and second.get(t) != "PASSED")
    compiled = run([sys.executable, "-m", "compileall", "-q", str(after / project.package)])
    return {
        "project": f"{project.name}=={project.version}",
        "sites": sites,
        "passed_before": sum(o == "PASSED" for o in first.values()),
        "passed_after": sum(o == "PASSED" for o in second.values()),
        "broken": broken,
        "compiles": compiled.returncode == 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", action="append", help="only these projects")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    chosen = [p for p in PROJECTS if not args.project or p.name in args.project]
    status = 0
    for project in chosen:
        try:
            result = measure(project, args.cache)
        except (RuntimeError, subprocess.TimeoutExpired, StopIteration) as exc:
            print(f"{project.name}: not measured: {exc}")
            status = 1
            continue
        print(
            f"== {result['project']}: tests passed before {result['passed_before']}, "
            f"after {result['passed_after']}; rewritten code compiles: {result['compiles']}"
        )
        for path, site in result["sites"]:
            notes = "; ".join(site["notes"])
            print(
                f"  {path}:{site['line']}: {site['selector']}: {site['action']}: "
                f"{site['reason']}" + (f" [notes: {notes}]" if notes else "")
            )
        for test in result["broken"]:
            print(f"  NEW FAILURE: {test}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
