"""File bytes -> clean text, one small module per format family.

`parse(filename, data)` picks the parser from the extension (the content sniffed where the name says
nothing). Unsupported formats raise UnsupportedFile, unreadable content InvalidFile; the ingestion
workflow turns both into a `failed` vector-store file with `last_error`, never a retry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from activities.parsing import html, office, pdf, structured, text
from activities.parsing.errors import InvalidFile, UnsupportedFile

_PARSERS: dict[str, Callable[[bytes], str]] = {
    **{ext: text.parse for ext in text.EXTENSIONS},
    **{ext: html.parse for ext in html.EXTENSIONS},
    ".csv": structured.parse_csv,
    ".tsv": structured.parse_tsv,
    ".json": structured.parse_json,
    ".jsonl": structured.parse_jsonl,
    ".pdf": pdf.parse,
    ".docx": office.parse_docx,
    ".pptx": office.parse_pptx,
}

SUPPORTED_EXTENSIONS = frozenset(_PARSERS)


def _sniff(data: bytes) -> Callable[[bytes], str] | None:
    head = data[:1024].lstrip().lower()
    if head.startswith(b"%pdf"):
        return pdf.parse
    if head.startswith((b"<!doctype html", b"<html")):
        return html.parse
    if data[:4] == b"PK\x03\x04":
        return None  # some zip container we cannot name without an extension
    return text.parse


def parse(filename: str, data: bytes) -> str:
    ext = PurePosixPath(filename.lower()).suffix
    parser = _PARSERS.get(ext) if ext else _sniff(data)
    if parser is None:
        raise UnsupportedFile(f"Files with extension [{ext or 'none'}] are not supported for file_search.")
    try:
        out = parser(data)
    except (InvalidFile, UnsupportedFile):
        raise
    except Exception as exc:  # noqa: BLE001 - any library failure on bad content means a bad file
        raise InvalidFile(
            f"The file could not be parsed as {ext or 'text'}: {type(exc).__name__}: {exc}"
        ) from exc
    out = out.strip()
    if not out:
        raise InvalidFile("The file contains no extractable text.")
    return out


__all__ = ["InvalidFile", "SUPPORTED_EXTENSIONS", "UnsupportedFile", "parse"]
