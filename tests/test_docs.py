"""The README keeps its promises: the two quick-start commands and every setting documented."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from assistants.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def env_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.append(alias.choices[0] if isinstance(alias, AliasChoices) else f"ASSISTANTS_{name.upper()}")
    return names


def test_every_setting_is_documented() -> None:
    missing = [n for n in env_names() if f"`{n}`" not in README]
    assert not missing, f"README configuration table lacks {missing}"


def test_quick_start_is_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make up", "make test"]
