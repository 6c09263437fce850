"""Remote models: model ids served by an OpenAI-compatible `/v1/chat/completions` endpoint (vLLM,
SGLang, TGI, llama.cpp server, Ollama, a hosted provider) instead of the in-process engine.

Configured by `ASSISTANTS_MODEL_PROVIDERS`, a JSON object from public model id to its provider:

    {"qwen-vllm": {"provider": "openai", "base_url": "http://vllm:8000/v1", "model": "Qwen/Qwen2.5-7B-Instruct",
                   "api_key_env": "VLLM_API_KEY",
                   "capabilities": {"tools": true, "json_schema": true, "vision": false, "context_length": 32768}}}

Models not listed there use the `transformers` provider (the in-process engine, `ASSISTANTS_MODELS`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("openai", "transformers")


@dataclass(frozen=True)
class Capabilities:
    tools: bool = True  # native tool calls (`tools`, `tool_choice`)
    json_schema: bool = True  # `response_format` json_object / json_schema enforced upstream
    vision: bool = False  # image content parts
    # `reasoning_effort` sent upstream (OpenAI's reasoning models; vLLM hands it to the chat
    # template). Off: the run's value is not sent, as for a local template that does not read it.
    reasoning_effort: bool = False
    context_length: int = 8192  # prompt + completion tokens the upstream model takes


@dataclass(frozen=True)
class RemoteModel:
    name: str  # the public id runs and assistants use
    base_url: str  # ends before /chat/completions, e.g. http://vllm:8000/v1
    model: str  # the upstream model name
    api_key_env: str | None = None  # the env var holding its key (the key never sits in config)
    timeout_s: float = 600.0  # per request, covering a whole streamed answer
    capabilities: Capabilities = field(default_factory=Capabilities)
    # Engine-specific request fields merged into every request (e.g. vLLM's {"ignore_eos": true}).
    extra_body: dict[str, Any] = field(default_factory=dict)

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ProviderConfigError(ValueError):
    pass


def parse_providers(raw: str) -> dict[str, RemoteModel]:
    """The remote models of an `ASSISTANTS_MODEL_PROVIDERS` value ("" = none); raise on bad config."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ProviderConfigError(f"ASSISTANTS_MODEL_PROVIDERS is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise ProviderConfigError("ASSISTANTS_MODEL_PROVIDERS must be a JSON object of model id -> provider")
    out: dict[str, RemoteModel] = {}
    for name, spec in value.items():
        out_model = _one(name, spec)
        if out_model is not None:
            out[name] = out_model
    return out


def _one(name: str, spec: Any) -> RemoteModel | None:
    if not isinstance(spec, dict):
        raise ProviderConfigError(f"model {name!r}: expected an object")
    provider = spec.get("provider", "openai")
    if provider not in PROVIDERS:
        raise ProviderConfigError(f"model {name!r}: provider must be one of {PROVIDERS}, not {provider!r}")
    if provider == "transformers":
        return None  # listed for documentation; the in-process engine serves it (ASSISTANTS_MODELS)
    if not spec.get("base_url"):
        raise ProviderConfigError(f"model {name!r}: base_url is required for the openai provider")
    caps = spec.get("capabilities") or {}
    known = set(Capabilities.__dataclass_fields__)
    if not isinstance(caps, dict) or set(caps) - known:
        raise ProviderConfigError(f"model {name!r}: capabilities take {sorted(known)}")
    return RemoteModel(
        name=name,
        base_url=str(spec["base_url"]).rstrip("/"),
        model=str(spec.get("model") or name),
        api_key_env=spec.get("api_key_env"),
        timeout_s=float(spec.get("timeout_s", 600.0)),
        capabilities=Capabilities(**caps),
        extra_body=_extra(name, spec.get("extra_body")),
    )


def _extra(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProviderConfigError(f"model {name!r}: extra_body must be an object")
    return value
