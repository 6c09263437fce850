"""PDF via pypdf: the text layer of each page (scanned images without text yield nothing -> failed)."""

from __future__ import annotations

import io

from pypdf import PdfReader

from activities.parsing.errors import InvalidFile


def parse(data: bytes) -> str:
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise InvalidFile("The file is not a PDF (no %PDF header).")
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            reader.decrypt("")
        except Exception as exc:  # noqa: BLE001
            raise InvalidFile("The PDF is encrypted.") from exc
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
    return "\n\n".join(p for p in pages if p)
