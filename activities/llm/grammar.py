"""Constrained decoding with xgrammar: JSON-schema and JSON-object constraints.

A constraint is per-request state: each decode step the engine asks it to mask the row's
logits, then tells it which token was sampled. The engine only needs the `TokenConstraint`
protocol, so other grammar backends can be plugged in the same way.

Small models (SmolLM2) never start a tool call by themselves but complete valid JSON once
the shape is forced, which is why tool calls and `response_format` use these.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import jsonschema

if TYPE_CHECKING:
    import torch
    import xgrammar


class TokenConstraint(Protocol):
    """Per-request logits constraint, driven by the engine's decode thread."""

    def mask_logits(self, logits: torch.Tensor) -> None:
        """Disallow tokens in place; `logits` is the request's float32 row, shape [vocab]."""

    def accept(self, token_id: int) -> bool:
        """Advance with the sampled token; False if the grammar rejected it."""

    def is_terminated(self) -> bool:
        """True once the grammar is complete (the request then stops with "stop")."""


# The engine calls the factory once per request, so a factory can be shared and reused.
ConstraintFactory = Callable[[], TokenConstraint]


class XGrammarConstraint:
    """Wraps an `xgrammar.GrammarMatcher` and its token bitmask."""

    def __init__(self, compiled: xgrammar.CompiledGrammar, prefix: str = "") -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, compiled.tokenizer_info.vocab_size)
        if prefix and not self._matcher.accept_string(prefix):
            raise ValueError(f"the grammar cannot continue {prefix[:80]!r}")

    def mask_logits(self, logits: torch.Tensor) -> None:
        self._matcher.fill_next_token_bitmask(self._bitmask)
        # The model's logits may be wider than the tokenizer's vocab (padding rows): the
        # bitmask covers vocab_size; columns past it are never valid tokens, so mask them too.
        width = self._bitmask.shape[-1] * 32
        if logits.shape[-1] > width:
            logits[width:] = float("-inf")
        bitmask = self._bitmask if logits.device.type == "cpu" else self._bitmask.to(logits.device)
        self._xgr.apply_token_bitmask_inplace(logits.unsqueeze(0), bitmask)

    def accept(self, token_id: int) -> bool:
        return bool(self._matcher.accept_token(token_id))

    def is_terminated(self) -> bool:
        return bool(self._matcher.is_terminated())


def tokenizer_info(
    tokenizer: Any, vocab_size: int, stop_token_ids: list[int] | None = None
) -> xgrammar.TokenizerInfo:
    """`vocab_size` must be the model's (config.vocab_size): the logits width, not len(tokenizer)."""
    import xgrammar as xgr

    return xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids)


# Compiled grammars are cached per model up to this many bytes (xgrammar evicts the oldest), so
# a stream of distinct user schemas cannot grow a worker's memory without end.
GRAMMAR_CACHE_BYTES = 64 * 1024 * 1024
# A schema that takes longer than this to compile fails its run instead of holding a worker.
GRAMMAR_COMPILE_TIMEOUT_S = 10.0
# Budget for one user `pattern` match while validating tool-call arguments.
PATTERN_TIMEOUT_S = 0.1


# Spaces in a call's arguments between JSON tokens, at most: a model's own `{"a": 1}` style, never a
# run of blanks (a small model under a grammar can otherwise fill its budget with them).
CALL_WHITESPACE = 1


class GrammarCompileTimeout(TimeoutError):
    pass


def grammar_compiler(info: xgrammar.TokenizerInfo) -> xgrammar.GrammarCompiler:
    """One compiler per model: it caches compiled grammars (compiling a schema takes ~5 ms)."""
    import xgrammar as xgr

    return xgr.GrammarCompiler(info, max_threads=1, cache_enabled=True, cache_limit_bytes=GRAMMAR_CACHE_BYTES)


@functools.cache
def _compile_pool() -> ThreadPoolExecutor:
    # Its own small pool: a slow compile (which cannot be interrupted) never takes the threads
    # that tokenization and model loading use, and at most two compile at once.
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="grammar-compile")


async def _compiled_off_loop(what: str, limit_s: float, compile_fn: Any, *args: Any) -> ConstraintFactory:
    """`compile_fn(*args)` on the compile pool, within `limit_s` seconds (`what` names it in the error)."""
    future = asyncio.get_running_loop().run_in_executor(_compile_pool(), compile_fn, *args)
    try:
        return await asyncio.wait_for(future, limit_s)
    except TimeoutError:
        raise GrammarCompileTimeout(f"compiling {what} took more than {limit_s:.0f}s") from None


async def json_schema_constraint_async(
    compiler: xgrammar.GrammarCompiler,
    schema: dict[str, Any] | str,
    limit_s: float = GRAMMAR_COMPILE_TIMEOUT_S,
    prefix: str = "",
) -> ConstraintFactory:
    """`json_schema_constraint` compiled off the event loop, within `limit_s` seconds."""
    return await _compiled_off_loop(
        "the JSON schema", limit_s, json_schema_constraint, compiler, schema, prefix
    )


def _safe_search(pattern: str, text: str) -> bool | None:
    """`re.search` semantics with a time limit (the `regex` module); None if it ran out of time."""
    import regex

    try:
        return regex.search(pattern, text, timeout=PATTERN_TIMEOUT_S) is not None
    except TimeoutError:
        return None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not _safe_search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance[:80]!r} does not match {pattern[:80]!r} (in time)")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _safe_search(pattern, key)
            if found is None:
                yield jsonschema.ValidationError(f"key {key[:80]!r}: pattern {pattern[:80]!r} timed out")
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


# Draft 2020-12 whose `pattern`/`patternProperties` run user regexes with a time limit: Python's
# `re` backtracks without bound and holds the GIL, so `^(a+)+$` would freeze the worker.
_SafeValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def validate_arguments(arguments: Any, schema: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if `arguments` do not match `schema` (regexes time-limited)."""
    _SafeValidator.check_schema(schema)
    error = jsonschema.exceptions.best_match(_SafeValidator(schema).iter_errors(arguments))
    if error is not None:
        raise error


def answer_or_call_constraint(
    compiler: xgrammar.GrammarCompiler,
    answer_schema: dict[str, Any],
    specs: list[dict[str, Any]],
    open_tag: str,
    close_tag: str,
) -> ConstraintFactory:
    """Output is EITHER one JSON answer valid against `answer_schema` OR one tool call
    (`open_tag{"name": <a function>, "arguments": <its schema>}close_tag`): structured output on a
    run that also has tools."""
    import xgrammar as xgr

    answer = xgr.Grammar.from_json_schema(json.dumps(answer_schema), any_whitespace=False, strict_mode=True)
    calls = {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "name": {"const": s["function"]["name"]},
                    "arguments": s["function"].get("parameters") or {"type": "object", "properties": {}},
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for s in specs
        ]
    }
    call = xgr.Grammar.concat(
        xgr.Grammar.from_ebnf(f"root ::= {json.dumps(open_tag)}"),
        xgr.Grammar.from_json_schema(json.dumps(calls), any_whitespace=False, strict_mode=True),
        xgr.Grammar.from_ebnf(f"root ::= {json.dumps(close_tag)}"),
    )
    compiled = compiler.compile_grammar(xgr.Grammar.union(answer, call))
    return lambda: XGrammarConstraint(compiled)


async def answer_or_call_constraint_async(
    compiler: xgrammar.GrammarCompiler,
    answer_schema: dict[str, Any],
    specs: list[dict[str, Any]],
    open_tag: str,
    close_tag: str,
    limit_s: float = GRAMMAR_COMPILE_TIMEOUT_S,
) -> ConstraintFactory:
    return await _compiled_off_loop(
        "the output grammar",
        limit_s,
        answer_or_call_constraint,
        compiler,
        answer_schema,
        specs,
        open_tag,
        close_tag,
    )


def json_schema_constraint(
    compiler: xgrammar.GrammarCompiler, schema: dict[str, Any] | str, prefix: str = ""
) -> ConstraintFactory:
    """Output must be one JSON value valid against `schema` (then the request stops); with
    `prefix`, the output continues a value that starts with it."""
    text = schema if isinstance(schema, str) else json.dumps(schema)
    if prefix:  # continuing a call written under `tool_calls_constraint`: the same JSON spacing
        compiled = compiler.compile_json_schema(
            text, any_whitespace=True, max_whitespace_cnt=CALL_WHITESPACE, strict_mode=True
        )
    else:
        compiled = compiler.compile_json_schema(text, any_whitespace=False, strict_mode=True)
    return lambda: XGrammarConstraint(compiled, prefix)


def call_head(name: str, open_tag: str) -> str:
    """How a call starts in the tool-call format, up to its arguments object."""
    return f'{open_tag}{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": '


def tool_calls_constraint(
    compiler: xgrammar.GrammarCompiler, specs: list[dict[str, Any]], open_tag: str, close_tag: str
) -> ConstraintFactory:
    """Free text, except that once `open_tag` is written the call must be to one of `specs`, in
    the format `call_head` writes, with arguments valid against its schema, then `}close_tag`
    (xgrammar's triggered structural tags, as vLLM and SGLang constrain tool calls)."""
    tags = [
        {
            "type": "tag",
            "begin": call_head(s["function"]["name"], open_tag),
            "content": {
                "type": "json_schema",
                "json_schema": s["function"].get("parameters") or {"type": "object", "properties": {}},
                "max_whitespace_cnt": CALL_WHITESPACE,
            },
            "end": "}" + close_tag,
        }
        for s in specs
    ]
    structural = {
        "type": "structural_tag",
        "format": {"type": "triggered_tags", "triggers": [open_tag], "tags": tags},
    }
    compiled = compiler.compile_structural_tag(json.dumps(structural))
    return lambda: XGrammarConstraint(compiled)


async def tool_calls_constraint_async(
    compiler: xgrammar.GrammarCompiler,
    specs: list[dict[str, Any]],
    open_tag: str,
    close_tag: str,
    limit_s: float = GRAMMAR_COMPILE_TIMEOUT_S,
) -> ConstraintFactory:
    return await _compiled_off_loop(
        "the tool-call grammar", limit_s, tool_calls_constraint, compiler, specs, open_tag, close_tag
    )
