"""`assistants sandbox run [--data-dir DIR] [--file FILE_ID ...] -- CODE`

Runs CODE in a fresh sandbox with the worker's backend and limits, and prints one JSON object
on its last line: {"stdout", "stderr", "error" (null or {"name", "value"}), "results", "files"}.
Exit status: 0 ran cleanly, 1 the code raised, 2 no sandbox / bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from typing import Any

from activities.sandbox.base import Execution, FileSink, FileSource, Result, Sandbox, SandboxError

OUTPUT_PURPOSE = "assistants_output"


def run_sandbox_cli(
    args: argparse.Namespace,
    *,
    source: FileSource | None = None,
    sink: FileSink | None = None,
    project_id: str | None = None,
) -> int:
    """`source` / `sink` are the Files store; without a sink, "files" lists produced /mnt/data paths."""
    code = _code_from_args(args.code)
    if not code.strip():
        _emit(
            _failure(
                "UsageError", "no CODE given: assistants sandbox run -- 'print(1)' (or '-' to read stdin)"
            )
        )
        return 2
    if args.files and source is None:
        _emit(_failure("UsageError", "--file needs the Files store, which this build does not provide yet"))
        return 2
    return asyncio.run(
        _run(code, list(args.files), source, sink, project_id or getattr(args, "project", None) or "default")
    )


def _code_from_args(tokens: list[str]) -> str:
    if tokens and tokens[0] == "--":
        tokens = tokens[1:]
    if tokens == ["-"]:
        return sys.stdin.read()
    return " ".join(tokens)


async def _run(
    code: str, file_ids: list[str], source: FileSource | None, sink: FileSink | None, project_id: str
) -> int:
    from activities.sandbox import provider_from_settings
    from assistants.settings import get_settings

    provider = provider_from_settings(get_settings())
    try:
        sbx = await provider.create()
    except SandboxError as e:
        _emit(_failure(type(e).__name__, str(e)))
        return 2
    try:
        inputs: dict[str, bytes] = {}
        for file_id in file_ids:
            assert source is not None
            name, data = await source.get(file_id)
            inputs[await sbx.write_file(name.rsplit("/", 1)[-1], data)] = data
        execution = await sbx.run_code(code)
        files = await _outputs(sbx, execution, inputs, sink, project_id)
    except SandboxError as e:
        _emit(_failure(type(e).__name__, str(e)))
        return 2
    finally:
        await sbx.kill()
        await provider.aclose()
    _emit(to_json(execution, files))
    return 1 if execution.error else 0


async def _outputs(
    sbx: Sandbox, execution: Execution, inputs: dict[str, bytes], sink: FileSink | None, project_id: str
) -> list[str]:
    """Files the code wrote (not the unchanged inputs) and, with a sink, the images it displayed."""
    produced: list[tuple[str, bytes | None]] = []
    for info in await sbx.list_files():
        data = None
        if info.path in inputs:
            data = await sbx.read_file(info.path)
            if data == inputs[info.path]:
                continue
        produced.append((info.path, data))
    if sink is None:
        return [path for path, _ in produced]
    ids = []
    for path, data in produced:
        content = data if data is not None else await sbx.read_file(path)
        ids.append(await sink.put(project_id, path.rsplit("/", 1)[-1], content, OUTPUT_PURPOSE))
    for i, r in enumerate(execution.results):
        if r.png is not None:
            ids.append(await sink.put(project_id, f"image_{i}.png", r.png, OUTPUT_PURPOSE))
    return ids


def result_to_json(r: Result) -> dict[str, Any]:
    out: dict[str, Any] = {"formats": r.formats(), "is_main_result": r.is_main_result}
    for name in r.formats():
        value = r.extra[name] if name in r.extra else getattr(r, name)
        out[name] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
    return out


def to_json(ex: Execution, files: list[str]) -> dict[str, Any]:
    return {
        "stdout": ex.stdout,
        "stderr": ex.stderr,
        "error": None
        if ex.error is None
        else {"name": ex.error.name, "value": ex.error.value, "traceback": ex.error.traceback},
        "results": [result_to_json(r) for r in ex.results],
        "files": files,
    }


def _failure(name: str, value: str) -> dict[str, Any]:
    return {"stdout": "", "stderr": "", "error": {"name": name, "value": value}, "results": [], "files": []}


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
