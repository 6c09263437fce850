"""Parsing in a child process the worker can kill: a parser bomb costs that process, not the worker.

The child (activities/parsing/child.py) runs under RLIMIT_AS and RLIMIT_CPU; the parent waits at
most `timeout_seconds` of wall clock, heartbeating while it waits, and kills the child's process
group when time is up or the activity is cancelled. Every way a file can exhaust the parser ends
in InvalidFile (permanent); only a parser that could not start at all is a retryable error.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from activities.parsing.child import EXIT_PERMANENT
from activities.parsing.errors import InvalidFile, UnsupportedFile
from activities.parsing.limits import ParseLimits

HEARTBEAT_SECONDS = 5.0
_ROOT = Path(__file__).resolve().parents[2]  # so `-m activities.parsing.child` resolves to this code


class ParserCrashed(RuntimeError):
    """The parser process failed for a reason that is not the file's (retryable)."""


def _kill(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def parse_file(
    filename: str, src: Path, limits: ParseLimits, heartbeat: Callable[[], None] = lambda: None
) -> str:
    """The text of the file at `src` (its name picks the parser). Writes beside `src`."""
    out, log = src.with_name("text.out"), src.with_name("parser.log")
    with open(log, "wb") as log_file:  # noqa: ASYNC230 - creating an empty file
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "activities.parsing.child",
            json.dumps(limits.to_dict()),
            filename,
            str(src),
            str(out),
            cwd=_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout_seconds
    try:
        while proc.returncode is None:
            heartbeat()
            left = deadline - loop.time()
            if left <= 0:
                raise InvalidFile(
                    f"Parsing the file took longer than {limits.timeout_seconds:g} seconds; it was stopped."
                )
            try:
                await asyncio.wait_for(proc.wait(), timeout=min(HEARTBEAT_SECONDS, left))
            except TimeoutError:
                pass
    finally:
        if proc.returncode is None:  # timed out, or the activity was cancelled
            _kill(proc)
            await proc.wait()
    return await asyncio.to_thread(_result, proc.returncode, out, log, limits)


def _result(code: int, out: Path, log: Path, limits: ParseLimits) -> str:
    if code == 0:
        return out.read_text(encoding="utf-8")
    if code == EXIT_PERMANENT:
        error = json.loads(out.with_suffix(".err").read_text())
        kind = UnsupportedFile if error["code"] == UnsupportedFile.code else InvalidFile
        raise kind(error["message"])
    if code in (-signal.SIGXCPU, -signal.SIGKILL):  # RLIMIT_CPU: soft, then hard
        raise InvalidFile(
            f"Parsing the file used more than {limits.cpu_seconds} CPU seconds; it was stopped."
        )
    if code < 0:  # a parser library crashing on this content (e.g. out of memory in C code)
        raise InvalidFile(f"The parser crashed on this file (signal {-code}).")
    tail = log.read_bytes()[-2000:].decode(errors="replace")
    raise ParserCrashed(f"The parser process exited with status {code}: {tail}")
