"""Where the CPU goes while concurrent runs go through the API (issue 13, point 4): a profile.

Starts a scratch stack, warms it up, then runs `--runs` concurrent runs (official SDK,
`create_and_poll`, `--new-tokens` each, greedy) and records, for that pass:
  - CPU seconds per process role (inference worker, runs worker, API, Postgres, Temporal),
  - CPU seconds per thread of the inference worker (named by py-spy where it is a Python thread),
  - with `--py-spy`, a py-spy flame summary of the inference worker (top functions by own time).
Prints everything; appends to bench/RESULTS.md unless `--no-write`.

    PYTHONPATH=. .venv/bin/python bench/profile_api.py [--runs 8] [--new-tokens 64] [--py-spy]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import openai
from _common import _TICK, append_results, cpu_by_role, cpu_delta, descendants, machine, scratch_stack
from bench_inference import INSTRUCTIONS, MODEL, question


def _pid_of(root: int, needle: str) -> int:
    """The process under `root` (this stack, not another one on the machine) running `needle`."""
    for pid in descendants(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            return pid
    raise RuntimeError(f"no process with {needle!r} under {root}")


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of one process, keyed by thread id (py-spy names the Python ones)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        out[task.name] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--py-spy", action="store_true")
    parser.add_argument("--stack-env", action="append", default=[], help="KEY=VALUE for the stack")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    lines = [f"machine before: {machine()}"]

    def report(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    print(lines[0], flush=True)
    env = dict(kv.split("=", 1) for kv in args.stack_env)
    with scratch_stack("assistants-profile-", env=env) as stack:
        worker = _pid_of(stack.proc.pid, "--queue inference")

        async def go() -> None:
            client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=stack.create_key(), max_retries=0)
            a = await client.beta.assistants.create(model=MODEL, instructions=INSTRUCTIONS, temperature=0)

            async def one(i: int) -> int:
                t = await client.beta.threads.create(messages=[{"role": "user", "content": question(i)}])
                run = await client.beta.threads.runs.create_and_poll(
                    thread_id=t.id, assistant_id=a.id, max_completion_tokens=args.new_tokens, temperature=0
                )
                return run.usage.completion_tokens if run.usage else 0

            await one(0)  # warm-up
            spy = None
            if args.py_spy and shutil.which("py-spy"):
                out = Path(tempfile.mkdtemp()) / "spy.txt"
                spy = subprocess.Popen(  # noqa: ASYNC220 (starts at once; the pass is timed after)
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(worker),
                        "-f",
                        "raw",
                        "-o",
                        str(out),
                        "-r",
                        "50",
                        "-t",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(1.0)
            roles0, threads0 = cpu_by_role(stack.proc.pid), threads_cpu(worker)
            t = time.perf_counter()
            tokens = await asyncio.gather(*(one(i) for i in range(args.runs)))
            wall = time.perf_counter() - t
            roles, threads = (
                cpu_delta(roles0, cpu_by_role(stack.proc.pid)),
                cpu_delta(threads0, threads_cpu(worker)),
            )
            report(
                f"{args.runs} concurrent runs x {args.new_tokens} tokens through the API: {sum(tokens)} tokens "
                f"in {wall:.1f} s = {sum(tokens) / wall:.1f} tok/s"
            )
            report(
                "CPU seconds per process: "
                + ", ".join(f"{k} {v:.1f}" for k, v in sorted(roles.items(), key=lambda kv: -kv[1]))
                + f"; total {sum(roles.values()):.1f} of {wall * 2:.1f} available on 2 CPUs"
            )
            names: dict[str, str] = {}
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
                names = report_spy(out, report)
            own = sum(v for v in threads.values())
            report(
                f"inference worker: {roles.get('inference worker', 0.0):.1f} CPU s, of which its live threads "
                f"{own:.1f}: "
                + ", ".join(
                    f"{names.get(k, 'native thread ' + k)} {v:.1f}"
                    for k, v in sorted(threads.items(), key=lambda kv: -kv[1])
                    if v >= 0.05
                )
            )
            await client.close()

        asyncio.run(go())
    report(f"machine after: {machine()}")
    if not args.no_write:
        append_results("profile_api.py", lines)
    return 0


def report_spy(path: Path, report) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Top functions by own samples (the leaf of each stack), per thread, from py-spy's raw output;
    returns thread id -> Python thread name."""
    leaf: collections.Counter[str] = collections.Counter()
    names: dict[str, str] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        leaf[f"{frames[0]} :: {frames[-1]}"] += n
        if (m := re.match(r"thread \((\d+)\): (.*)", frames[0])) is not None:
            names[m.group(1)] = m.group(2)
    report(f"py-spy, inference worker, {total} samples; top leaves (thread :: function):")
    for name, n in leaf.most_common(15):
        report(f"  {n / total:6.1%}  {name}")
    return names


if __name__ == "__main__":
    sys.exit(main())
