"""The API process loads no model, parser or sandbox library: it only validates, reads rows and
talks to Temporal (it reaches activities only through the workflows' typed references)."""

from __future__ import annotations

import subprocess
import sys

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


def test_api_imports_no_heavy_library() -> None:
    code = f"import sys, api.app; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"the API process imported {out.stdout.strip()}"
