"""Payloads of workflows and activities (what Temporal serializes): single dataclasses, so they can grow.

New fields always get defaults, so histories recorded before they existed still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunInput:
    run_id: str
    thread_id: str
    project_id: str


@dataclass
class RunResult:
    status: str


@dataclass
class RunRef:
    run_id: str
    project_id: str
    # Set by RunWorkflow's "history-by-reference" path: the plan leaves out tools and
    # response_format (user data); the generate activity reads them from the run's row.
    by_reference: bool = False


@dataclass
class RunPlan:
    """What the workflow needs to know about a run to orchestrate it (read once at start)."""

    model: str
    temperature: float
    top_p: float
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    response_format: Any = "auto"
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    expires_seconds: int = 600
    assistant_id: str = ""
    inference_task_queue: str = "assistants-inference"


@dataclass
class ChatMessage:
    role: str  # system | user | assistant | tool
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    # A user message holding images: its content parts in order, as the Messages API stores them
    # (`text`, `image_file`, `image_url`); `content` is then their text alone. References only:
    # the generate activity reads image bytes (activities/images.py).
    parts: list[dict[str, Any]] | None = None


@dataclass
class PromptInput:
    run_id: str
    project_id: str


@dataclass
class Prompt:
    messages: list[ChatMessage]
    # "auto" trims the oldest turns to fit; "last_messages" keeps the last N thread messages.
    truncation: str = "auto"
    last_messages: int | None = None


@dataclass
class GenerateInput:
    run_id: str
    project_id: str
    thread_id: str
    assistant_id: str
    turn: int
    model: str
    messages: list[ChatMessage]
    message_id: str
    step_id: str
    temperature: float
    top_p: float
    max_new_tokens: int | None
    max_prompt_tokens: int | None
    truncation: str = "auto"
    last_messages: int | None = None
    response_format: Any = "auto"
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    seed: int | None = None
    # True (workflows since "history-by-reference"): `messages`, `tools`, `response_format`,
    # `tool_choice` and truncation are empty here; the activity reads them from Postgres, records
    # its output there (run_turns) and returns only ids and counts.
    by_reference: bool = False
    # The run's `reasoning_effort` (issue 14), read from its row with the rest of the turn's
    # context; it reaches models whose chat template takes it.
    reasoning_effort: str | None = None


@dataclass
class ToolCall:
    id: str
    type: str  # function | code_interpreter | file_search
    name: str = ""
    arguments: str = ""


@dataclass
class GenerateOutput:
    text: str
    prompt_tokens: int
    completion_tokens: int
    # stop | length | prompt_too_long | tool_calls | cancelled
    finish_reason: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Which rows the activity created: the message (text) and/or a tool_calls step.
    created_message: bool = False
    tool_step_id: str = ""
    # Of prompt_tokens, those the engine reused from its cache rather than computed (reported by
    # a remote engine; the in-process engine reuses none); of completion_tokens, reasoning ones.
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class StepResult:
    run_id: str
    project_id: str
    turn: int
    output: GenerateOutput
    message_id: str
    step_id: str


@dataclass
class ToolCallsInput:
    run_id: str
    project_id: str
    step_id: str
    tool_calls: list[ToolCall]
    expires_seconds: int


@dataclass
class ToolOutputsInput:
    run_id: str
    project_id: str
    step_id: str
    outputs: dict[str, str]
    # By reference: the API stored the outputs in run_tool_results first; the update carries
    # only the call ids (and `outputs` stays empty), so no output text enters workflow history.
    call_ids: list[str] = field(default_factory=list)
    by_reference: bool = False


@dataclass
class FinishRunInput:
    run_id: str
    project_id: str
    status: str  # completed | incomplete | failed | cancelled | expired
    incomplete_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None


# --- Files, vector stores, retrieval (owner: files; issue 5) ----------------------------------


@dataclass
class IngestFileInput:
    """One file into one vector store. Workflow id = `ingest-<vector_store_id>-<file_id>`."""

    project_id: str
    vector_store_id: str
    file_id: str
    max_chunk_size_tokens: int = 800
    chunk_overlap_tokens: int = 400


@dataclass
class IngestFileResult:
    status: str  # completed | failed | cancelled
    chunks: int = 0
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class ParseFileOutput:
    chars: int


@dataclass
class EmbedFileOutput:
    chunks: int
    usage_bytes: int


@dataclass
class MarkFileInput:
    project_id: str
    vector_store_id: str
    file_id: str
    status: str  # failed | cancelled
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class CountInputTokensInput:
    """POST /v1/responses/input_tokens: the request waits in `input_token_counts` under this id."""

    project_id: str
    request_id: str
    inference_task_queue: str


@dataclass
class FileSearchInput:
    """A search over vector stores (POST /v1/vector_stores/{id}/search, and file_search in runs).

    Give `vector_store_ids`, or `run_id`: then the stores come from the run's thread and assistant
    `tool_resources.file_search.vector_store_ids`."""

    project_id: str
    query: str
    vector_store_ids: list[str] = field(default_factory=list)
    run_id: str | None = None
    max_num_results: int = 20
    score_threshold: float = 0.0
    ranker: str = "auto"
    filters: dict[str, Any] | None = None


@dataclass
class FileSearchResult:
    file_id: str
    filename: str
    score: float
    text: str
    chunk_ids: list[str] = field(default_factory=list)
    vector_store_id: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileSearchOutput:
    results: list[FileSearchResult] = field(default_factory=list)
    vector_store_ids: list[str] = field(default_factory=list)


# --- Webhooks (owner: webhooks; issue 3 item 6) ---------------------------------------------


@dataclass
class EmitRunEventOutput:
    event_id: str | None = None
    webhook_ids: list[str] = field(default_factory=list)


@dataclass
class DeliverWebhookInput:
    event_id: str
    webhook_id: str
    # How long to keep retrying, from the first attempt (the activity's schedule-to-close).
    delivery_window_seconds: int = 3 * 24 * 3600


@dataclass
class DeliverWebhookOutput:
    status: str  # delivered | skipped (endpoint deleted) | failed (window spent)
    attempts: int = 0
    http_status: int | None = None


@dataclass
class WebhookDeliveryFailed:
    event_id: str
    webhook_id: str
    error: str


# --- end webhooks ---------------------------------------------------------------------------


# --- Built-in tools in runs (code_interpreter, file_search) ----------------------------------


@dataclass
class BuiltinToolsInput:
    run_id: str
    project_id: str
    thread_id: str
    step_id: str
    calls: list[ToolCall]
    # False when function calls in the same step still wait for outputs.
    complete_step: bool = True
    # True: outputs stay in run_tool_results (the output is empty); False: runs started before.
    by_reference: bool = False


@dataclass
class BuiltinToolsOutput:
    outputs: dict[str, str] = field(default_factory=dict)  # call id -> what the model reads next


# --- Reconciler: settles runs whose workflow is gone (issue 11) ------------------------------


@dataclass
class ReconcileRunsInput:
    # Pages of active runs one tick may check (each page is one activity call).
    max_batches: int = 10


@dataclass
class ReconcileRunsOutput:
    checked: int = 0
    settled: int = 0
    # Where the next tick starts (a run's seq; 0 = from the oldest): a backlog larger than one
    # tick's bound is covered over several ticks instead of re-checking the same oldest rows.
    next_seq: int = 0


@dataclass
class ReconcileBatchInput:
    after_seq: int = 0


@dataclass
class ReconcileBatchOutput:
    checked: int = 0
    settled: int = 0
    last_seq: int | None = None  # None: no row after `after_seq` (the scan is complete)
