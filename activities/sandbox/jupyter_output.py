"""Jupyter iopub messages of one cell turned into an `Execution`, each stream capped in size."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from activities.sandbox.base import Execution, ExecutionError, Result

MIME_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}
BINARY_FIELDS = {"png", "jpeg", "pdf"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Collector:
    """Turns iopub messages into an Execution, keeping at most `cap` bytes of each stream."""

    def __init__(self, cap: int, results_cap: int) -> None:
        self.cap = cap
        self.results_cap = results_cap
        self.results_size = 0
        self.streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}
        self.results: list[Result] = []
        self.error: ExecutionError | None = None
        self.count: int | None = None
        self.dropped = False

    def add(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            name = "stderr" if content.get("name") == "stderr" else "stdout"
            text = content.get("text", "")
            room = self.cap - self.sizes[name]
            if room > 0:
                self.streams[name].append(
                    text[:room] + ("\n[output truncated]\n" if len(text) > room else "")
                )
            self.sizes[name] += len(text)
        elif kind in ("execute_result", "display_data"):
            data = content.get("data", {})
            self.results_size += sum(
                len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values()
            )
            if self.results_size <= self.results_cap:
                self.results.append(_result(data, main=kind == "execute_result"))
            elif not self.dropped:
                self.dropped = True
                self.streams["stderr"].append(f"\n[results over {self.results_cap} bytes dropped]\n")
        elif kind == "error":
            tb = "\n".join(_ANSI.sub("", line) for line in content.get("traceback", []))
            self.error = ExecutionError(content.get("ename", "Error"), content.get("evalue", ""), tb)
        elif kind == "execute_input":
            self.count = content.get("execution_count")

    def execution(self) -> Execution:
        return Execution(
            stdout="".join(self.streams["stdout"]),
            stderr="".join(self.streams["stderr"]),
            results=self.results,
            error=self.error,
            execution_count=self.count,
        )


def _result(data: dict[str, Any], *, main: bool) -> Result:
    r = Result(is_main_result=main)
    for mime, value in data.items():
        name = MIME_FIELDS.get(mime)
        if name is None:
            r.extra[mime] = value
        elif name in BINARY_FIELDS:
            setattr(r, name, base64.b64decode(value) if isinstance(value, str) else value)
        else:
            setattr(r, name, value)
    return r


def timed_out(out: Collector, timeout: float, *, restarted: bool) -> Execution:
    ex = out.execution()
    note = (
        " The sandbox did not respond to the interrupt and was restarted: variables are lost, files kept."
        if restarted
        else ""
    )
    ex.error = ExecutionError(
        "TimeoutError", f"Execution exceeded the time limit of {timeout:g} seconds.{note}"
    )
    return ex
