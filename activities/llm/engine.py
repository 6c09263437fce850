"""Continuous-batching generation engine: one per loaded model, shared by every request.

One background thread owns the model. Each iteration it
  1. drops rows whose callers went away (asyncio cancellation),
  2. admits waiting requests up to `max_batch_size`: prefills them (left padded, grouped by
     length so padding stays small; a prompt with images alone, with its pixel_values), merges
     their KV cache into the running batch's cache by left padding both to the same length,
     and samples their first token,
  3. runs ONE decode forward for the whole batch (explicit attention mask and position ids,
     so left padding does not shift positions), samples every row with its own settings
     (greedy or temperature/top-p with its own seeded generator; grammar mask per row),
  4. retires rows that stopped (stop token, grammar complete, max_new_tokens, context full)
     by indexing the cache, and trims padding columns no remaining row needs.
Requests thus join and leave between decode steps; nobody waits for a whole batch to end.

Why not transformers' `generate_batch`: measured on the 2-core dev machine it reached ~42
tok/s for 8 requests, while a padded batch of 8 reaches ~98 (see DESIGN.md); this scheduler
keeps the padded-batch throughput and adds join/leave between steps.

Batch effects: a row's logits in a batch differ from the same row alone only by
floating-point reassociation (different GEMM shapes, masked padding keys). In fp32 on CPU
greedy outputs match token for token (tests/test_engine.py asserts it). In bf16 on GPU rare
near-ties can flip: measured on an H100 (random SmolLM2-shaped weights, 4 requests x 64
tokens) fp32 matched exactly and bf16 diverged once, at the last token of one request. That
is the behaviour of any batched server; the README states it.

Threading contract: `generate` is a coroutine; results come back to the caller's event loop
through `loop.call_soon_threadsafe`. `on_delta` is called ON THE ENGINE THREAD, once per new
piece of text, in order; it must be cheap and non-blocking (push into an asyncio queue with
`loop.call_soon_threadsafe`), because the whole batch waits for it. If it raises, only that
request fails.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from activities.llm.detok import IncrementalDetokenizer
from activities.llm.grammar import ConstraintFactory, TokenConstraint

log = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "cancelled"]

# Prefill admitted prompts together only while padding wastes at most this share of compute.
_PREFILL_PAD_FACTOR = 1.25
_PREFILL_MAX_TOKENS = 8192


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None  # per-request sampling seed; None = nondeterministic
    # None = the model's end-of-turn/eos ids; () = never stop on a token (benchmarks).
    stop_token_ids: Sequence[int] | None = None
    # Called once, on the engine thread, when the request is admitted.
    constraint: ConstraintFactory | None = None
    # More inputs of the prompt's forward (a vision model's `pixel_values`, `image_sizes`...):
    # such a request is prefilled in a group of its own, and decodes with token ids like any other.
    prefill_inputs: dict[str, Any] | None = None


@dataclass
class GenerationTimings:
    queued_s: float = 0.0  # submit -> admitted into the batch
    first_token_s: float | None = None  # submit -> first generated token
    total_s: float = 0.0  # submit -> finished


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]  # generated tokens, without the stop token
    prompt_tokens: int
    completion_tokens: int  # generated tokens, the stop token included (it was computed)
    finish_reason: FinishReason
    timings: GenerationTimings = field(default_factory=GenerationTimings)


class EngineClosedError(RuntimeError):
    pass


class _Seq:
    """One request's state while queued or in the batch (touched only by the engine thread
    after submission, except `cancelled`, a benign cross-thread flag)."""

    def __init__(
        self,
        req: GenerationRequest,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[GenerationResult],
        on_delta: Callable[[str], None] | None,
        stop_ids: frozenset[int],
        max_new: int,
    ) -> None:
        self.req = req
        self.loop = loop
        self.future = future
        self.on_delta = on_delta
        self.stop_ids = stop_ids
        self.max_new = max_new
        self.cancelled = False
        self.done = False
        self.tokens: list[int] = []
        self.n_computed = 0
        # Position id of `last_token` when it is fed to the model; _advance bumps it on every
        # sampled token, so the first generated token is fed at len(prompt).
        self.pos = len(req.prompt_ids) - 1
        self.last_token = -1
        self.constraint: TokenConstraint | None = None
        self.generator: torch.Generator | None = None
        self.detok: IncrementalDetokenizer | None = None
        self.t_submit = time.perf_counter()
        self.t_admit: float | None = None
        self.t_first: float | None = None


def _resolve(
    future: asyncio.Future[GenerationResult], result: GenerationResult | None, exc: BaseException | None
) -> None:
    # Runs on the caller's loop; the caller may have been cancelled meanwhile.
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]


class Engine:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = 16,
        stop_token_ids: Sequence[int] = (),
        max_context_tokens: int = 8192,
        pad_token_id: int = 0,
    ) -> None:
        self.model = model
        # The engine should own its tokenizer instance: HF fast tokenizers are not safe to
        # share between threads that encode (caller) and decode (engine).
        self.tokenizer = tokenizer
        self.max_batch_size = max(1, max_batch_size)
        self.default_stop_ids = frozenset(stop_token_ids)
        self.max_context_tokens = max_context_tokens
        self.pad_token_id = pad_token_id
        self.device = next(model.parameters()).device
        # transformers 5.24 renamed `past_key_values` to `cache` (the old name goes in 5.40).
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

        self._cond = threading.Condition()
        self._waiting: collections.deque[_Seq] = collections.deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._broken: BaseException | None = None
        # Batch state, owned by the engine thread.
        self._rows: list[_Seq] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None  # [rows, cache_len], 1 = real token
        self.steps = 0  # decode forwards run (observability, tests)
        self.kv_cache_bytes = 0  # held by the batch's KV cache, set when it changes (observability)

    # ---- public API ---------------------------------------------------------------------

    async def generate(
        self, req: GenerationRequest, on_delta: Callable[[str], None] | None = None
    ) -> GenerationResult:
        """Generate for one request in the shared batch. Cancelling the awaiting task removes
        the request from the batch at the next step. `on_delta` runs on the engine thread."""
        n_prompt = len(req.prompt_ids)
        if n_prompt == 0:
            raise ValueError("prompt_ids is empty")
        if n_prompt >= self.max_context_tokens:
            raise ValueError(f"prompt has {n_prompt} tokens; the context limit is {self.max_context_tokens}")
        if req.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if req.temperature < 0 or not 0 < req.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        loop = asyncio.get_running_loop()
        stop_ids = self.default_stop_ids if req.stop_token_ids is None else frozenset(req.stop_token_ids)
        max_new = min(req.max_new_tokens, self.max_context_tokens - n_prompt)
        seq = _Seq(req, loop, loop.create_future(), on_delta, stop_ids, max_new)
        with self._cond:
            if self._closed:
                raise EngineClosedError("engine is closed")
            if self._broken is not None:
                raise EngineClosedError(f"engine thread died: {self._broken!r}")
            self._waiting.append(seq)
            self._ensure_thread()
            self._cond.notify()
        try:
            return await seq.future
        except asyncio.CancelledError:
            seq.cancelled = True
            with self._cond:
                self._cond.notify()
            raise

    def stats(self) -> dict[str, int]:
        return {
            "running": len(self._rows),
            "waiting": len(self._waiting),
            "max_batch_size": self.max_batch_size,
            "kv_cache_bytes": self.kv_cache_bytes,
        }

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the thread; requests still queued or running finish with "cancelled"."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ---- engine thread -------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="llm-engine", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            with torch.inference_mode():
                self._loop()
        except BaseException as exc:  # never leave callers hanging, whatever happened
            log.exception("engine thread died")
            with self._cond:
                self._broken = exc
                pending = list(self._waiting) + self._rows
                self._waiting.clear()
            self._reset_batch()
            for seq in pending:
                self._fail(seq, exc)
            raise

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._rows and not self._waiting:
                    self._cond.wait()
                if self._closed:
                    pending = list(self._waiting)
                    self._waiting.clear()
                    break
                admit: list[_Seq] = []
                while self._waiting and len(self._rows) + len(admit) < self.max_batch_size:
                    admit.append(self._waiting.popleft())
            try:
                self._step(admit)
            except Exception as exc:
                # A failed forward leaves the batch's cache in an unknown state: fail every
                # request it touched and start over with an empty batch. Queued ones are kept.
                log.exception("engine step failed")
                for seq in self._rows + admit:
                    self._fail(seq, exc)
                self._reset_batch()
        for seq in pending + self._rows:
            if not seq.done:
                self._finish(seq, "cancelled")
        self._reset_batch()

    def _step(self, admit: list[_Seq]) -> None:
        for seq in self._rows:
            if seq.cancelled:
                self._finish(seq, "cancelled")
        fresh = []
        for seq in admit:
            if seq.cancelled:
                self._finish(seq, "cancelled")
                continue
            try:
                self._start(seq)
            except Exception as exc:
                self._fail(seq, exc)
                continue
            fresh.append(seq)
        self._retire()
        for group in _prefill_groups(fresh):
            self._prefill(group)
            self._retire()
        if self._rows:
            self._decode()
            self._retire()

    def _start(self, seq: _Seq) -> None:
        seq.t_admit = time.perf_counter()
        seq.detok = IncrementalDetokenizer(self.tokenizer)
        if seq.req.constraint is not None:
            seq.constraint = seq.req.constraint()
        if seq.req.temperature > 0:
            seq.generator = torch.Generator(device=self.device)
            if seq.req.seed is not None:
                seq.generator.manual_seed(seq.req.seed)
            else:
                seq.generator.seed()

    def _prefill(self, group: list[_Seq]) -> None:
        width = max(len(s.req.prompt_ids) for s in group)
        ids = torch.full((len(group), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for i, s in enumerate(group):
            n = len(s.req.prompt_ids)
            ids[i, width - n :] = torch.tensor(s.req.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        extra = self._prefill_inputs(group[0]) if len(group) == 1 else {}
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **extra,
        )
        self._merge(_out_cache(out), mask, group)
        self._sample_and_advance(out.logits[:, -1, :].float(), group)

    def _prefill_inputs(self, seq: _Seq) -> dict[str, Any]:
        """The request's extra prefill tensors on the model's device, floats in its dtype."""
        dtype = next(self.model.parameters()).dtype
        return {
            k: v.to(self.device, dtype=dtype) if torch.is_floating_point(v) else v.to(self.device)
            for k, v in (seq.req.prefill_inputs or {}).items()
        }

    def _decode(self) -> None:
        assert self._mask is not None
        rows = self._rows
        ids = torch.tensor([[s.last_token] for s in rows], dtype=torch.long, device=self.device)
        positions = torch.tensor([[s.pos] for s in rows], dtype=torch.long, device=self.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        out = self.model(
            input_ids=ids,
            attention_mask=self._mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_kw: self._cache},
        )
        self._cache = _out_cache(out)
        self.kv_cache_bytes = _cache_bytes(self._cache)
        self.steps += 1
        self._sample_and_advance(out.logits[:, -1, :].float(), list(rows))

    # ---- cache bookkeeping ---------------------------------------------------------------

    def _merge(self, cache: Any, mask: torch.Tensor, group: list[_Seq]) -> None:
        """Append the group's rows to the batch: left-pad the shorter cache to equal length."""
        for layer in cache.layers:
            if getattr(layer, "is_sliding", False) or not hasattr(layer, "keys"):
                raise NotImplementedError(
                    f"continuous batching needs full-attention KV layers, got {type(layer).__name__}"
                )
        if self._cache is None or not self._rows:
            self._cache, self._mask, self._rows = cache, mask, list(group)
            self.kv_cache_bytes = _cache_bytes(cache)
            return
        assert self._mask is not None
        old_len, new_len = self._mask.shape[1], mask.shape[1]
        total = max(old_len, new_len)
        pad_old, pad_new = total - old_len, total - new_len
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.keys = torch.cat(
                [F.pad(old.keys, (0, 0, pad_old, 0)), F.pad(new.keys, (0, 0, pad_new, 0))], dim=0
            )
            old.values = torch.cat(
                [F.pad(old.values, (0, 0, pad_old, 0)), F.pad(new.values, (0, 0, pad_new, 0))], dim=0
            )
        self._mask = torch.cat([F.pad(self._mask, (pad_old, 0)), F.pad(mask, (pad_new, 0))], dim=0)
        self._rows = self._rows + list(group)
        self.kv_cache_bytes = _cache_bytes(self._cache)

    def _retire(self) -> None:
        """Drop finished rows from the cache, then padding columns no row needs any more."""
        keep = [i for i, s in enumerate(self._rows) if not s.done]
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._reset_batch()
            return
        assert self._mask is not None
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self._rows = [self._rows[i] for i in keep]
        self._mask = self._mask.index_select(0, index)
        lead = int((self._mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, lead:]
            layer.values = layer.values.index_select(0, index)[:, :, lead:]
        self._mask = self._mask[:, lead:]
        self.kv_cache_bytes = _cache_bytes(self._cache)

    def _reset_batch(self) -> None:
        # Zero first: stats() is read from other threads, and no rows must mean no cache there.
        self.kv_cache_bytes = 0
        self._rows, self._cache, self._mask = [], None, None

    # ---- sampling and per-row bookkeeping ------------------------------------------------

    def _sample_and_advance(self, logits: torch.Tensor, rows: list[_Seq]) -> None:
        """logits: float32 [len(rows), vocab], row i belongs to rows[i]."""
        for i, s in enumerate(rows):
            if s.constraint is not None and not s.done:
                try:
                    s.constraint.mask_logits(logits[i])
                except Exception as exc:  # a broken grammar fails its own request only
                    self._fail(s, exc)
        chosen = logits.argmax(-1)
        for i, s in enumerate(rows):
            if s.req.temperature > 0:
                chosen[i] = _sample(logits[i], s.req.temperature, s.req.top_p, s.generator)
        now = time.perf_counter()
        for s, tok in zip(rows, chosen.tolist(), strict=True):
            if s.done:
                continue
            try:
                self._advance(s, tok, now)
            except Exception as exc:  # a caller's on_delta or a grammar failed: only this row
                self._fail(s, exc)

    def _advance(self, s: _Seq, tok: int, now: float) -> None:
        if s.t_first is None:
            s.t_first = now
        s.n_computed += 1
        s.pos += 1
        s.last_token = tok
        terminated = False
        if s.constraint is not None:
            if not s.constraint.accept(tok):
                self._finish(s, "stop")  # grammar dead end (every token masked): end cleanly
                return
            # xgrammar terminates when it accepts its stop token: treat that token as a stop.
            terminated = s.constraint.is_terminated()
        if tok in s.stop_ids or terminated:
            self._finish(s, "stop")
            return
        s.tokens.append(tok)
        assert s.detok is not None
        delta = s.detok.push(tok)
        if delta and s.on_delta is not None:
            s.on_delta(delta)
        if len(s.tokens) >= s.max_new:
            self._finish(s, "length")

    def _finish(self, s: _Seq, reason: FinishReason) -> None:
        s.done = True
        text = ""
        if s.detok is not None:
            tail = s.detok.finish()
            if tail and s.on_delta is not None and reason != "cancelled":
                try:
                    s.on_delta(tail)
                except Exception as exc:
                    self._fail(s, exc)
                    return
            text = s.detok.text
        now = time.perf_counter()
        timings = GenerationTimings(
            queued_s=((s.t_admit or now) - s.t_submit),
            first_token_s=None if s.t_first is None else s.t_first - s.t_submit,
            total_s=now - s.t_submit,
        )
        result = GenerationResult(
            text=text,
            token_ids=list(s.tokens),
            prompt_tokens=len(s.req.prompt_ids),
            completion_tokens=s.n_computed,
            finish_reason=reason,
            timings=timings,
        )
        self._post(s, result, None)

    def _fail(self, s: _Seq, exc: BaseException) -> None:
        s.done = True
        self._post(s, None, exc)

    @staticmethod
    def _post(s: _Seq, result: GenerationResult | None, exc: BaseException | None) -> None:
        try:
            s.loop.call_soon_threadsafe(_resolve, s.future, result, exc)
        except RuntimeError:
            pass  # the caller's loop is closed: nobody is waiting


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _cache_bytes(cache: Any) -> int:
    """Bytes held by the keys and values of a batch cache (padding columns included)."""
    if cache is None:
        return 0
    return sum(
        t.numel() * t.element_size()
        for layer in cache.layers
        for t in (layer.keys, layer.values)
        if t is not None
    )


def _sample(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator)[0]


def _prefill_groups(seqs: list[_Seq]) -> list[list[_Seq]]:
    """Group prompts of similar length so one padded forward wastes little compute; a prompt
    with prefill inputs (images) goes alone."""
    groups: list[list[_Seq]] = []
    current: list[_Seq] = []
    total = 0
    for s in sorted(seqs, key=lambda s: len(s.req.prompt_ids)):
        if s.req.prefill_inputs:
            groups.append([s])  # its tensors are per request: never batched with another prompt
            continue
        n = len(s.req.prompt_ids)
        width = (len(current) + 1) * n  # sorted ascending: n is the group's new max
        if current and (width > _PREFILL_PAD_FACTOR * (total + n) or width > _PREFILL_MAX_TOKENS):
            groups.append(current)
            current, total = [], 0
        current.append(s)
        total += n
    if current:
        groups.append(current)
    return groups
