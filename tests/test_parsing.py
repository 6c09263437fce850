"""Each format's parser, alone: clean text out, permanent errors for bad or unsupported files."""

from __future__ import annotations

import pytest

from activities.parsing import InvalidFile, UnsupportedFile, parse
from tests.file_samples import corpus, make_docx, make_pdf, make_pptx


@pytest.mark.parametrize("name", list(corpus()))
def test_every_format_yields_its_rare_term(name: str) -> None:
    data, _question, term = corpus()[name]
    text = parse(name, data)
    assert term in text


def test_html_drops_scripts_and_markup() -> None:
    text = parse("page.html", corpus()["page.html"][0])
    assert "var x" not in text and "<p>" not in text and "Starfish" in text


def test_csv_rows_keep_their_headers() -> None:
    text = parse("salaries.csv", corpus()["salaries.csv"][0])
    assert "employee: Alice Zentrova; department: Engineering; salary: 120000" in text


def test_pdf_text_layer() -> None:
    assert parse("a.pdf", make_pdf("hello (world)\nsecond line")) == "hello (world)\nsecond line"


def test_docx_tables_and_paragraphs_in_order() -> None:
    text = parse("a.docx", make_docx(["first", "second"], [["k", "v"], ["a", "b"]]))
    assert text.splitlines() == ["first", "second", "k | v", "a | b"]


def test_pptx_slides_numbered() -> None:
    text = parse("a.pptx", make_pptx([("Title one", "body one"), ("Title two", "body two")]))
    assert text.index("Slide 1") < text.index("body one") < text.index("Slide 2") < text.index("body two")


@pytest.mark.parametrize(
    "name,data",
    [
        ("garbage.pdf", b"%PDF-1.4\n\x00\x01garbage that is not a pdf at all\xff\xfe"),
        ("notapdf.pdf", b"just some words"),
        ("broken.docx", b"PK\x03\x04 not really a zip"),
        ("broken.pptx", b"nonsense"),
        ("bad.json", b"{not json"),
        ("binary.txt", b"\x00\x01\x02\x03" * 100),
        ("empty.md", b"   \n\n"),
    ],
)
def test_unreadable_files_are_invalid(name: str, data: bytes) -> None:
    with pytest.raises(InvalidFile):
        parse(name, data)


@pytest.mark.parametrize("name", ["photo.png", "archive.zip", "sheet.xlsx", "movie.mp4"])
def test_unsupported_extensions(name: str) -> None:
    with pytest.raises(UnsupportedFile):
        parse(name, b"\x89PNG....")


def test_code_and_markdown_kept_verbatim() -> None:
    src = b'fn main() {\n    println!("hi");\n}\n'
    assert parse("main.rs", src) == src.decode().strip()
    assert parse("README", b"# Title\n\ntext") == "# Title\n\ntext"  # no extension: sniffed as text
