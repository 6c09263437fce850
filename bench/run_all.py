"""Run every benchmark in bench/ (what `make bench` does), each under a timeout, all within 15 min.

Scripts whose name starts with "_" are helpers, not benchmarks. A script that needs a database
(it reads DATABASE_URL and starts no stack itself) gets one: DATABASE_URL if set, else an
embedded Postgres in a scratch dir for the duration. Prints a summary with the load average
before and after (the numbers are only as quiet as the machine was) and appends it to
bench/RESULTS.md. Exit status 1 if any script failed or timed out.

    .venv/bin/python bench/run_all.py [--budget 900] [--only bench_runs.py,bench_api.py]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _common import ROOT, append_results, machine

BENCH = ROOT / "bench"
# Seconds each may take on this 2-core machine, unloaded, with margin; unknown scripts get DEFAULT.
TIMEOUTS = {
    "bench_generation_raw.py": 150,
    "bench_runs.py": 330,
    "bench_api.py": 150,
    "bench_retrieval.py": 330,
    "bench_streaming.py": 150,
    "bench_history.py": 200,
    "bench_vllm.py": 480,  # SEPARATE below: run with --only bench_vllm.py
    "bench_inference.py": 600,  # SEPARATE below: run with --only bench_inference.py
}
DEFAULT_TIMEOUT = 150
# The order they run in: the model benchmarks first, while the machine is coolest.
ORDER = [
    "bench_generation_raw.py",
    "bench_runs.py",
    "bench_api.py",
    "bench_streaming.py",
    "bench_retrieval.py",
    "bench_history.py",
]


# Run on their own, not by `make bench`: the chaos run takes about 10 minutes by itself; the vLLM
# server alone takes ~2.5 minutes to start here (and needs .vllm-venv from scripts/setup_vllm.sh).
# bench_inference.py: a stack plus every column at 1/8/16 concurrent, ~5 minutes on a quiet box.
# bench_retrieval_real.py: real text at 10k+ chunks, exact search per query, index builds; its
# embeddings are cached (.data/bench-cache), but a first run embeds for hours on 2 cores.
SEPARATE = {"chaos.py", "bench_vllm.py", "bench_inference.py", "bench_retrieval_real.py"}


def scripts(only: set[str] | None) -> list[Path]:
    found = [p for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.name != Path(__file__).name]
    found = [p for p in found if p.name not in SEPARATE or (only is not None and p.name in only)]
    found = [p for p in found if only is None or p.name in only]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(found, key=lambda p: (rank.get(p.name, len(ORDER)), p.name))


def needs_database(script: Path) -> bool:
    text = script.read_text()
    return "DATABASE_URL" in text and "scratch_stack" not in text and "start_stack" not in text


@contextlib.contextmanager
def database() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    from assistants.settings import Settings
    from stack.connect import ensure_database

    data_dir = Path(tempfile.mkdtemp(prefix="assistants-bench-db-"))
    data_dir.chmod(0o755)  # Postgres runs as an unprivileged user that must reach it
    try:
        with ensure_database(Settings(data_dir=data_dir, database_url=None)) as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(script: Path, timeout: float, env: dict[str, str]) -> tuple[str, float]:
    """Run one script in its own process group; on timeout SIGTERM it (it stops its stack), then SIGKILL."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, start_new_session=True)
    try:
        rc = proc.wait(timeout)
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        status = f"TIMED OUT after {timeout:.0f}s"
    return status, time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=900, help="seconds for all of them together")
    parser.add_argument("--only", default=None, help="comma-separated script names")
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget
    todo = scripts(set(args.only.split(",")) if args.only else None)
    before = machine()
    print(f"machine before: {before}", flush=True)
    summary: list[str] = []
    with contextlib.ExitStack() as stack:
        db_url: str | None = None
        for script in todo:
            left = deadline - time.monotonic()
            if left < 30:
                summary.append(f"{script.name}: SKIPPED (15-minute budget spent)")
                continue
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            if needs_database(script):
                db_url = db_url or stack.enter_context(database())
                env["DATABASE_URL"] = db_url
            print(f"\n== {script.name}", flush=True)
            status, took = run(script, min(TIMEOUTS.get(script.name, DEFAULT_TIMEOUT), left), env)
            summary.append(f"{script.name}: {status} in {took:.0f}s")
    after = machine()
    summary = [
        f"machine before: {before}",
        *summary,
        f"machine after: {after}",
        f"total {args.budget - (deadline - time.monotonic()):.0f}s of a {args.budget:.0f}s budget",
    ]
    print("\n== summary", *summary, sep="\n", flush=True)
    append_results("run_all.py (make bench)", summary)
    return 0 if all(": ok in " in line for line in summary[1:-2]) else 1


if __name__ == "__main__":
    sys.exit(main())
