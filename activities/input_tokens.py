"""The count_input_tokens activity (POST /v1/responses/input_tokens), on the inference task queue:
the request is rendered exactly as a response's first turn would be, by the same code
(activities/prompt.py for instructions, documents and the conversation so far; the generate
activity's template rendering and truncation), and the prompt's tokens are counted. A local model
counts with its own tokenizer and chat template; a remote model's engine counts through its
`/tokenize` endpoint (vLLM's), with the Chat Completions body a turn would send.

The request waits in `input_token_counts` (the API wrote it there): the workflow's history holds
only the row's id and the count. Counting has no effects, so a retried attempt simply counts again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.history_items import item_messages, merged
from activities.prompt import (
    CHARS_PER_TOKEN,
    TOOL_OUTPUT_TOKENS_PER_CHAR,
    TurnContext,
    stored_message,
    system_prompt,
    thread_history,
)
from activities.remote_turn import chat_body
from assistants.model_providers import RemoteModel
from assistants.payloads import ChatMessage, CountInputTokensInput, GenerateInput


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidRequest", non_retryable=True)


def _item_messages(item: dict[str, Any], output_chars: int) -> list[ChatMessage]:
    """One input item: a message (`content` as the Messages API stores it), or any other item as
    a response renders it from its thread (activities/history_items.py)."""
    if item["type"] == "message":
        return [stored_message(item["role"], item["content"])]
    return item_messages(item, output_chars)


class InputTokenCounting:
    """Mixed into InferenceActivities: uses its registry, settings, images and prompt fitting."""

    registry: Any
    settings: Any
    remote_models: dict[str, RemoteModel]
    pool: Any

    async def _count_context(self, project_id: str, req: dict[str, Any], context_tokens: int) -> TurnContext:
        tools: list[dict[str, Any]] = req.get("tools") or []
        run = {
            "id": "",
            "assistant_id": "",
            "thread_id": req.get("thread_id") or "",
            "instructions": req.get("instructions"),
            "tools": tools,
            "vector_store_ids": req.get("vector_store_ids") or [],
        }
        messages: list[ChatMessage] = []
        system = await system_prompt(self.pool, run, project_id)
        if system:
            messages.append(ChatMessage(role="system", content=system))
        if req.get("thread_id"):
            budget = context_tokens * CHARS_PER_TOKEN
            messages += await thread_history(
                self.pool, req["thread_id"], "", budget, None, req.get("until_seq")
            )
        chars = max(1, context_tokens // TOOL_OUTPUT_TOKENS_PER_CHAR)
        messages += merged([m for i in req.get("items") or [] for m in _item_messages(i, chars)])
        return TurnContext(
            messages=messages,
            tools=tools,
            tool_choice=req.get("tool_choice") or "auto",
            response_format=req.get("response_format") or "auto",
            truncation=req.get("truncation") or "auto",
            reasoning_effort=req.get("reasoning_effort"),
        )

    @staticmethod
    def _as_turn(project_id: str, model: str, ctx: TurnContext, max_new: int | None) -> GenerateInput:
        return GenerateInput(
            run_id="",
            project_id=project_id,
            thread_id="",
            assistant_id="",
            turn=0,
            model=model,
            messages=ctx.messages,
            message_id="",
            step_id="",
            temperature=0.0,
            top_p=1.0,
            max_new_tokens=max_new,
            max_prompt_tokens=None,
            truncation=ctx.truncation,
            response_format=ctx.response_format,
            tools=ctx.tools,
            tool_choice=ctx.tool_choice,
            reasoning_effort=ctx.reasoning_effort,
        )

    @activity.defn(name="count_input_tokens")
    async def count_input_tokens(self, inp: CountInputTokensInput) -> int:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT data FROM input_token_counts WHERE id = %s AND project_id = %s",
                    (inp.request_id, inp.project_id),
                )
            ).fetchone()
        if row is None:
            raise _invalid(f"input token count request {inp.request_id} not found")
        req = row["data"]
        remote = self.remote_models.get(req["model"])
        if remote is not None:
            ctx = await self._count_context(inp.project_id, req, remote.capabilities.context_length)
            turn = self._as_turn(inp.project_id, req["model"], ctx, req.get("max_output_tokens"))
            turn = await self._with_images(turn, remote.capabilities.vision)  # type: ignore[attr-defined]
            return await self._remote_count(remote, turn)
        if req["model"] not in self.registry.names():
            raise _invalid(f"unknown model {req['model']!r}")
        model = await asyncio.to_thread(self.registry.get, req["model"])
        ctx = await self._count_context(inp.project_id, req, self.settings.max_context_tokens)
        turn = self._as_turn(inp.project_id, req["model"], ctx, req.get("max_output_tokens"))
        turn = await self._with_images(turn, model.takes_images)  # type: ignore[attr-defined]
        return await asyncio.to_thread(self._local_count, model, turn)

    def _local_count(self, model: Any, turn: GenerateInput) -> int:
        messages, specs, native = self._template_input(model, turn)  # type: ignore[attr-defined]
        tools = specs if native else None
        ids = self._fit_prompt(model, turn, messages, tools)  # type: ignore[attr-defined]
        if ids is None:  # too long for the context, truncation disabled: the whole of it
            ids = model.encode_chat(messages, tools=tools, reasoning_effort=turn.reasoning_effort)
        return len(ids)

    async def _remote_count(self, model: RemoteModel, turn: GenerateInput) -> int:
        body = chat_body(turn, model)
        payload: dict[str, Any] = {
            "model": model.model,
            "messages": body["messages"],
            "add_generation_prompt": True,
        }
        if body.get("tools"):
            payload["tools"] = body["tools"]
        if body.get("reasoning_effort"):
            payload["chat_template_kwargs"] = {"reasoning_effort": body["reasoning_effort"]}
        headers = {"Authorization": f"Bearer {model.api_key()}"} if model.api_key() else {}
        root = model.base_url.removesuffix("/").removesuffix("/v1")
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0)) as client:
                resp = await client.post(f"{root}/tokenize", json=payload, headers=headers)
        except httpx.TransportError as exc:
            raise ApplicationError(f"model {model.name!r} ({root}): {type(exc).__name__}: {exc}") from exc
        if resp.status_code in (404, 405):
            raise _invalid(
                f"model {model.name!r} is served by an engine without a /tokenize endpoint: its input"
                " tokens cannot be counted here"
            )
        if resp.status_code >= 500:
            raise ApplicationError(f"model {model.name!r} ({root}/tokenize) answered {resp.status_code}")
        if resp.status_code >= 400:
            raise _invalid(
                f"model {model.name!r} ({root}/tokenize) answered {resp.status_code}: {resp.text[:500]}"
            )
        return int(resp.json()["count"])
