"""Plain text, Markdown and source code: decoded as they are (their markup is meaningful text)."""

from __future__ import annotations

from activities.parsing.errors import InvalidFile

EXTENSIONS = (
    ".txt",
    ".text",
    ".md",
    ".markdown",
    ".rst",
    ".tex",
    ".log",
    ".ini",
    ".cfg",
    ".toml",
    ".yaml",
    ".yml",
    ".xml",
    ".py",
    ".pyi",
    ".js",
    ".mjs",
    ".cjs",
    ".jsx",
    ".ts",
    ".tsx",
    ".java",
    ".kt",
    ".scala",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".cxx",
    ".hpp",
    ".cs",
    ".go",
    ".rs",
    ".rb",
    ".php",
    ".sh",
    ".bash",
    ".zsh",
    ".ps1",
    ".swift",
    ".m",
    ".r",
    ".lua",
    ".pl",
    ".sql",
    ".css",
    ".scss",
    ".vue",
    ".svelte",
    ".dart",
    ".hs",
    ".ex",
    ".exs",
    ".erl",
    ".clj",
    ".jl",
)


def decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise InvalidFile("The file looks binary, not text.")
    for enc in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            pass
    text = data.decode("latin-1")
    # Mostly control characters means this was never text.
    bad = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if bad > len(text[:8192]) * 0.05:
        raise InvalidFile("The file looks binary, not text.")
    return text


def parse(data: bytes) -> str:
    return decode(data).replace("\r\n", "\n")
