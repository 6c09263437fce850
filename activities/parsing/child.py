"""The parser process: `python -m activities.parsing.child LIMITS_JSON FILENAME IN OUT`.

It limits itself (address space, CPU) before reading a byte, parses IN, and writes the text to
OUT (exit 0) or the permanent error as JSON to OUT.err (exit 3). Anything else (a crash, a signal
from RLIMIT_CPU, a kill on timeout) is read by the parent from the exit status.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

EXIT_PERMANENT = 3


def _limit(kind: int, value: int) -> None:
    _soft, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, hard))


def main(argv: list[str]) -> int:
    raw, filename, src, dst = argv
    spec = json.loads(raw)
    _limit(resource.RLIMIT_AS, int(spec["memory_bytes"]))
    # Soft limit: SIGXCPU (which ends the process) at cpu_seconds; SIGKILL one second later.
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    cpu = int(spec["cpu_seconds"])
    resource.setrlimit(
        resource.RLIMIT_CPU, (cpu, cpu + 1 if hard == resource.RLIM_INFINITY else min(cpu + 1, hard))
    )

    from activities.parsing import InvalidFile, ParseLimits, UnsupportedFile, parse

    out = Path(dst)
    try:
        text = parse(filename, Path(src).read_bytes(), ParseLimits(**spec))
    except (InvalidFile, UnsupportedFile) as exc:
        error = {"code": exc.code, "message": str(exc)}
    except MemoryError:
        error = {
            "code": "invalid_file",
            "message": f"Parsing the file needs more than {spec['memory_bytes'] // 1024**2} MiB of memory.",
        }
    else:
        out.write_text(text, encoding="utf-8", errors="replace")
        return 0
    out.with_suffix(".err").write_text(json.dumps(error))
    return EXIT_PERMANENT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
