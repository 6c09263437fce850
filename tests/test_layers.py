"""The layering contracts (`[tool.importlinter]` in pyproject.toml, checked by `make lint`) hold on
the code, and they fail on an import that breaks them: a check that cannot fail proves nothing.

No stack: `lint-imports` only reads the source (well under a second per run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ROOT_PACKAGES: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "root_packages"
]


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the packages are found in `tree`, not through the editable install.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def only_python(directory: str, names: list[str]) -> list[str]:
    """`copytree`'s ignore: what the import graph does not need (data files, bytecode)."""
    kept = [n for n in names if n.endswith(".py") or (Path(directory, n).is_dir() and n != "__pycache__")]
    return [n for n in names if n not in kept]


def test_the_code_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("assistants/_upward.py", "import cli.main\n", "assistants is not allowed to import cli"),
        ("assistants/db/_upward.py", "from api import app\n", "assistants is not allowed to import api"),
        ("activities/_upward.py", "import workflows.run\n", "activities is not allowed to import workflows"),
        ("workflows/_upward.py", "import worker.main\n", "workflows is not allowed to import worker"),
        ("api/_activities.py", "import activities.store\n", "api is not allowed to import activities"),
        (
            "workflows/_activities.py",
            "import activities.store\n",
            "workflows is not allowed to import activities",
        ),
    ],
)
def test_an_import_against_the_layers_fails_the_lint(
    tmp_path: Path, module: str, source: str, broken: str
) -> None:
    for package in ROOT_PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=only_python)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path).returncode == 0, "the copy must pass before it is broken"
    (tmp_path / module).write_text(source)
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout


def test_no_router_imports_another() -> None:
    """Routers are thin and independent: what several of them need (thread rows, function outputs,
    the model check, file storage) lives in a module of its own under api/, never in a router."""
    import ast

    routers = Path(__file__).resolve().parents[1] / "api" / "routers"
    offenders = []
    for path in sorted(routers.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("api.routers")]
    assert offenders == []
