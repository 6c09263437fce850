"""Optional test prerequisites (a sandbox runtime, a browser, an S3 server): a missing one skips on
a developer's machine and fails in CI (`CI` set, as CI runners do), where a skip would hide it."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI requires it)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
