"""Constrained decoding with xgrammar: JSON-schema and JSON-object constraints.

A constraint is per-request state: each decode step the engine asks it to mask the row's
logits, then tells it which token was sampled. The engine only needs the `TokenConstraint`
protocol, so other grammar backends can be plugged in the same way.

Small models (SmolLM2) never start a tool call by themselves but complete valid JSON once
the shape is forced, which is why tool calls and `response_format` use these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

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

    def __init__(self, compiled: xgrammar.CompiledGrammar) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, compiled.tokenizer_info.vocab_size)

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


def grammar_compiler(info: xgrammar.TokenizerInfo) -> xgrammar.GrammarCompiler:
    """One compiler per model: it caches compiled grammars (compiling a schema takes ~5 ms)."""
    import xgrammar as xgr

    return xgr.GrammarCompiler(info, max_threads=1, cache_enabled=True)


def json_schema_constraint(
    compiler: xgrammar.GrammarCompiler, schema: dict[str, Any] | str
) -> ConstraintFactory:
    """Output must be one JSON value valid against `schema` (then the request stops)."""
    text = schema if isinstance(schema, str) else json.dumps(schema)
    compiled = compiler.compile_json_schema(text, any_whitespace=False, strict_mode=True)
    return lambda: XGrammarConstraint(compiled)


def json_object_constraint(compiler: xgrammar.GrammarCompiler) -> ConstraintFactory:
    """Output must be a JSON value (`response_format={"type": "json_object"}`)."""
    compiled = compiler.compile_builtin_json_grammar()
    return lambda: XGrammarConstraint(compiled)


def ebnf_constraint(
    compiler: xgrammar.GrammarCompiler, ebnf: str, root_rule: str = "root"
) -> ConstraintFactory:
    """Output must match an EBNF grammar (xgrammar's GBNF dialect)."""
    compiled = compiler.compile_grammar(ebnf, root_rule_name=root_rule)
    return lambda: XGrammarConstraint(compiled)
