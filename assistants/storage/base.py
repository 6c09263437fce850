"""The storage interface. Methods are synchronous (boto3 and file I/O block): callers run them in a
thread. Bytes stream in and out in chunks so a 512 MiB upload never sits in memory whole."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1024 * 1024


class FileTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"file exceeds the {limit}-byte limit")
        self.limit = limit


def key_of(project_id: str, file_id: str) -> str:
    if "/" in project_id or "/" in file_id or file_id.startswith("."):
        raise ValueError("invalid id")
    return f"{project_id}/{file_id}"


class FileStorage(ABC):
    @abstractmethod
    def put(self, project_id: str, file_id: str, src: BinaryIO, max_bytes: int) -> int:
        """Store src's bytes; return their count. Raise FileTooLarge (storing nothing) past max_bytes."""

    @abstractmethod
    def iter_bytes(self, project_id: str, file_id: str) -> Iterator[bytes]:
        """The stored bytes, in chunks. FileNotFoundError when absent."""

    @abstractmethod
    def delete(self, project_id: str, file_id: str) -> None:
        """Remove the object; absent is fine (deletes are retried)."""

    def read(self, project_id: str, file_id: str) -> bytes:
        return b"".join(self.iter_bytes(project_id, file_id))


class LimitedReader:
    """Wraps a stream and raises FileTooLarge once more than `limit` bytes were read through it."""

    def __init__(self, src: BinaryIO, limit: int) -> None:
        self.src, self.limit, self.count = src, limit, 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.count += len(data)
        if self.count > self.limit:
            raise FileTooLarge(self.limit)
        return data


class ChainedReader:
    """A stream over several byte-chunk iterators in turn (an Upload's parts, read one after the
    other as one File), holding at most one chunk. Feeds an md5 as it goes."""

    def __init__(self, sources: Iterator[Iterator[bytes]]) -> None:
        self._sources = sources
        self._current: Iterator[bytes] = iter(())
        self._buffer = b""
        self.md5 = hashlib.md5(usedforsecurity=False)

    def _next_chunk(self) -> bytes:
        while True:
            chunk = next(self._current, None)
            if chunk is not None:
                return chunk
            source = next(self._sources, None)
            if source is None:
                return b""
            self._current = source

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise ValueError("ChainedReader reads in bounded chunks only")
        while len(self._buffer) < n:
            chunk = self._next_chunk()
            if not chunk:
                break
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        self.md5.update(out)
        return out
