"""Small documents of every supported format, built in memory, for parser and ingestion tests."""

from __future__ import annotations

import io
import json


def make_pdf(text: str) -> bytes:
    """A minimal one-page PDF whose text layer holds `text` (Helvetica, one line per \\n)."""
    lines = text.split("\n")
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for ln in lines:
        esc = ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({esc}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return out.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    doc = docx.Document()
    for p in paragraphs:
        doc.add_paragraph(p)
    if table:
        t = doc.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, val in enumerate(row):
                t.cell(r, c).text = val
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def make_pptx(slides: list[tuple[str, str]]) -> bytes:
    from pptx import Presentation

    prs = Presentation()
    for title, body in slides:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


# One document per format, each about a distinct topic with one rare term, so a search can tell
# which file answers a question.
CORPUS: dict[str, tuple[bytes, str, str]] = {}


def corpus() -> dict[str, tuple[bytes, str, str]]:
    """filename -> (bytes, paraphrased question, rare exact term)."""
    if CORPUS:
        return CORPUS
    CORPUS.update(
        {
            "volcano.txt": (
                b"Mount Kelvaro is a stratovolcano. Its last eruption buried the valley in ash and lava flows "
                b"destroyed three villages. Magma chambers beneath it are monitored by seismographs.",
                "which mountain erupted and covered a valley with ash?",
                "Kelvaro",
            ),
            "baking.md": (
                b"# Sourdough guide\n\nFeed the starter with flour and water, let the dough rise overnight, "
                b"then bake the bread at 250 degrees. The Quibbleton method folds the dough every hour.",
                "how do I make bread rise with a starter?",
                "Quibbleton",
            ),
            "page.html": (
                b"<html><head><title>Tide pools</title><script>var x=1;</script></head><body><h1>Tide pools</h1>"
                b"<p>Starfish, sea anemones and crabs live in rocky tide pools along the ocean shore. "
                b"The Vembrook reef hosts rare purple urchins.</p></body></html>",
                "what animals live in rocky pools by the sea?",
                "Vembrook",
            ),
            "salaries.csv": (
                b"employee,department,salary\nAlice Zentrova,Engineering,120000\nBob Marsh,Finance,95000\n",
                "how much is the engineering employee paid?",
                "Zentrova",
            ),
            "config.json": (
                json.dumps(
                    {
                        "service": "payment gateway",
                        "retries": 3,
                        "timeout_seconds": 30,
                        "provider": "Plixtor payments processor for credit card transactions",
                    }
                ).encode(),
                "what handles credit card transactions in the payment gateway?",
                "Plixtor",
            ),
            "report.pdf": (
                make_pdf(
                    "Quarterly astronomy report.\nThe telescope observed a comet near Jupiter.\n"
                    "Comet Draxley-7 has a bright tail of ice and dust."
                ),
                "what did the telescope see near a planet?",
                "Draxley",
            ),
            "minutes.docx": (
                make_docx(
                    [
                        "Board meeting minutes.",
                        "The board approved the new hospital wing for cardiology patients.",
                        "Dr. Ophelant will lead the heart surgery department.",
                    ],
                    [["item", "cost"], ["hospital wing", "4 million"]],
                ),
                "who will run the cardiac surgery unit?",
                "Ophelant",
            ),
            "deck.pptx": (
                make_pptx(
                    [
                        ("Electric cars", "Battery range of electric vehicles improved to 500 km."),
                        ("Charging", "The Trundex fast charger fills a car battery in twenty minutes."),
                    ]
                ),
                "how quickly can an EV battery be recharged?",
                "Trundex",
            ),
            "sort.py": (
                b'def bubble_sort(items):\n    """Sort a list in place by swapping neighbours (Wobbleford order)."""\n'
                b"    for i in range(len(items)):\n        for j in range(len(items) - i - 1):\n"
                b"            if items[j] > items[j + 1]:\n                items[j], items[j + 1] = items[j + 1], items[j]\n",
                "function that orders a list by swapping adjacent elements",
                "Wobbleford",
            ),
        }
    )
    return CORPUS
