"""Pydantic models of the request bodies the API accepts (OpenAI Assistants API v2 shapes).

Unknown fields are refused with 400, as OpenAI does. Response objects are plain dicts built by
`assistants.objects`, stored whole in Postgres.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TOOLS = 128
_FN_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


# Caps on user JSON schemas (function parameters, response_format): the worker compiles them into
# grammars and validates tool arguments against them, so their cost must be bounded at create time.
MAX_SCHEMA_BYTES = 32 * 1024
MAX_SCHEMA_DEPTH = 24
MAX_PATTERN_LENGTH = 512
# A quantified group that itself holds a quantifier or an alternation, such as `(a+)+`, `(a*)*` or
# `(a|aa)+`: the shapes that make a backtracking engine (Python's `re`, used by jsonschema) take
# exponential time. Refused, since tool arguments are matched against them on the worker.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*(?:[+*}]|\|)(?:[^()\\]|\\.)*\)(?:[+*]|\{\d*,\d*\})")


def _pattern_problem(pattern: str) -> str | None:
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"a pattern is longer than {MAX_PATTERN_LENGTH} characters"
    if _NESTED_QUANTIFIER.search(pattern):
        return f"pattern {pattern[:80]!r} nests quantifiers (catastrophic backtracking)"
    return None


def check_schema_limits(schema: dict[str, Any]) -> None:
    """Raise ValueError if a user schema is too large, too deep, or holds an unsafe regex."""
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise ValueError(f"the schema is larger than {MAX_SCHEMA_BYTES} bytes of JSON")
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise ValueError(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
        if isinstance(node, dict):
            patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
            if isinstance(node.get("patternProperties"), dict):
                patterns += list(node["patternProperties"])
            for pattern in patterns:
                problem = _pattern_problem(pattern)
                if problem:
                    raise ValueError(problem)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_metadata(v: dict[str, str] | None) -> dict[str, str] | None:
    if v is None:
        return v
    if len(v) > 16:
        raise ValueError("metadata may hold at most 16 pairs")
    for k, val in v.items():
        if len(k) > 64:
            raise ValueError("metadata keys may be at most 64 characters")
        if len(val) > 512:
            raise ValueError("metadata values may be at most 512 characters")
    return v


Metadata = Annotated[dict[str, str] | None, Field(default=None)]


def _check_attributes(v: dict[str, Any] | None) -> dict[str, Any] | None:
    """Vector store file `attributes`: 16 pairs, 64-character keys, values strings of at most
    512 characters, numbers or booleans (the spec's VectorStoreFileAttributes)."""
    if v is None:
        return v
    if len(v) > 16:
        raise ValueError("attributes may hold at most 16 pairs")
    for k, val in v.items():
        if len(k) > 64:
            raise ValueError("attribute keys may be at most 64 characters")
        if isinstance(val, str) and len(val) > 512:
            raise ValueError("attribute values may be at most 512 characters")
    return v


# The SDK's `ReasoningEffort` (openai/types/shared/reasoning_effort.py), every value of it.
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None


class FunctionDefinition(Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _FN_NAME.match(v):
            raise ValueError("function name must be 1-64 characters of a-z, A-Z, 0-9, _ and -")
        return v

    @field_validator("parameters")
    @classmethod
    def _schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        check_schema_limits(v)
        try:
            jsonschema.Draft202012Validator.check_schema(v)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"parameters is not a valid JSON Schema: {exc.message}") from None
        if v.get("type", "object") != "object":
            raise ValueError('parameters must describe an object ("type": "object")')
        return v


class FunctionTool(Strict):
    type: Literal["function"]
    function: FunctionDefinition


class RankingOptions(Strict):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: float = Field(default=0.0, ge=0.0, le=1.0)


class FileSearchSettings(Strict):
    max_num_results: int | None = Field(default=None, ge=1, le=50)
    ranking_options: RankingOptions | None = None


class FileSearchTool(Strict):
    type: Literal["file_search"]
    file_search: FileSearchSettings | None = None


class CodeInterpreterTool(Strict):
    type: Literal["code_interpreter"]


class RetrievalTool(Strict):
    """v1's `retrieval`, mapped onto file_search."""

    type: Literal["retrieval"]


Tool = Annotated[
    FunctionTool | FileSearchTool | CodeInterpreterTool | RetrievalTool, Field(discriminator="type")
]


def _check_tools(tools: list[Any] | None) -> list[Any] | None:
    if tools is None:
        return tools
    if len(tools) > MAX_TOOLS:
        raise ValueError(f"at most {MAX_TOOLS} tools are allowed")
    names = [t.function.name for t in tools if isinstance(t, FunctionTool)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate function names: {', '.join(dupes)}")
    return tools


class CodeInterpreterResources(Strict):
    file_ids: list[str] = Field(default_factory=list, max_length=20)


class VectorStoreSpec(Strict):
    file_ids: list[str] = Field(default_factory=list, max_length=10000)
    chunking_strategy: dict[str, Any] | None = None
    metadata: Metadata = None


class FileSearchResources(Strict):
    vector_store_ids: list[str] = Field(default_factory=list, max_length=1)
    vector_stores: list[VectorStoreSpec] | None = Field(default=None, max_length=1)


class ToolResources(Strict):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


class JSONSchemaFormat(Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            check_schema_limits(v)
            try:
                jsonschema.Draft202012Validator.check_schema(v)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from None
        return v


class ResponseFormatText(Strict):
    type: Literal["text"]


class ResponseFormatJSONObject(Strict):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(Strict):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


ResponseFormat = (
    Literal["auto"]
    | Annotated[
        ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema, Field(discriminator="type")
    ]
    | None
)


class AssistantFields(Strict):
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[Tool] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    response_format: ResponseFormat = None
    reasoning_effort: ReasoningEffort = None
    file_ids: list[str] | None = None  # v1

    _meta = field_validator("metadata")(_check_metadata)
    _tools = field_validator("tools")(_check_tools)


class AssistantCreate(AssistantFields):
    model: str


class AssistantUpdate(AssistantFields):
    model: str | None = None


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ImageFileRef(Strict):
    file_id: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageFilePart(Strict):
    type: Literal["image_file"]
    image_file: ImageFileRef


class ImageURLRef(Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageURLPart(Strict):
    type: Literal["image_url"]
    image_url: ImageURLRef


ContentPart = Annotated[TextPart | ImageFilePart | ImageURLPart, Field(discriminator="type")]


class AttachmentTool(Strict):
    type: Literal["code_interpreter", "file_search"]


class Attachment(Strict):
    file_id: str
    tools: list[AttachmentTool] = Field(default_factory=list)


class MessageCreate(Strict):
    role: Literal["user", "assistant"]
    content: str | list[ContentPart]
    attachments: list[Attachment] | None = None
    metadata: Metadata = None
    file_ids: list[str] | None = None  # v1

    _meta = field_validator("metadata")(_check_metadata)

    @field_validator("content")
    @classmethod
    def _content(cls, v: str | list[Any]) -> str | list[Any]:
        if isinstance(v, list) and not v:
            raise ValueError("content must not be empty")
        if isinstance(v, str) and len(v) > 256_000:
            raise ValueError("content may be at most 256000 characters")
        return v


class MessageUpdate(Strict):
    metadata: Metadata = None
    _meta = field_validator("metadata")(_check_metadata)


class ThreadCreate(Strict):
    # OpenAI sets no cap on the count (a thread holds up to 100,000 messages); the request body
    # limit (api/limits_body.py) bounds it.
    messages: list[MessageCreate] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    _meta = field_validator("metadata")(_check_metadata)


class ThreadUpdate(Strict):
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    _meta = field_validator("metadata")(_check_metadata)


class TruncationStrategy(Strict):
    type: Literal["auto", "last_messages"]
    last_messages: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _needs_count(self) -> TruncationStrategy:
        if self.type == "last_messages" and self.last_messages is None:
            raise ValueError("last_messages is required when type is 'last_messages'")
        return self


class NamedFunction(Strict):
    name: str


class FunctionChoice(Strict):
    type: Literal["function"]
    function: NamedFunction


class BuiltinChoice(Strict):
    type: Literal["file_search", "code_interpreter"]


ToolChoice = Literal["none", "auto", "required"] | FunctionChoice | BuiltinChoice | None


class RunOptions(Strict):
    model: str | None = None
    instructions: str | None = Field(default=None, max_length=256_000)
    tools: list[Tool] | None = None
    metadata: Metadata = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = None
    max_prompt_tokens: int | None = Field(default=None, ge=256)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat = None
    reasoning_effort: ReasoningEffort = None

    _meta = field_validator("metadata")(_check_metadata)
    _tools = field_validator("tools")(_check_tools)


class RunCreate(RunOptions):
    assistant_id: str
    additional_instructions: str | None = Field(default=None, max_length=256_000)
    additional_messages: list[MessageCreate] | None = None  # no cap, as in the spec


class ThreadAndRunCreate(RunOptions):
    assistant_id: str
    thread: ThreadCreate | None = None
    tool_resources: ToolResources | None = None


class RunUpdate(Strict):
    metadata: Metadata = None
    _meta = field_validator("metadata")(_check_metadata)


class ToolOutput(Strict):
    tool_call_id: str
    output: str = Field(max_length=512_000)


class SubmitToolOutputs(Strict):
    tool_outputs: list[ToolOutput] = Field(min_length=1, max_length=128)
    stream: bool | None = None


# --- vector stores ------------------------------------------------------------------------------

Attributes = dict[str, str | float | bool]


class ExpiresAfter(Strict):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStoreCreate(Strict):
    name: str | None = None
    description: str | None = None
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    chunking_strategy: dict[str, Any] | None = None
    expires_after: ExpiresAfter | None = None
    metadata: Metadata = None
    _meta = field_validator("metadata")(_check_metadata)


class VectorStoreUpdate(Strict):
    name: str | None = None
    expires_after: ExpiresAfter | None = None
    metadata: Metadata = None
    _meta = field_validator("metadata")(_check_metadata)


class VectorStoreFileCreate(Strict):
    file_id: str
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None
    _attrs = field_validator("attributes")(_check_attributes)


class VectorStoreFileUpdate(Strict):
    attributes: Attributes | None
    _attrs = field_validator("attributes")(_check_attributes)


class BatchFile(Strict):
    file_id: str
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None
    _attrs = field_validator("attributes")(_check_attributes)


class VectorStoreFileBatchCreate(Strict):
    file_ids: list[str] | None = Field(None, max_length=2000)
    files: list[BatchFile] | None = Field(None, max_length=2000)
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None
    _attrs = field_validator("attributes")(_check_attributes)


class SearchRanking(Strict):
    ranker: str | None = None
    score_threshold: float = Field(0.0, ge=0.0, le=1.0)


class VectorStoreSearch(Strict):
    query: str | list[str] = Field(min_length=1)
    max_num_results: int = Field(10, ge=1, le=50)
    ranking_options: SearchRanking | None = None
    filters: dict[str, Any] | None = None
    rewrite_query: bool = False


# --- Uploads (issue 14) ---------------------------------------------------------------------


class FileExpiresAfter(Strict):
    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2_592_000)


class UploadCreate(Strict):
    bytes: int = Field(ge=0)
    filename: str = Field(min_length=1, max_length=1024)
    mime_type: str = Field(min_length=1, max_length=255)
    purpose: str
    expires_after: FileExpiresAfter | None = None


class UploadComplete(Strict):
    part_ids: list[str] = Field(max_length=100_000)
    md5: str | None = None
