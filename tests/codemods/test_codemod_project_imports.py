"""Where ``from toolkit import`` goes in a real project: its own modules are told apart
from third-party ones as isort and ruff do, and ruff's import sorting agrees."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codemods._project import first_party_modules
from codemods.runner import transform_source

LEGACY = """\
import logging

from tenacity import retry, stop_after_attempt

from shop.db import save
from shop.payments import charge

log = logging.getLogger(__name__)


@retry(stop=stop_after_attempt(3), reraise=True)
def pay(order):
    save(order)
    return charge(order)
"""

REWRITTEN_IMPORTS = """\
import logging

from toolkit import RetryPolicy, step

from shop.db import save
from shop.payments import charge
"""

LAYOUTS = {
    "ruff known-first-party": {
        "pyproject.toml": '[tool.ruff.lint.isort]\nknown-first-party = ["shop"]\n',
    },
    "isort known_first_party in setup.cfg": {
        "setup.cfg": "[isort]\nprofile = black\nknown_first_party = shop, other\n",
    },
    "a package at the root": {
        "pyproject.toml": "[project]\nname = 'shop'\n",
        **{f"shop/{name}.py": "" for name in ("__init__", "db", "payments")},
    },
    "a package under src/": {
        "pyproject.toml": "",
        **{f"src/shop/{name}.py": "" for name in ("__init__", "db", "payments")},
    },
}


def make_project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    module = root / "app" / "billing.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(LEGACY)
    return module


@pytest.mark.parametrize("layout", LAYOUTS)
def test_toolkit_import_goes_before_the_projects_own_block(tmp_path: Path, layout: str):
    module = make_project(tmp_path, LAYOUTS[layout])
    assert "shop" in first_party_modules(str(module))
    code, _ = transform_source(LEGACY, ["tenacity"], filename=str(module))
    assert code.startswith(REWRITTEN_IMPORTS), code
    module.write_text(code)
    # ruff's isort rule, with the project's own settings (and src/ where it is used)
    settings = ["--config", "src = ['.', 'src']"] if layout == "a package under src/" else []
    if layout.startswith("isort"):  # ruff does not read setup.cfg: tell it what isort knows
        settings = ["--config", "lint.isort.known-first-party = ['shop']"]
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "I", *settings, str(module)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_a_project_the_first_non_stdlib_block_is_taken_as_third_party(tmp_path: Path):
    """Source given as a string (no file, no project): the old guess, unchanged."""
    code, _ = transform_source(LEGACY, ["tenacity"])
    assert code.startswith(
        textwrap.dedent(
            """\
            import logging

            from shop.db import save
            from shop.payments import charge
            from toolkit import RetryPolicy, step
            """
        )
    ), code


def test_a_comment_heading_the_projects_block_stays_with_it(tmp_path: Path):
    source = LEGACY.replace("\nfrom shop.db", "\n# our own\nfrom shop.db")
    module = make_project(tmp_path, LAYOUTS["ruff known-first-party"])
    code, _ = transform_source(source, ["tenacity"], filename=str(module))
    assert code.startswith(
        "import logging\n\nfrom toolkit import RetryPolicy, step\n\n# our own\nfrom shop.db"
    ), code


def test_unreadable_settings_are_ignored(tmp_path: Path):
    module = make_project(tmp_path, {"pyproject.toml": "not [toml", "setup.cfg": "no section"})
    (tmp_path / "shop").mkdir()
    assert first_party_modules(str(module)) >= {"shop", "app"}
