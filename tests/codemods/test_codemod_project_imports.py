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


def ruff_isort_clean(project: Path, module: Path) -> None:
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "I", str(module)],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def rewrite(module: Path, source: str) -> str:
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(source)
    code, _ = transform_source(source, ["tenacity"], filename=str(module))
    module.write_text(code)
    return code


def test_the_settings_of_an_outer_project_apply_to_a_nested_one(tmp_path: Path):
    """A workspace member's own pyproject.toml without ruff settings: ruff reads the root's."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ruff.lint.isort]\nknown-first-party = ["shop"]\n'
    )
    member = tmp_path / "services" / "api"
    member.mkdir(parents=True)
    (member / "pyproject.toml").write_text("[project]\nname = 'api'\n")
    code = rewrite(member / "api_main.py", LEGACY)
    assert code.startswith(REWRITTEN_IMPORTS), code
    ruff_isort_clean(tmp_path, member / "api_main.py")


def test_the_files_own_package_is_first_party(tmp_path: Path):
    """A package outside the root and src/ (ruff's detect-same-package)."""
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    for name in ("__init__", "db", "payments"):
        (tmp_path / "lib" / "shop").mkdir(parents=True, exist_ok=True)
        (tmp_path / "lib" / "shop" / f"{name}.py").write_text("")
    module = tmp_path / "lib" / "shop" / "billing.py"
    code = rewrite(module, LEGACY)
    assert code.startswith(REWRITTEN_IMPORTS), code
    ruff_isort_clean(tmp_path, module)


def test_glob_patterns_and_relative_imports(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ruff.lint.isort]\nknown-first-party = ["shop*"]\n'
    )
    source = LEGACY.replace("from shop.db", "from shop_db").replace(
        "from shop.payments", "from .payments"
    )
    module = tmp_path / "app" / "billing.py"
    code = rewrite(module, source)
    expected = "from toolkit import RetryPolicy, step\n\nfrom shop_db import save\nfrom .payments"
    assert expected in code, code


def test_relative_imports_are_the_projects_own_without_any_project(tmp_path: Path):
    source = (
        "import logging\n\nfrom tenacity import retry, stop_after_attempt\n\n"
        "from .db import charge, save\n\n\n"
        "@retry(stop=stop_after_attempt(3), reraise=True)\ndef pay(order):\n"
        "    logging.info('paying')\n    save(order)\n    return charge(order)\n"
    )
    module = tmp_path / "loose" / "billing.py"
    assert first_party_modules(str(module)) == frozenset()
    code = rewrite(module, source)
    assert code.startswith(
        "import logging\n\nfrom toolkit import RetryPolicy, step\n\nfrom .db import"
    ), code


def test_names_sort_without_case_as_isort_and_ruff_do(tmp_path: Path):
    source = LEGACY.replace(
        "from tenacity import retry, stop_after_attempt\n",
        "from tenacity import retry, stop_after_attempt\nfrom Xlib import display\n",
    )
    make_project(tmp_path, LAYOUTS["ruff known-first-party"])
    code = rewrite(tmp_path / "app" / "billing.py", source)
    assert "from toolkit import RetryPolicy, step\nfrom Xlib import display\n" in code, code
