"""The `assistants` command: the contract scripts and operators use.

Each subcommand imports its implementation lazily so `assistants keys list` never loads torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="state directory (default: $ASSISTANTS_DATA_DIR or ./.data)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistants", description="Self-hosted OpenAI Assistants API server"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the whole stack in the foreground")
    _data_dir_arg(up)
    up.add_argument("--host", default=None)
    up.add_argument("--port", type=int, default=None)

    api = sub.add_parser("api", help="run the API server alone")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)

    sub.add_parser("migrate", help="apply the database migrations as the schema owner, then exit")
    worker = sub.add_parser("worker", help="run a worker alone")
    worker.add_argument("--queue", action="append", choices=["runs", "inference", "all"], default=None)

    prep = sub.add_parser(
        "prepare-model", help="convert the bundled default model into the data dir (idempotent)"
    )
    _data_dir_arg(prep)

    keys = sub.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create")
    _data_dir_arg(kc)
    kc.add_argument("--project", default="default")
    kc.add_argument("--name", default="")
    kl = ksub.add_parser("list")
    _data_dir_arg(kl)
    kr = ksub.add_parser("revoke")
    _data_dir_arg(kr)
    kr.add_argument("key_id")

    sandbox = sub.add_parser("sandbox", help="code interpreter sandbox tools")
    ssub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    sr = ssub.add_parser("run", help="run CODE in a fresh sandbox; prints one JSON object last")
    _data_dir_arg(sr)
    sr.add_argument(
        "--file", action="append", default=[], dest="files", help="a File id to place in /mnt/data"
    )
    sr.add_argument("--project", default="default", help="project that owns the Files the code produces")
    sr.add_argument("code", nargs=argparse.REMAINDER)

    hooks = sub.add_parser("webhooks", help="manage webhook endpoints")
    hsub = hooks.add_subparsers(dest="webhooks_command", required=True)
    hc = hsub.add_parser("create")
    _data_dir_arg(hc)
    hc.add_argument("--project", default="default")
    hc.add_argument("url")
    hl = hsub.add_parser("list")
    _data_dir_arg(hl)
    hl.add_argument("--project", default="default")
    hd = hsub.add_parser("delete")
    _data_dir_arg(hd)
    hd.add_argument("webhook_id")

    runs = sub.add_parser("runs", help="inspect runs (reads the stack's Postgres)")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    rl = rsub.add_parser("list", help="runs, newest first: id, status, model, project, thread, age")
    _data_dir_arg(rl)
    rl.add_argument("--status", action="append", default=[], help="only this status (repeatable)")
    rl.add_argument(
        "--older-than",
        type=_duration,
        default=None,
        help="created at least this long ago: 90, 90s, 15m, 2h, 1d",
    )
    rl.add_argument("--project", default=None, help="only this project")
    rl.add_argument("--limit", type=int, default=100)
    rl.add_argument("--json", action="store_true", help="a JSON array instead of a table")

    usage = sub.add_parser("usage", help="tokens by project, model and day (UTC), from finished runs")
    _data_dir_arg(usage)
    usage.add_argument("--days", type=int, default=30, help="runs created in the last N days")
    usage.add_argument("--project", default=None, help="only this project")
    usage.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    return parser


def _duration(text: str) -> float:
    from cli.ops import duration_s

    return duration_s(text)


def _apply_data_dir(args: argparse.Namespace) -> None:
    import os

    if getattr(args, "data_dir", None) is not None:
        os.environ["ASSISTANTS_DATA_DIR"] = str(args.data_dir.expanduser().resolve())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _apply_data_dir(args)
    if args.command == "up":
        from stack.supervisor import run_up

        return run_up(host=args.host, port=args.port)
    if args.command == "api":
        from api.server import serve

        return serve(host=args.host, port=args.port)
    if args.command == "worker":
        # Torch's OpenMP threads spin while they wait for work (libgomp's default). Beside the API,
        # Temporal and Postgres on the same cores, every wake-up of those preempts one thread while
        # the other spins: measured 2.4x the CPU per token and 2.7x less throughput for 8 runs
        # (bench/profile_api.py). Passive waiting, unless the operator set a policy; it must be in
        # the environment before torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from worker.main import run_worker

        return run_worker(args.queue or ["all"])
    if args.command == "migrate":
        from assistants.db.migrate import apply_migrations
        from assistants.settings import get_settings

        url = get_settings().database_url
        if not url:
            raise SystemExit("DATABASE_URL is not set")
        for name in apply_migrations(url):
            print(f"applied {name}")  # noqa: T201
        return 0
    if args.command == "prepare-model":
        from activities.llm.prepare import prepare_default_model
        from assistants.settings import get_settings

        print(prepare_default_model(get_settings()))  # noqa: T201
        return 0
    if args.command == "keys":
        from cli.keys import run_keys

        return run_keys(args)
    if args.command == "sandbox":
        from cli.sandbox import run_sandbox

        return run_sandbox(args)
    if args.command == "runs":
        from cli.ops import run_runs

        return run_runs(args)
    if args.command == "usage":
        from cli.ops import run_usage

        return run_usage(args)
    if args.command == "webhooks":
        from cli.webhooks import run_webhooks

        return run_webhooks(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
