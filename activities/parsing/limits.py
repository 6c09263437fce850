"""What one file may cost to parse, and the zip check that runs before anything is decompressed.

`.docx`/`.pptx` are zip files whose parts the libraries read whole: a few KB can declare GBs.
Python's zipfile stops each member at its declared size, so checking the central directory
(member count, declared sizes, compression ratios) bounds what decompression can produce.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from activities.parsing.errors import InvalidFile

if TYPE_CHECKING:  # not at run time: the parser child process imports this module
    from assistants.settings import Settings

# A member this small may compress as well as it likes (a run of identical table cells).
_RATIO_FLOOR_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    timeout_seconds: float = 300.0  # wall clock of one parse; the parser process is killed after it
    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS of the parser process
    cpu_seconds: int = 300  # RLIMIT_CPU of the parser process
    max_chars: int = 20_000_000  # extracted characters (about 5M tokens)
    max_unzipped_bytes: int = 512 * 1024**2  # declared uncompressed size of all zip members together
    max_zip_ratio: int = 200  # uncompressed/compressed size of any member over 1 MiB
    max_zip_members: int = 10_000

    @classmethod
    def from_settings(cls, s: Settings) -> ParseLimits:
        return cls(
            timeout_seconds=s.parse_timeout_seconds,
            memory_bytes=s.parse_memory_bytes,
            cpu_seconds=s.parse_cpu_seconds,
            max_chars=s.parse_max_chars,
            max_unzipped_bytes=s.parse_max_unzipped_bytes,
            max_zip_ratio=s.parse_max_zip_ratio,
            max_zip_members=s.parse_max_zip_members,
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def check_zip(data: bytes, limits: ParseLimits) -> None:
    """Refuse a zip bomb from its central directory alone (nothing is decompressed here)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InvalidFile(f"The file is not a valid zip container: {exc}") from exc
    if len(members) > limits.max_zip_members:
        raise InvalidFile(
            f"The file holds {len(members)} zip members, more than the limit of {limits.max_zip_members}."
        )
    total = sum(m.file_size for m in members)
    if total > limits.max_unzipped_bytes:
        raise InvalidFile(
            f"The file would decompress to {total} bytes, more than the limit of"
            f" {limits.max_unzipped_bytes} bytes (a zip bomb?)."
        )
    for m in members:
        if m.file_size > _RATIO_FLOOR_BYTES and m.file_size > limits.max_zip_ratio * max(m.compress_size, 1):
            raise InvalidFile(
                f"The zip member {m.filename!r} has a compression ratio of"
                f" {m.file_size // max(m.compress_size, 1)}:1, more than the limit of"
                f" {limits.max_zip_ratio}:1 (a zip bomb?)."
            )


def check_chars(chars: int, limits: ParseLimits) -> None:
    if chars > limits.max_chars:
        raise InvalidFile(
            f"The file's text has more than {limits.max_chars} characters, the limit for one file."
        )
