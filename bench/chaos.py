"""Chaos: mixed runs through the official SDK while parts of the stack are SIGKILLed (issue 11.6).

Starts its own `assistants up` in a temp dir, then runs --runs mixed runs, --concurrency at a
time, each on its own thread: plain, forced function call (+ submit outputs), forced
code_interpreter, forced file_search (a small file in a vector store), and streaming clients
(`runs.stream` with an event handler; the forced-function kind also streams its submit). Every
3-8 s (random) it SIGKILLs one live part: the runs worker, the inference worker, the API,
the Temporal dev server or the Postgres postmaster (pids re-read from DATA/pids each time). It
stops killing once the last run is created (or --duration has passed), lets everything settle
(at most --settle seconds), then prints, side by side:

  - runs started, per terminal status, lost (not terminal at the end);
  - duplicated messages (more than one assistant message per run, or one no step points to),
    duplicated steps (more than one message_creation step per run, a tool call id in two steps,
    more steps than the run's recorded turns), duplicated files (assistants_output files that
    no step or message refers to);
  - stream clients whose concatenated text deltas differ from the stored message;
  - every kill (part, time) and how long each part took to come back (new pid; /health 200).

Clients retry as a patient application would: the SDK with max_retries=8 (503s are expected
while Postgres is away), and connection errors caught in the loops below, since a client that
gives up is a measurement problem, not a lost run. POSTs are not idempotent: a run created by a
request whose response was lost is found again on its thread. A stream that breaks resumes from
the server's GET .../runs/{id}/events with Last-Event-ID (the SDK has no resume of its own; the
id is read off the SSE bytes by the HTTP transport, and the same event handler goes on).

    .venv/bin/python bench/chaos.py [--runs 50] [--concurrency 5] [--duration 540] [--settle 300]
        [--seed 1] [--keep] [--no-write]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import openai
import psycopg
from _common import append_results, machine, pct
from openai import AssistantEventHandler, Stream
from openai.lib.streaming import AssistantStreamManager
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Run, Text, TextDelta
from openai.types.beta.threads.run_submit_tool_outputs_params import ToolOutput
from psycopg.rows import dict_row

from stack.processes import pid_alive
from tests.stackutil import StackHandle, start_stack

MODEL = "smollm2-135m-instruct"
PARTS = ("worker-runs", "worker-inference", "api", "temporal", "postgres")
KINDS = ("plain", "function", "code_interpreter", "file_search", "stream", "stream_function")
TERMINAL = ("completed", "incomplete", "failed", "cancelled", "expired")
STOPS = (*TERMINAL, "requires_action")
MAX_TOKENS = 40
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PROMPTS = {
    "plain": "Name three colors.",
    "function": "What is the weather in Paris?",
    "code_interpreter": "Use Python to compute 6 * 7 and plot the numbers 1, 4, 9.",
    "file_search": "What does the zorblat eat?",
    "stream": "Tell me a very short story about a lighthouse.",
    "stream_function": "What is the weather in Oslo?",
}
DOC = b"# Zorblat\nThe zorblat is a purple fish that lives in Lake Quibble and eats moonweed at night.\n"
CLIENT_ERRORS = (
    openai.APIConnectionError,
    openai.APITimeoutError,
    openai.InternalServerError,
    httpx2.HTTPError,
)
T = TypeVar("T")
# The SDK marks the Assistants API deprecated; that is the API this server exists to serve.
warnings.filterwarnings("ignore", category=DeprecationWarning)


# --- clients -----------------------------------------------------------------------------------


class _IdSniffer(httpx2.SyncByteStream):
    """Passes SSE bytes through, noting the id of each complete event (for Last-Event-ID)."""

    def __init__(self, inner: httpx2.SyncByteStream, holder: SniffingTransport) -> None:
        self.inner, self.holder = inner, holder

    def __iter__(self) -> Iterator[bytes]:
        buf, pending = b"", None
        for chunk in self.inner:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                line = line.rstrip(b"\r")
                if line.startswith(b"id:"):
                    pending = int(line[3:].strip())
                elif not line and pending is not None:
                    self.holder.last_event_id, pending = pending, None
            yield chunk

    def close(self) -> None:
        self.inner.close()


class SniffingTransport(httpx2.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.last_event_id: int | None = None

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        resp = super().handle_request(request)
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            assert isinstance(resp.stream, httpx2.SyncByteStream)
            resp.stream = _IdSniffer(resp.stream, self)
        return resp


def make_client(stack: StackHandle, key: str) -> tuple[openai.OpenAI, SniffingTransport]:
    transport = SniffingTransport()
    http = openai.DefaultHttpxClient(transport=transport)
    return openai.OpenAI(
        base_url=stack.base_url, api_key=key, max_retries=8, timeout=120, http_client=http
    ), transport


class Collector(AssistantEventHandler):
    """Text deltas per message id, as the SDK hands them to the application."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, str] = collections.defaultdict(str)

    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        msg = self.current_message_snapshot
        if msg is not None:
            self.texts[msg.id] += delta.value or ""

    def rearm(self) -> Collector:
        """Let this handler, with its snapshots, take the resumed stream (the SDK has no resume)."""
        self._AssistantEventHandler__stream = None  # type: ignore[attr-defined]
        self._iterator = self.__stream__()
        return self


def tool_outputs(run: Run, temperature: int) -> list[ToolOutput]:
    assert run.required_action is not None
    out = json.dumps({"temperature": temperature, "unit": "c"})
    return [{"tool_call_id": c.id, "output": out} for c in run.required_action.submit_tool_outputs.tool_calls]


# --- one run per job ---------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    thread_id: str | None = None
    run_id: str | None = None
    status: str | None = None
    client_retries: int = 0
    adopted: bool = False  # the run was created by a request whose answer was lost
    stream_breaks: list[str] = field(default_factory=list)
    streamed: dict[str, str] = field(default_factory=dict)  # message id -> concatenated deltas
    error: str | None = None


class Job:
    def __init__(self, chaos: Chaos, kind: str) -> None:
        self.chaos, self.kind = chaos, kind
        self.client, self.transport = make_client(chaos.stack, chaos.key)
        self.out = Outcome(kind)

    def retry(self, fn: Callable[[], T]) -> T:
        while True:
            try:
                return fn()
            except CLIENT_ERRORS:
                if time.monotonic() > self.chaos.deadline:
                    raise
                self.out.client_retries += 1
                time.sleep(1 + random.random())

    def run(self) -> Outcome:
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported as a client failure, never hidden
            self.out.error = f"{type(e).__name__}: {e}"[:300]
        return self.out

    def _run(self) -> None:
        kind, runs = self.kind, self.client.beta.threads.runs
        thread = self.retry(
            lambda: self.client.beta.threads.create(messages=[{"role": "user", "content": PROMPTS[kind]}])
        )
        self.out.thread_id = thread.id
        args = self.chaos.run_args[kind]
        if kind.startswith("stream"):
            self._stream(partial(runs.stream, thread_id=thread.id, **args))
        else:
            self._create(partial(runs.create, thread_id=thread.id, **args))
        self._poll()

    def _create(self, create: Callable[[], Run]) -> Run:
        while True:
            try:
                run = self.retry(create)
                self._known(run.id)
                return run
            except openai.BadRequestError as e:
                found = self._adopt()
                if found is None:
                    raise RuntimeError(f"create refused and no run on the thread: {e}") from e
                return found

    def _adopt(self) -> Run | None:
        """The run a lost response created: the newest on the thread."""
        assert self.out.thread_id is not None
        tid = self.out.thread_id
        page = self.retry(lambda: self.client.beta.threads.runs.list(thread_id=tid, limit=1))
        if not page.data:
            return None
        self.out.adopted = True
        self._known(page.data[0].id)
        return page.data[0]

    def _known(self, run_id: str) -> None:
        if self.out.run_id is None:
            self.out.run_id = run_id
            self.chaos.created(run_id)

    def _poll(self) -> None:
        assert self.out.thread_id is not None
        runs, tid = self.client.beta.threads.runs, self.out.thread_id
        while True:
            rid = self.out.run_id
            assert rid is not None
            run = self.retry(partial(runs.retrieve, rid, thread_id=tid))
            self.out.status = run.status
            if run.status in TERMINAL or time.monotonic() > self.chaos.deadline:
                return
            if run.status == "requires_action" and run.required_action is not None:
                submit = partial(
                    runs.submit_tool_outputs, rid, thread_id=tid, tool_outputs=tool_outputs(run, 21)
                )
                with contextlib.suppress(
                    openai.BadRequestError, openai.ConflictError
                ):  # a lost submit counted
                    self.retry(submit)
            time.sleep(0.5)

    # streaming clients
    def _stream(self, open_stream: Callable[..., AssistantStreamManager[Any]]) -> None:
        handler = Collector()
        self._consume(lambda: open_stream(event_handler=handler), handler, submitting=False)
        run = handler.current_run
        if run is None or run.status != "requires_action" or run.required_action is None:
            return
        second = Collector()
        submit = self.client.beta.threads.runs.submit_tool_outputs_stream
        tid = self.out.thread_id
        assert tid is not None
        outputs = tool_outputs(run, -3)
        self._consume(
            lambda: submit(run_id=run.id, thread_id=tid, tool_outputs=outputs, event_handler=second),
            second,
            submitting=True,
        )

    def _consume(
        self, open_stream: Callable[[], AssistantStreamManager[Any]], h: Collector, submitting: bool
    ) -> None:
        """Read a stream to its stop event; when it breaks, resume it from the events endpoint
        (or, when a submit did not land, submit again)."""
        opener = open_stream
        while True:
            try:
                with opener() as s:
                    s.until_done()
            except Exception as e:  # noqa: BLE001 - any break: go on as a client would
                # A refused POST may be a retry whose first try went through (an active run, outputs
                # already taken): the run's events tell.
                self.out.stream_breaks.append(
                    f"{'submit' if submitting else 'run'}: {type(e).__name__}: {e}"[:160]
                )
                if time.monotonic() > self.chaos.deadline:
                    raise
                time.sleep(1 + random.random())
            if h.current_run is not None:
                self._known(h.current_run.id)
            self.out.streamed.update(h.texts)
            if h.current_run is not None and h.current_run.status in STOPS:
                return
            if self.out.run_id is None and self._adopt() is None:
                opener = open_stream  # nothing was created: create it again
                continue
            rid, tid = self.out.run_id, self.out.thread_id
            assert rid is not None and tid is not None
            now = self.retry(partial(self.client.beta.threads.runs.retrieve, rid, thread_id=tid))
            # Still waiting for the outputs: the submit did not land, so submit again (resuming
            # the events after requires_action would wait for ever, correctly).
            opener = (
                open_stream if submitting and now.status == "requires_action" else partial(self._events, h)
            )

    def _events(self, h: Collector) -> AssistantStreamManager[Collector]:
        headers = {"OpenAI-Beta": "assistants=v2"}
        if self.transport.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.transport.last_event_id)
        request = partial(
            self.client.get,
            f"/threads/{self.out.thread_id}/runs/{self.out.run_id}/events",
            cast_to=Run,
            stream=True,
            stream_cls=Stream[AssistantStreamEvent],
            options={"headers": headers},
        )
        return AssistantStreamManager(request, event_handler=h.rearm())


# --- the killer --------------------------------------------------------------------------------


@dataclass
class Kill:
    part: str
    pid: int
    at: float  # seconds since the chaos began
    back_after: float | None = None  # a new live pid for the part
    healthy_after: float | None = None  # /health answered 200 again


class Killer(threading.Thread):
    def __init__(
        self, stack: StackHandle, t0: float, rng: random.Random, every: tuple[float, float], relentless: bool
    ) -> None:
        super().__init__(daemon=True, name="killer")
        self.stack, self.t0, self.rng, self.every, self.relentless = stack, t0, rng, every, relentless
        self.kills: list[Kill] = []
        self.stop_killing = threading.Event()
        self.finish = threading.Event()

    def run(self) -> None:
        next_at: float | None = time.monotonic() + self.rng.uniform(*self.every)
        while not self.finish.is_set():
            now = time.monotonic()
            self._watch(now)
            if next_at is None and all(k.healthy_after is not None for k in self.kills):
                next_at = now + self.rng.uniform(*self.every)  # the clock starts once all is back
            if not self.stop_killing.is_set() and next_at is not None and now >= next_at:
                self._kill_one(now)
                next_at = now + self.rng.uniform(*self.every) if self.relentless else None
            time.sleep(0.2)

    def _kill_one(self, now: float) -> None:
        pids = self.stack.pids()
        live = [p for p in PARTS if p in pids and pid_alive(pids[p])]
        if not live:
            return
        part = self.rng.choice(live)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[part], signal.SIGKILL)
            self.kills.append(Kill(part, pids[part], now - self.t0))

    def _watch(self, now: float) -> None:
        pending = [k for k in self.kills if k.back_after is None or k.healthy_after is None]
        if not pending:
            return
        pids = self.stack.pids()
        healthy = None
        for k in pending:
            since = now - self.t0 - k.at
            pid = pids.get(k.part)
            if k.back_after is None and pid not in (None, k.pid) and pid_alive(pid):  # type: ignore[arg-type]
                k.back_after = since
            if k.back_after is not None and k.healthy_after is None:  # workers: pollers lag the pid
                healthy = self.stack.healthy() if healthy is None else healthy
                if healthy:
                    k.healthy_after = since


# --- the whole thing ---------------------------------------------------------------------------


class Chaos:
    def __init__(self, stack: StackHandle, key: str, args: argparse.Namespace) -> None:
        self.stack, self.key, self.args = stack, key, args
        self.deadline = float("inf")
        self.run_ids: list[str] = []
        self._lock = threading.Lock()
        self.run_args: dict[str, dict[str, Any]] = {}
        self.killer: Killer | None = None

    def created(self, run_id: str) -> None:
        with self._lock:
            if run_id not in self.run_ids:
                self.run_ids.append(run_id)
            if len(self.run_ids) >= self.args.runs and self.killer is not None:
                self.killer.stop_killing.set()

    def prepare(self) -> None:
        """Assistants and the vector store, before anything is killed."""
        client, _ = make_client(self.stack, self.key)
        base: dict[str, Any] = {"model": MODEL, "temperature": 0, "instructions": "Be brief."}
        plain = client.beta.assistants.create(**base)
        fn = client.beta.assistants.create(**base, tools=[WEATHER])  # type: ignore[list-item]
        code = client.beta.assistants.create(**base, tools=[{"type": "code_interpreter"}])
        store = client.vector_stores.create(name="chaos")
        vs_file = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=("zorblat.md", DOC)
        )
        assert vs_file.status == "completed", vs_file.last_error
        search = client.beta.assistants.create(
            **base,
            tools=[{"type": "file_search"}],
            tool_resources={"file_search": {"vector_store_ids": [store.id]}},
        )
        forced_fn = {"type": "function", "function": {"name": "get_weather"}}
        tokens = {"max_completion_tokens": MAX_TOKENS}
        self.run_args = {
            "plain": {"assistant_id": plain.id, **tokens},
            "function": {"assistant_id": fn.id, "tool_choice": forced_fn, **tokens},
            "code_interpreter": {
                "assistant_id": code.id,
                "tool_choice": {"type": "code_interpreter"},
                "max_completion_tokens": 120,
            },
            "file_search": {"assistant_id": search.id, "tool_choice": {"type": "file_search"}, **tokens},
            "stream": {"assistant_id": plain.id, **tokens},
            "stream_function": {"assistant_id": fn.id, "tool_choice": forced_fn, **tokens},
        }

    def go(self) -> tuple[list[Outcome], Killer, float]:
        args, rng = self.args, random.Random(self.args.seed)
        kinds = [KINDS[i % len(KINDS)] for i in range(args.runs)]
        rng.shuffle(kinds)
        t0 = time.monotonic()
        kill_until = t0 + args.duration
        self.deadline = kill_until + args.settle
        self.killer = Killer(self.stack, t0, rng, args.kill_every, args.relentless)
        self.killer.start()
        todo = collections.deque(enumerate(kinds))
        outcomes: list[Outcome | None] = [None] * len(kinds)
        self.jobs: list[Job] = []
        lock = threading.Lock()

        def client() -> None:  # daemon threads: a client stuck in a read cannot hold the report up
            while True:
                with lock:
                    if not todo:
                        return
                    i, kind = todo.popleft()
                if time.monotonic() > kill_until:
                    outcomes[i] = Outcome(kind, error="not started: --duration spent")
                    continue
                job = Job(self, kind)
                with lock:
                    self.jobs.append(job)
                outcomes[i] = job.run()

        threads = [
            threading.Thread(target=client, daemon=True, name=f"client-{n}") for n in range(args.concurrency)
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and time.monotonic() < self.deadline + 30:
            if time.monotonic() > kill_until:
                self.killer.stop_killing.set()
            time.sleep(0.5)
        self.killer.stop_killing.set()
        for job in self.jobs:
            if all(job.out is not o for o in outcomes):  # still running at the deadline: report what it has
                job.out.error = (
                    job.out.error or f"client still running at the deadline (status {job.out.status})"
                )
                outcomes[outcomes.index(None)] = job.out
        # Restart delays of the last kills: wait for the parts to come back (bounded by --settle).
        while any(k.healthy_after is None for k in self.killer.kills) and time.monotonic() < self.deadline:
            time.sleep(0.5)
        self.killer.finish.set()
        return [o for o in outcomes if o is not None], self.killer, time.monotonic() - t0


# --- the report --------------------------------------------------------------------------------


def fetch_rows(database_url: str, run_ids: list[str]) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:

        def q(sql: str) -> list[dict[str, Any]]:
            return conn.execute(sql, (run_ids,)).fetchall()  # type: ignore[arg-type]

        return {
            "runs": q("SELECT id, status, data FROM runs WHERE id = ANY(%s)"),
            "messages": q(
                "SELECT id, run_id, data FROM messages WHERE run_id = ANY(%s) AND data->>'role' = 'assistant'"
            ),
            "steps": q("SELECT id, run_id, data FROM run_steps WHERE run_id = ANY(%s) ORDER BY seq"),
            "turns": q("SELECT run_id, count(*) AS n FROM run_turns WHERE run_id = ANY(%s) GROUP BY run_id"),
            "files": conn.execute(
                "SELECT id, data FROM files WHERE purpose = 'assistants_output'"
            ).fetchall(),
        }


def message_text(data: dict[str, Any]) -> str:
    return "".join(p["text"]["value"] for p in data.get("content") or [] if p.get("type") == "text")


def duplicates(rows: dict[str, Any]) -> dict[str, list[str]]:
    """run id (or file id) -> what is duplicated there, per kind of object."""
    msgs_by_run: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for m in rows["messages"]:
        msgs_by_run[m["run_id"]].append(m)
    steps_by_run: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for s in rows["steps"]:
        steps_by_run[s["run_id"]].append(s)
    turns = {r["run_id"]: r["n"] for r in rows["turns"]}
    found: dict[str, list[str]] = {"messages": [], "steps": [], "files": []}
    referenced: set[str] = set()
    for run_id in {r["id"] for r in rows["runs"]}:
        msgs, steps = msgs_by_run.get(run_id, []), steps_by_run.get(run_id, [])
        creation = [s for s in steps if s["data"]["type"] == "message_creation"]
        pointed = {s["data"]["step_details"]["message_creation"]["message_id"] for s in creation}
        stray = [m["id"] for m in msgs if m["id"] not in pointed]
        if len(msgs) > 1 or stray:
            found["messages"].append(f"{run_id}: {len(msgs)} assistant messages, {len(stray)} without a step")
        call_ids: collections.Counter[str] = collections.Counter()
        for s in steps:
            details = s["data"]["step_details"]
            for call in details.get("tool_calls") or []:
                call_ids[call["id"]] += 1
                for out in (call.get("code_interpreter") or {}).get("outputs") or []:
                    if out.get("type") == "image":
                        referenced.add(out["image"]["file_id"])
        for m in msgs:
            referenced.update(a["file_id"] for a in m["data"].get("attachments") or [])
            for part in m["data"].get("content") or []:
                for ann in (part.get("text") or {}).get("annotations") or []:
                    if ann.get("type") == "file_path":
                        referenced.add(ann["file_path"]["file_id"])
        twice = [c for c, n in call_ids.items() if n > 1]
        # A turn's step completes in the transaction that records the turn; a failed run's last
        # step has no turn row, so only completed steps are held against the turns.
        done = sum(s["data"]["status"] == "completed" for s in steps)
        open_steps = len(steps) - done
        too_many = (run_id in turns and done > turns[run_id]) or open_steps > 1
        if len(creation) > 1 or twice or too_many:
            found["steps"].append(
                f"{run_id}: {len(steps)} steps ({done} completed, {len(creation)} message_creation), "
                f"{turns.get(run_id, '?')} turns recorded, tool call ids in two steps: {twice}"
            )
    for f in rows["files"]:
        if f["id"] not in referenced:
            found["files"].append(f"{f['id']} ({f['data'].get('filename')}): no step or message refers to it")
    return found


def log_lines(stack: StackHandle, needle: str, n: int = 6) -> list[str]:
    lines: list[str] = []
    for path in [stack.log_path, *sorted((stack.data_dir / "logs").glob("*.log"))]:
        with contextlib.suppress(OSError):
            lines += [
                f"{path.name}: {x[:300]}"
                for x in path.read_text(errors="replace").splitlines()
                if needle in x
            ]
    return lines[-n:]


def report(
    stack: StackHandle, chaos: Chaos, outcomes: list[Outcome], killer: Killer, took: float
) -> list[str]:
    run_ids = list(chaos.run_ids)
    rows = fetch_rows(stack.database_url, run_ids)
    status = {r["id"]: r["status"] for r in rows["runs"]}
    data = {r["id"]: r["data"] for r in rows["runs"]}
    per_status = collections.Counter(status.get(r, "missing") for r in run_ids)
    lost = [r for r in run_ids if status.get(r) not in TERMINAL]
    dups = duplicates(rows)
    stored = {m["id"]: message_text(m["data"]) for m in rows["messages"]}
    streams = [o for o in outcomes if o.kind.startswith("stream") and o.run_id]
    differ = [
        (o, mid)
        for o in streams
        for mid in sorted(set(o.streamed) | {m["id"] for m in rows["messages"] if m["run_id"] == o.run_id})
        if o.streamed.get(mid, "") != stored.get(mid, "")
    ]
    by_kind = collections.Counter(o.kind for o in outcomes if o.run_id)
    not_started = [o for o in outcomes if o.run_id is None and (o.error or "").startswith("not started")]
    failed_clients = [o for o in outcomes if o.error and o not in not_started]
    kills = collections.Counter(k.part for k in killer.kills)
    lines = [
        f"machine: {machine()}",
        f"stack: `assistants up` (embedded Postgres, Temporal dev server, 1 runs worker, 1 inference worker, "
        f"1 API); {chaos.args.runs} runs asked, {chaos.args.concurrency} at a time, seed {chaos.args.seed}; "
        f"took {took:.0f}s",
        "runs started: {} of {} ({} not started within --duration) ({}); per status: {}; lost (not terminal): {}".format(
            len(run_ids),
            chaos.args.runs,
            len(not_started),
            ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())),
            ", ".join(f"{k} {n}" for k, n in sorted(per_status.items())),
            len(lost),
        ),
        f"duplicated: messages {len(dups['messages'])}, steps {len(dups['steps'])}, files {len(dups['files'])} "
        f"(of {len(rows['files'])} output files); stream clients whose deltas differ from the stored text: "
        f"{len({o.run_id for o, _ in differ})} of {len(streams)} "
        f"({len({o.run_id for o, _ in differ if status.get(o.run_id or '') != 'completed'})} of them on runs "
        "that did not complete)",
        f"clients: {sum(o.client_retries for o in outcomes)} connection retries, "
        f"{sum(o.adopted for o in outcomes)} runs found again after a lost create, "
        f"{sum(len(o.stream_breaks) for o in outcomes)} stream breaks resumed, {len(failed_clients)} clients failed",
        "kills: {} ({})".format(len(killer.kills), ", ".join(f"{p} {n}" for p, n in sorted(kills.items()))),
    ]
    for part in PARTS:
        back = [k.back_after for k in killer.kills if k.part == part and k.back_after is not None]
        healthy = [k.healthy_after for k in killer.kills if k.part == part and k.healthy_after is not None]
        n = kills.get(part, 0)
        if n:
            lines.append(
                f"  {part:16} killed {n:2}: new pid after p50 {pct(back, 0.5) if back else float('nan'):5.1f}s "
                f"max {max(back) if back else float('nan'):5.1f}s ({n - len(back)} never); /health 200 after "
                f"p50 {pct(healthy, 0.5) if healthy else float('nan'):5.1f}s max "
                f"{max(healthy) if healthy else float('nan'):5.1f}s"
            )
    lines.append(
        "kill times (s since start): "
        + ", ".join(
            f"{k.at:.0f} {k.part}"
            + (f" (back {k.back_after:.1f}s)" if k.back_after is not None else " (never back)")
            for k in killer.kills
        )
    )
    for r in run_ids:
        if status.get(r) != "completed":
            o = next((o for o in outcomes if o.run_id == r), None)
            err = (data.get(r) or {}).get("last_error")
            lines.append(f"run {r} ({o.kind if o else '?'}): {status.get(r)}; last_error {json.dumps(err)}")
            lines += [f"    {x}" for x in log_lines(stack, r, 4)]
    for kind, items in dups.items():
        lines += [f"duplicated {kind[:-1]}: {x}" for x in items]
    for o, mid in differ:
        lines.append(
            f"stream {o.run_id} ({status.get(o.run_id or '')}) message {mid}: streamed {o.streamed.get(mid, '')!r} vs stored "
            f"{stored.get(mid, '')!r}; breaks {o.stream_breaks}"
        )
    for o in failed_clients:
        lines.append(f"client {o.kind} (run {o.run_id}) failed: {o.error}")
    return lines


@contextlib.contextmanager
def own_stack(keep: bool) -> Iterator[StackHandle]:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run_all's timeout: stop the stack
    data_dir = Path(tempfile.mkdtemp(prefix="assistants-chaos-"))
    data_dir.chmod(0o755)  # Postgres runs as an unprivileged user that must reach it
    stack = start_stack(data_dir, timeout=300)
    try:
        yield stack
    finally:
        try:
            stack.stop(timeout=120)
        except AssertionError as e:  # after this much killing, a dirty stop is itself a finding
            print(f"stopping the stack: {str(e)[:2000]}", file=sys.stderr)
        if keep:
            print(f"data dir kept: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--duration", type=float, default=540, help="seconds of killing at most")
    parser.add_argument("--settle", type=float, default=300, help="seconds to let runs end after that")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--kill-every",
        type=lambda v: tuple(float(x) for x in v.split(",")),
        default=(3.0, 8.0),
        help="MIN,MAX seconds between kills, counted from when /health is 200 again (default 3,8)",
    )
    parser.add_argument(
        "--relentless", action="store_true", help="count the seconds between kills from the last kill instead"
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack's data dir for a post-mortem")
    parser.add_argument("--no-write", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    random.seed(args.seed)
    started = time.perf_counter()
    with own_stack(args.keep) as stack:
        print(f"stack up in {time.perf_counter() - started:.0f}s: {stack.data_dir}", flush=True)
        chaos = Chaos(stack, stack.create_key(), args)
        chaos.prepare()
        outcomes, killer, took = chaos.go()
        deadline = time.monotonic() + 120
        while not stack.healthy() and time.monotonic() < deadline:  # the report reads Postgres
            time.sleep(1)
        try:
            lines = report(stack, chaos, outcomes, killer, took)
        except Exception:
            traceback.print_exc()
            raise
    print("\n".join(lines), flush=True)
    if not args.no_write:
        append_results(f"chaos.py ({args.runs} runs)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
