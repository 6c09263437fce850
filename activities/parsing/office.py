"""Word (.docx) and PowerPoint (.pptx): paragraphs, tables and slide text in document order."""

from __future__ import annotations

import io

import docx
from pptx import Presentation


def parse_docx(data: bytes) -> str:
    doc = docx.Document(io.BytesIO(data))
    parts: list[str] = []
    # Walk the body in order so tables stay where they were between paragraphs.
    for block in doc.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            text = "".join(node.text or "" for node in block.iter() if node.tag.endswith("}t"))
            if text.strip():
                parts.append(text)
        elif tag == "tbl":
            for row in block.iter():
                if row.tag.endswith("}tr"):
                    cells = [
                        "".join(t.text or "" for t in c.iter() if t.tag.endswith("}t")).strip()
                        for c in row
                        if c.tag.endswith("}tc")
                    ]
                    parts.append(" | ".join(cells))
    return "\n".join(parts)


def parse_pptx(data: bytes) -> str:
    prs = Presentation(io.BytesIO(data))
    slides: list[str] = []
    for number, slide in enumerate(prs.slides, 1):
        lines = [f"Slide {number}"]
        for shape in slide.shapes:
            if shape.has_text_frame:
                lines += [p for p in (para.text.strip() for para in shape.text_frame.paragraphs) if p]
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    lines.append(" | ".join(c.text.strip() for c in row.cells))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                lines.append(f"Notes: {notes}")
        slides.append("\n".join(lines))
    return "\n\n".join(slides)
