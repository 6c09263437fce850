"""What every bench script shares: the machine line, percentiles, a scratch stack, RESULTS.md.

Not a benchmark itself (the leading underscore keeps `bench/run_all.py` from running it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
if str(ROOT) not in sys.path:  # `tests.stackutil` lives in the repo, not in the installed packages
    sys.path.insert(0, str(ROOT))

from tests.stackutil import StackHandle, own_stack  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line naming the hardware and software the numbers came from, and how busy it was."""
    import torch
    import transformers

    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}), torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}, device {device}, "
        f"load avg {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (1/5/15 min)"
    )


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile; q in [0, 1]."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Cell:
    """One column at one concurrency level: what bench_inference.py's table prints (every column,
    bench_vllm.py's raw vLLM one included, returns this one class)."""

    tps: float  # aggregate completion tokens / wall seconds
    ttft: list[float] = field(default_factory=list)  # seconds, one per request (may be empty)
    latency: list[float] = field(default_factory=list)  # seconds, one per request
    short: int = 0  # requests that wrote fewer than the asked-for tokens
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process role in the pass
    wall: float = 0.0  # seconds the measured pass took

    def text(self) -> str:
        ttft = f"{pct(self.ttft, 0.5):.2f}" if self.ttft else "-"
        lat = f"{pct(self.latency, 0.5):.2f} / {pct(self.latency, 0.95):.2f}" if self.latency else "-"
        warn = f" ({self.short} short)" if self.short else ""
        return f"{self.tps:.1f} tok/s, TTFT {ttft} s, lat {lat} s{warn}"


@contextlib.contextmanager
def scratch_stack(prefix: str, env: dict[str, str] | None = None) -> Iterator[StackHandle]:
    """A fresh `assistants up` in a temp dir; 0755 because Postgres runs as an unprivileged user."""
    # `assistants up` runs in its own session: turn SIGTERM (run_all's timeout) into an exception
    # so the stack is stopped and removed instead of left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with own_stack(prefix, env=env, timeout=300) as stack:
        try:
            yield stack
        except BaseException:
            print(f"--- last lines of {stack.log_path}:\n{stack.log_tail(40)}", file=sys.stderr)
            raise


def append_results(script: str, lines: list[str]) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    new = not RESULTS.exists()
    with RESULTS.open("a") as f:
        if new:
            f.write("# Benchmark results\n\nAppended by the scripts in bench/; newest last.\n")
        f.write(f"\n## {stamp}: {script}\n\n")
        f.writelines(f"- {line}\n" for line in lines)


# --- where the CPU goes: seconds per process role, for a profile of one pass ---------------------
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
ROLES = (  # first match wins; matched against the process's command line
    ("inference worker", "--queue inference"),
    ("runs worker", "--queue runs"),
    ("API", " api --host"),
    ("postgres", "postgres"),
    ("temporal", "temporal"),
)


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds incl. reaped children) of one process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return int(fields[1]), (utime + stime + cutime + cstime) / _TICK


def _role(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    return next((role for role, needle in ROLES if needle in cmd), "supervisor and other")


def _stats() -> dict[int, tuple[int, float]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (s := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = s
    return stats


def descendants(root: int, stats: dict[int, tuple[int, float]] | None = None) -> set[int]:
    """`root` and every process below it."""
    stats = _stats() if stats is None else stats
    tree, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        tree.add(pid)
        frontier += [p for p, (parent, _) in stats.items() if parent == pid and p not in tree]
    return tree


def cpu_by_role(root: int) -> dict[str, float]:
    """CPU seconds used so far by `root` and every process below it, summed per role. A child
    reaped between two snapshots moves into its parent's counted children, so deltas stay right."""
    stats = _stats()
    out: dict[str, float] = {}
    for pid in descendants(root, stats):
        if pid in stats:
            role = _role(pid)
            out[role] = out.get(role, 0.0) + stats[pid][1]
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(set(before) | set(after))}
