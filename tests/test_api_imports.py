"""The API process loads no activity code, model, parser or sandbox library: it only validates,
reads rows and talks to Temporal. It reaches the workflows through their typed run, update and
query references, and the workflows name activities through interfaces (workflows/activity_refs.py).

Each check imports `api.app` in a fresh interpreter, so what another test imported cannot hide or
fake a module here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "torch",
    "transformers",
    "xgrammar",
    "numpy",
    "pypdf",
    "docx",
    "pptx",
    "bs4",
    "jupyter_client",
    "e2b_code_interpreter",
)


@pytest.fixture(scope="module")
def api_modules() -> set[str]:
    """Every module in sys.modules once a fresh interpreter has imported api.app."""
    code = "import json, sys, api.app; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    modules = set(json.loads(out.stdout))
    assert "api.app" in modules and "workflows.run" in modules, "api.app did not import its workflows"
    return modules


def test_api_imports_no_activities_module(api_modules: set[str]) -> None:
    loaded = sorted(m for m in api_modules if m == "activities" or m.startswith("activities."))
    assert loaded == [], f"the API process imported {loaded}"


def test_api_imports_no_heavy_library(api_modules: set[str]) -> None:
    loaded = [m for m in HEAVY if m in api_modules]
    assert loaded == [], f"the API process imported {loaded}"
