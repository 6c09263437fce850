"""HTML: visible text only (scripts, styles and markup dropped), block elements on their own lines."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from activities.parsing.text import decode

EXTENSIONS = (".html", ".htm", ".xhtml")


def parse(data: bytes) -> str:
    soup = BeautifulSoup(decode(data), "lxml")
    for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    body = soup.get_text("\n")
    lines = [re.sub(r"[ \t\xa0]+", " ", ln).strip() for ln in body.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return f"{title}\n\n{text}" if title and title not in text[:200] else text
