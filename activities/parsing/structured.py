"""CSV/TSV and JSON: rows as `header: value` lines, so each chunk keeps the meaning of its cells."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from activities.parsing.errors import InvalidFile
from activities.parsing.text import decode


def _table(data: bytes, delimiter: str | None) -> str:
    text = decode(data)
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        return ""
    header, body = rows[0], rows[1:]
    if not body:
        return ", ".join(header)
    out = []
    for row in body:
        cells = [
            f"{h.strip() or f'column {i + 1}'}: {v.strip()}"
            for i, (h, v) in enumerate(zip(header, row, strict=False))
        ]
        out.append("; ".join(cells))
    return "\n".join(out)


def parse_csv(data: bytes) -> str:
    return _table(data, None)


def parse_tsv(data: bytes) -> str:
    return _table(data, "\t")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def parse_json(data: bytes) -> str:
    try:
        return _pretty(json.loads(decode(data)))
    except json.JSONDecodeError as exc:
        raise InvalidFile(f"The file is not valid JSON: {exc}") from exc


def parse_jsonl(data: bytes) -> str:
    try:
        return "\n".join(_pretty(json.loads(ln)) for ln in decode(data).splitlines() if ln.strip())
    except json.JSONDecodeError as exc:
        raise InvalidFile(f"The file is not valid JSON Lines: {exc}") from exc
