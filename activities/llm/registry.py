"""Which models exist (configuration) and the loaded ones (once per process, lazily).

`settings.model_paths()` maps public model names to HF ids or local folders; the default
model maps to its prepared folder (see prepare.py). `ModelRegistry.get(name)` loads a model the
first time it is asked for, under a per-name lock so concurrent first calls load it once.
A vision-language model loads with its processor and takes images (vision.py).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from activities.llm import vision

if TYPE_CHECKING:
    import torch
    import xgrammar

    from activities.llm.engine import Engine
    from activities.llm.grammar import ConstraintFactory
    from assistants.settings import Settings


class UnknownModelError(KeyError):
    pass


def resolve_device(setting: str) -> torch.device:
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    import torch

    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if setting not in dtypes:
        raise ValueError(f"unknown dtype {setting!r}; use one of auto, {', '.join(dtypes)}")
    return dtypes[setting]


@dataclass
class LoadedModel:
    name: str
    path: str
    tokenizer: Any
    model: Any
    engine: Engine
    device: torch.device
    stop_token_ids: list[int]
    # A vision-language model's processor (activities/llm/vision.py); None for text-only models.
    processor: Any = None
    _compiler: xgrammar.GrammarCompiler | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def context_window(self) -> int:
        return self.engine.max_context_tokens

    def encode_chat(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        reasoning_effort: str | None = None,
    ) -> list[int]:
        """Messages are {"role", "content"} dicts (system/user/assistant/tool) -> prompt ids.
        Templates that ignore tools (SmolLM2's) simply drop them. `reasoning_effort` (a run's)
        reaches only templates that read it: others would receive it as an unused variable, which
        is harmless, but a template is the model's own contract, so it is passed only when named."""
        extra: dict[str, Any] = {}
        if reasoning_effort is not None and self.takes_reasoning_effort:
            extra["reasoning_effort"] = reasoning_effort
        if self.processor is not None and vision.has_image_parts(messages):
            with self._lock:
                return vision.encode(
                    self.processor,
                    messages,
                    tools=tools,
                    add_generation_prompt=add_generation_prompt,
                    **extra,
                )
        with self._lock:  # the fast tokenizer is not safe to use from several threads at once
            ids = self.tokenizer.apply_chat_template(
                messages,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                tokenize=True,
                return_dict=False,
                **extra,
            )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # BatchEncoding on some versions
            ids = ids["input_ids"]
        return list(ids)

    @property
    def takes_images(self) -> bool:
        return self.processor is not None

    @property
    def takes_reasoning_effort(self) -> bool:
        """Whether the chat template reads `reasoning_effort` (gpt-oss's, some Qwen/DeepSeek ones)."""
        return "reasoning_effort" in str(getattr(self.tokenizer, "chat_template", None) or "")

    def encode(self, text: str) -> list[int]:
        with self._lock:
            return list(self.tokenizer.encode(text, add_special_tokens=False))

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, ids: list[int]) -> str:
        with self._lock:
            return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    @property
    def grammar_compiler(self) -> xgrammar.GrammarCompiler:
        with self._lock:
            if self._compiler is None:
                from activities.llm import grammar

                info = grammar.tokenizer_info(
                    self.tokenizer,
                    vocab_size=self.model.config.get_text_config().vocab_size,
                    stop_token_ids=self.stop_token_ids,
                )
                self._compiler = grammar.grammar_compiler(info)
            return self._compiler

    def json_schema_constraint(self, schema: dict[str, Any] | str) -> ConstraintFactory:
        from activities.llm.grammar import json_schema_constraint

        return json_schema_constraint(self.grammar_compiler, schema)

    async def json_schema_constraint_async(self, schema: dict[str, Any] | str) -> ConstraintFactory:
        """Compiled off the event loop with a time limit (grammar.GRAMMAR_COMPILE_TIMEOUT_S)."""
        from activities.llm.grammar import json_schema_constraint_async

        compiler = await asyncio.to_thread(lambda: self.grammar_compiler)  # built once, ~1 s
        return await json_schema_constraint_async(compiler, schema)


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._paths = settings.model_paths()
        self._loaded: dict[str, LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in self._paths}

    def names(self) -> list[str]:
        return list(self._paths)

    def __contains__(self, name: object) -> bool:
        return name in self._paths

    def get(self, name: str | None = None) -> LoadedModel:
        """Load on first use (blocking, seconds); later calls return the same instance."""
        name = name or self._settings.default_model
        if name not in self._paths:
            raise UnknownModelError(name)
        loaded = self._loaded.get(name)
        if loaded is not None:
            return loaded
        with self._locks[name]:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def loaded(self) -> list[str]:
        return list(self._loaded)

    def close(self) -> None:
        for loaded in self._loaded.values():
            loaded.engine.close()

    def _load(self, name: str) -> LoadedModel:
        from transformers import AutoConfig, AutoTokenizer

        from activities.llm.engine import Engine

        path = self._paths[name]
        if name == self._settings.default_model:
            from activities.llm.prepare import prepare_default_model

            path = str(prepare_default_model(self._settings))
        device = resolve_device(self._settings.device)
        dtype = resolve_dtype(self._settings.dtype, device)
        processor, model = _load_model(path, dtype, vision.takes_images(AutoConfig.from_pretrained(path)))
        tokenizer = processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(path)
        model.to(device)
        model.eval()
        model.requires_grad_(False)
        stop_ids = _stop_token_ids(tokenizer, model)
        max_ctx = min(
            self._settings.max_context_tokens,
            getattr(model.config.get_text_config(), "max_position_embeddings", 1 << 30),
        )
        engine = Engine(
            model,
            # Its own tokenizer instance: the engine thread decodes while callers encode.
            AutoTokenizer.from_pretrained(path),
            max_batch_size=self._settings.max_batch_size,
            stop_token_ids=stop_ids,
            max_context_tokens=max_ctx,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        )
        return LoadedModel(name, path, tokenizer, model, engine, device, stop_ids, processor)


def _load_model(path: str, dtype: torch.dtype, with_images: bool) -> tuple[Any, Any]:
    """(processor or None, model): a vision-language model loads with its processor."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    if not with_images:
        return None, AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return AutoProcessor.from_pretrained(path), AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)


def _stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """eos ids from the generation config and tokenizer, plus common end-of-turn tokens."""
    ids: set[int] = set()
    eos = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(eos)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for token in ("<|im_end|>", "<|eot_id|>", "<|end_of_turn|>", "<end_of_turn>", "<|endoftext|>"):
        if token in vocab:
            ids.add(vocab[token])
    return sorted(ids)
