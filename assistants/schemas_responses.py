"""Request bodies of the Responses and Conversations APIs (issue 15).

Items and tools stay plain dicts here: api/response_input.py translates them into the
Assistants shapes (MessageCreate, RunOptions), whose validators then check them, so one set of
rules (tool names, JSON schemas, metadata) serves both APIs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from assistants.schemas import Metadata, Strict, _check_metadata

MAX_ITEMS = 20
# The `include` values of the current spec (openai-python's ResponseIncludable).
Includable = Literal[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
]  # items one conversations.create / items.create may carry


class ConversationRef(Strict):
    id: str


class PromptFields(Strict):
    """What shapes a response's prompt: shared by create and input_tokens."""

    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None

    @property
    def conversation_id(self) -> str | None:
        c = self.conversation
        return c.id if isinstance(c, ConversationRef) else c


class ResponseCreate(PromptFields):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=16)  # as OpenAI's
    store: bool | None = None
    metadata: Metadata = None
    background: bool | None = None
    stream: bool | None = None
    include: list[Includable] | None = None
    max_tool_calls: int | None = Field(default=None, ge=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # Stored and echoed; what each does here is in the README's Responses table.
    user: str | None = Field(default=None, max_length=512)
    safety_identifier: str | None = Field(default=None, max_length=512)
    prompt_cache_key: str | None = Field(default=None, max_length=1024)
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    service_tier: str | None = None
    stream_options: dict[str, Any] | None = None
    client_metadata: dict[str, Any] | None = None  # sent by Codex CLI
    prompt: dict[str, Any] | None = None
    context_management: list[dict[str, Any]] | None = None
    background_options: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None
    access_programs: dict[str, Any] | None = None
    image: dict[str, Any] | None = None

    _meta = field_validator("metadata")(_check_metadata)


class InputTokensCount(PromptFields):
    """POST /v1/responses/input_tokens: the parts of a create request that shape the prompt."""

    personality: Any = None  # accepted and not acted on

    def as_create(self) -> ResponseCreate:
        return ResponseCreate.model_validate(self.model_dump(exclude_unset=True, exclude={"personality"}))


class ConversationCreate(Strict):
    items: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_ITEMS)
    metadata: Metadata = None

    _meta = field_validator("metadata")(_check_metadata)


class ConversationUpdate(Strict):
    metadata: Metadata = None

    _meta = field_validator("metadata")(_check_metadata)


class ItemsCreate(Strict):
    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ITEMS)
