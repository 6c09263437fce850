"""File bytes -> clean text, one small module per format family.

`parse(filename, data)` picks the parser from the extension (the content sniffed where the name says
nothing). Unsupported formats raise UnsupportedFile, unreadable or over-limit content InvalidFile;
the ingestion workflow turns both into a `failed` vector-store file with `last_error`, never a retry.
`ParseLimits` bounds what a file may expand to; `isolated.parse_file` runs this in a killable,
rlimited process (the only way the worker calls it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import PurePosixPath

from activities.parsing import text
from activities.parsing.errors import InvalidFile, UnsupportedFile
from activities.parsing.limits import ParseLimits, check_chars, check_zip

# extension -> (module, function). The format libraries (pypdf, python-docx, python-pptx, bs4) load
# on first use, so what imports this package (the workers, and the API through the workflows' typed
# activity references) does not load them.
_PARSERS: dict[str, tuple[str, str]] = {
    **{ext: ("text", "parse") for ext in text.EXTENSIONS},
    **{ext: ("html", "parse") for ext in (".html", ".htm", ".xhtml")},
    ".csv": ("structured", "parse_csv"),
    ".tsv": ("structured", "parse_tsv"),
    ".json": ("structured", "parse_json"),
    ".jsonl": ("structured", "parse_jsonl"),
    ".pdf": ("pdf", "parse"),
    ".docx": ("office", "parse_docx"),
    ".pptx": ("office", "parse_pptx"),
}

SUPPORTED_EXTENSIONS = frozenset(_PARSERS)
_ZIPPED = frozenset({".docx", ".pptx"})
# Formats whose text is about as long as the file: past 4 bytes a character the text is over the cap.
_TEXTUAL = frozenset(ext for ext, (module, _) in _PARSERS.items() if module in ("text", "html", "structured"))


def _load(kind: tuple[str, str]) -> Callable[[bytes], str]:
    module, name = kind
    fn: Callable[[bytes], str] = getattr(importlib.import_module(f"activities.parsing.{module}"), name)
    return fn


def _sniff(data: bytes) -> str | None:
    """The extension a nameless file's content looks like."""
    head = data[:1024].lstrip().lower()
    if head.startswith(b"%pdf"):
        return ".pdf"
    if head.startswith((b"<!doctype html", b"<html")):
        return ".html"
    if data[:4] == b"PK\x03\x04":
        return None  # some zip container we cannot name without an extension
    return ".txt"


def parse(filename: str, data: bytes, limits: ParseLimits | None = None) -> str:
    limits = limits or ParseLimits()
    ext = PurePosixPath(filename.lower()).suffix
    kind = ext if ext else _sniff(data)
    if kind not in _PARSERS:
        raise UnsupportedFile(f"Files with extension [{ext or 'none'}] are not supported for file_search.")
    if kind in _ZIPPED:
        check_zip(data, limits)
    if kind in _TEXTUAL and len(data) > 4 * limits.max_chars:
        check_chars(limits.max_chars + 1, limits)
    try:
        out = _load(_PARSERS[kind])(data)
    except (InvalidFile, UnsupportedFile):
        raise
    except Exception as exc:  # noqa: BLE001 - any library failure on bad content means a bad file
        raise InvalidFile(
            f"The file could not be parsed as {ext or 'text'}: {type(exc).__name__}: {exc}"
        ) from exc
    out = out.strip()
    if not out:
        raise InvalidFile("The file contains no extractable text.")
    check_chars(len(out), limits)
    return out


__all__ = ["InvalidFile", "ParseLimits", "SUPPORTED_EXTENSIONS", "UnsupportedFile", "parse"]
