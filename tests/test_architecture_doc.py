"""docs/architecture.md's "Who writes each table" stays true: every module that writes a table
(INSERT / UPDATE / DELETE in its SQL, or `assistants/db/objects.py`'s insert / patch / delete
named with the table) is listed in that table's row, and every table written is in the doc."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "activities", "workflows", "worker", "cli", "stack", "assistants")
SQL_WRITE = re.compile(r"\b(?:INSERT INTO|UPDATE|DELETE FROM)\s+([a-z_]+)\b")
OBJECTS_WRITE = re.compile(r"objects\.(?:insert|patch|delete)\(\s*\w+,\s*\"([a-z_]+)\"")


def tables() -> set[str]:
    made = set()
    for sql in (ROOT / "assistants" / "db" / "migrations").glob("*.sql"):
        made |= set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)", sql.read_text()))
    return made


def writers() -> dict[str, set[str]]:
    known = tables()
    out: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            for table in SQL_WRITE.findall(text) + OBJECTS_WRITE.findall(text):
                if table in known:
                    out[table].add(str(path.relative_to(ROOT)))
    return out


def documented() -> dict[str, set[str]]:
    section = (ROOT / "docs" / "architecture.md").read_text().split("## Who writes each table", 1)[1]
    section = section.split("\n## ", 1)[0]
    out: dict[str, set[str]] = defaultdict(set)
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or not cells[1].strip().startswith("`"):
            continue
        modules = set(re.findall(r"`([a-z_/]+\.py)`", cells[2]))
        for table in re.findall(r"`([a-z_]+)`", cells[1]):
            out[table] |= modules
    return out


def test_every_writer_of_every_table_is_documented() -> None:
    doc = documented()
    undocumented = {t: sorted(w - doc.get(t, set())) for t, w in writers().items() if w - doc.get(t, set())}
    assert undocumented == {}


def test_the_check_sees_the_writes() -> None:
    """The scan finds what it must: a few known writers (else the check above proves nothing)."""
    found = writers()
    assert "api/run_start.py" in found["runs"] and "assistants/db/thread_items.py" in found["thread_items"]
    assert "api/routers/assistants.py" in found["assistants"]  # through objects.insert
