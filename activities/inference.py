"""The generate activity: one model turn of a run, on the inference task queue.

The model is loaded once per worker process (ModelRegistry) and shared by every concurrent run
through the batching engine. Token deltas never enter workflow history: they are appended to the
run's event log in Postgres (and NOTIFYed) as they are generated.

Tool calls: with `tool_choice` "auto" the model answers freely in its tool-call format and the
output is parsed (activities/llm/toolcalls.py); for models without a tool-aware template a grammar
holds any call it starts to a known function and its schema, and the first call's arguments stream
as step deltas (activities/call_stream.py says when). When a call is required or a function is
named, the call is forced by constrained decoding: the function name from an enum, then the
arguments from the function's JSON schema, so they always parse and validate.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from typing import Any

import httpx
import jsonschema
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.call_stream import AutoCallStream
from activities.heartbeat import heartbeating
from activities.images import ImageError, has_images, no_images_message, with_image_data
from activities.input_tokens import InputTokenCounting
from activities.llm import grammar, toolcalls
from activities.prompt import load_turn_context
from activities.remote_turn import RemoteTurn, chat_messages, turn_seed
from activities.turn_record import record_turn, recorded_turn
from activities.turn_stream import MessageStream, ToolStepStream
from assistants import metrics
from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import load_run
from assistants.files_store import FilesStore
from assistants.ids import derived_id
from assistants.model_providers import RemoteModel
from assistants.payloads import GenerateInput, GenerateOutput, ToolCall
from assistants.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0
# Without a max_output_tokens / max_completion_tokens the answer may take all the context the
# prompt leaves; a prompt trimmed to fit (truncation "auto") leaves at least this much.
OUTPUT_RESERVE_TOKENS = 512
EMPTY_PARAMS: dict[str, Any] = {"type": "object", "properties": {}}


def _forced_name(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        return str(tool_choice["function"]["name"])
    if isinstance(tool_choice, dict) and tool_choice.get("type") in toolcalls.BUILTIN_FUNCTIONS:
        return str(toolcalls.BUILTIN_FUNCTIONS[tool_choice["type"]]["name"])
    return None


def _answer_schema(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return {"type": "object"}
    if response_format.get("type") == "json_schema":
        return response_format.get("json_schema", {}).get("schema") or {"type": "object"}
    return None


async def _text_constraint(
    model: Any, response_format: Any, specs: list[dict[str, Any]], guided_calls: bool = False
) -> Any:
    """Structured output by constrained decoding (json_object / json_schema): the JSON answer
    alone, or with tools either that answer or one tool call. Without structured output,
    `guided_calls` holds the calls the model starts to the tools and their schemas."""
    schema = _answer_schema(response_format)
    if schema is None:
        if not guided_calls:
            return None
        compiler = await asyncio.to_thread(lambda: model.grammar_compiler)
        return await grammar.tool_calls_constraint_async(
            compiler, specs, toolcalls.OPEN_TAG, toolcalls.CLOSE_TAG
        )
    if not specs:
        return await model.json_schema_constraint_async(schema)
    compiler = await asyncio.to_thread(lambda: model.grammar_compiler)
    return await grammar.answer_or_call_constraint_async(
        compiler, schema, specs, toolcalls.OPEN_TAG, toolcalls.CLOSE_TAG
    )


@dataclasses.dataclass
class _OnlyRepeats:
    """A free turn whose only output was calls this run already made: dropped, and answered
    again without tools; what it generated still counts."""

    completion_tokens: int


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _already_called(inp: GenerateInput, call: toolcalls.ParsedCall) -> bool:
    """True if this run already made the same call (same function, same arguments)."""
    for m in inp.messages:
        for c in m.tool_calls or []:
            try:
                args = json.loads(c["function"]["arguments"])
            except ValueError:
                args = c["function"]["arguments"]
            if c["function"]["name"] == call.name and _canonical(args) == _canonical(call.arguments):
                return True
    return False


class InferenceActivities(InputTokenCounting):
    def __init__(self, registry: Any, pool: DbPool, settings: Settings) -> None:
        self.registry = registry
        self.pool = pool
        self.settings = settings
        self.remote_models = settings.remote_models()
        self._http: httpx.AsyncClient | None = None  # for remote models, opened on first use
        self._files: FilesStore | None = None  # image files, opened on first use

    @activity.defn(name="generate")
    async def generate(self, inp: GenerateInput) -> GenerateOutput:
        remote_model = self.remote_models.get(inp.model)
        if inp.model not in self.registry.names() and remote_model is None:
            raise ApplicationError(f"unknown model {inp.model!r}", type="ModelNotFound", non_retryable=True)
        attempt = activity.info().attempt
        if inp.by_reference:
            recorded = await recorded_turn(self.pool, inp.run_id, inp.turn)
            if recorded is not None:  # an earlier attempt finished this turn, then died
                return recorded
        if remote_model is not None:
            return await self._remote(remote_model, inp, attempt)
        model = await asyncio.to_thread(self.registry.get, inp.model)
        if attempt > 1:
            await MessageStream.discard_earlier_attempts(self.pool, inp, attempt)
        async with heartbeating(HEARTBEAT_EVERY_S):
            try:
                if not inp.by_reference:  # a run started before history-by-reference
                    return await self._generate(model, inp, attempt)
                full = await self._full_input(inp, self.settings.max_context_tokens)
                full = await self._with_images(full, model.takes_images)
                out = await self._generate(model, full, attempt)
                return await record_turn(self.pool, inp, out)
            except grammar.GrammarCompileTimeout as exc:  # the same schema would time out again
                raise ApplicationError(str(exc), type="InvalidRequest", non_retryable=True) from None

    async def _full_input(self, inp: GenerateInput, context_tokens: int) -> GenerateInput:
        """`inp` (by reference) with the turn's prompt, tools and options read from Postgres."""
        async with self.pool.connection() as conn:
            run = await load_run(conn, inp.run_id, inp.project_id)
        if run is None:
            raise ApplicationError(f"run {inp.run_id} not found", type="InvalidRequest", non_retryable=True)
        ctx = await load_turn_context(self.pool, run, inp.project_id, inp.turn, context_tokens)
        return dataclasses.replace(
            inp,
            messages=ctx.messages,
            tools=ctx.tools,
            tool_choice=ctx.tool_choice,
            response_format=ctx.response_format,
            truncation=ctx.truncation,
            last_messages=ctx.last_messages,
            reasoning_effort=ctx.reasoning_effort,
        )

    async def _with_images(self, inp: GenerateInput, takes_images: bool) -> GenerateInput:
        """A turn whose thread has images: refused at once on a model without vision (never a
        silent placeholder), else its image parts carry their bytes as data: URLs."""
        if not has_images(inp.messages):
            return inp
        if not takes_images:
            raise ApplicationError(no_images_message(inp.model), type="InvalidRequest", non_retryable=True)
        if self._files is None:
            from assistants.storage import make_storage

            self._files = FilesStore(self.pool, make_storage(self.settings), self.settings.max_file_bytes)
        try:
            messages = await with_image_data(inp.messages, self._files, inp.project_id)
        except ImageError as exc:
            raise ApplicationError(str(exc), type="InvalidRequest", non_retryable=True) from None
        return dataclasses.replace(inp, messages=messages)

    async def _remote(self, model: RemoteModel, inp: GenerateInput, attempt: int) -> GenerateOutput:
        """A turn on an OpenAI-compatible engine (activities/remote_turn.py): same rows, same log."""
        if self._http is None:
            self._http = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))
        if attempt > 1:
            await MessageStream.discard_earlier_attempts(self.pool, inp, attempt)
        turn = RemoteTurn(self.pool, self._http)
        async with heartbeating(HEARTBEAT_EVERY_S):
            if not inp.by_reference:
                return await turn.generate(model, inp, attempt)
            full = await self._full_input(inp, model.capabilities.context_length)
            full = await self._with_images(full, model.capabilities.vision)
            return await record_turn(self.pool, inp, await turn.generate(model, full, attempt))

    @staticmethod
    def _output_reserve(inp: GenerateInput, context: int) -> int:
        """The tokens a prompt must leave for the answer: the turn's budget if it has one, else
        OUTPUT_RESERVE_TOKENS; never more than half the context, so a large budget never
        crowds the prompt out."""
        return min(inp.max_new_tokens or OUTPUT_RESERVE_TOKENS, context // 2)

    @staticmethod
    def output_limit(inp: GenerateInput, context: int, prompt_tokens: int) -> int:
        """The most tokens this turn may generate: what the context has left after the prompt,
        and no more than the turn's budget (the rest of max_completion_tokens) if it has one.
        Generation cut by either ends `length`, and the run incomplete."""
        room = context - prompt_tokens
        if inp.max_new_tokens:
            room = min(room, inp.max_new_tokens)
        return max(1, room)

    @staticmethod
    def _template_input(
        model: Any, inp: GenerateInput
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        """(template messages, the function specs offered, whether the template renders tools
        itself): the prompt of the turn's first rendering, which input token counts render too."""
        specs = toolcalls.function_specs(inp.tools) if inp.tool_choice != "none" else []
        forced = _forced_name(inp.tool_choice)
        if forced is not None or (inp.tool_choice == "required" and specs):
            specs = [s for s in specs if forced is None or s["function"]["name"] == forced]
        native = toolcalls.template_supports_tools(model.tokenizer)
        return toolcalls.messages_for_template(chat_messages(inp.messages), specs, native), specs, native

    async def _generate(self, model: Any, inp: GenerateInput, attempt: int) -> GenerateOutput:
        messages, specs, native = self._template_input(model, inp)
        forced = _forced_name(inp.tool_choice)
        prompt_ids = await asyncio.to_thread(
            self._fit_prompt, model, inp, messages, specs if native else None
        )
        if prompt_ids is None:
            return GenerateOutput(
                text="", prompt_tokens=0, completion_tokens=0, finish_reason="prompt_too_long"
            )
        max_new = self.output_limit(inp, model.context_window, len(prompt_ids))
        if specs and (forced is not None or inp.tool_choice == "required"):
            return await self._forced_call(model, inp, attempt, prompt_ids, specs, max_new)
        out = await self._free_turn(model, inp, attempt, prompt_ids, specs, max_new, native)
        if isinstance(out, _OnlyRepeats):
            # The model only repeated calls it already made (small models loop): answer instead,
            # shown no tools. It still sees its earlier calls, and may imitate them: its markup
            # is held back from the text all the same (_free_turn filters every turn).
            log.info("run %s turn %d repeated its calls: answering without tools", inp.run_id, inp.turn)
            messages = toolcalls.messages_for_template(chat_messages(inp.messages), [], native)
            prompt_ids = await asyncio.to_thread(self._fit_prompt, model, inp, messages, None)
            if prompt_ids is None:
                return GenerateOutput(
                    text="", prompt_tokens=0, completion_tokens=0, finish_reason="prompt_too_long"
                )
            max_new = self.output_limit(inp, model.context_window, len(prompt_ids))
            answer = await self._free_turn(model, inp, attempt, prompt_ids, [], max_new)
            assert isinstance(answer, GenerateOutput)
            answer.completion_tokens += out.completion_tokens  # generated, then dropped: still spent
            return answer
        return out

    def _fit_prompt(
        self,
        model: Any,
        inp: GenerateInput,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
    ) -> list[int] | None:
        """Prompt ids, trimmed per the truncation strategy to leave room for the answer
        (`_output_reserve`); None if it cannot fit."""
        context = model.context_window
        limit = context - self._output_reserve(inp, context)
        if inp.max_prompt_tokens is not None:
            limit = min(limit, inp.max_prompt_tokens)
        effort = inp.reasoning_effort
        ids: list[int] = model.encode_chat(messages, tools=tools, reasoning_effort=effort)
        if len(ids) <= limit:
            return ids
        if inp.truncation != "auto":
            return None
        # The oldest turns go first: find the fewest to drop (binary search, log n renderings;
        # fewer kept messages never render longer), always keeping the newest one.
        droppable = [i for i, m in enumerate(messages) if m["role"] != "system"]
        lo, hi, best = 1, len(droppable) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            dropped = set(droppable[:mid])
            kept = [m for i, m in enumerate(messages) if i not in dropped]
            trial = model.encode_chat(kept, tools=tools, reasoning_effort=effort)
            if len(trial) <= limit:
                best, hi = trial, mid - 1
            else:
                lo = mid + 1
        return best

    def _request(
        self, inp: GenerateInput, prompt_ids: list[int], max_new: int, constraint: Any = None
    ) -> Any:
        from activities.llm.engine import GenerationRequest

        greedy = inp.temperature <= 0 or inp.top_p <= 0
        return GenerationRequest(
            prompt_ids=prompt_ids,
            max_new_tokens=max(1, max_new),
            temperature=0.0 if greedy else inp.temperature,
            top_p=1.0 if greedy else inp.top_p,
            seed=turn_seed(inp),  # a retry after a crash samples the same text again
            constraint=constraint,
            # A prompt with images brings the processor's tensors for its prefill (vision.py).
            prefill_inputs=getattr(prompt_ids, "prefill_inputs", None),
        )

    async def _free_turn(
        self,
        model: Any,
        inp: GenerateInput,
        attempt: int,
        prompt_ids: list[int],
        specs: list[dict[str, Any]],
        max_new: int,
        native: bool = False,
    ) -> GenerateOutput | _OnlyRepeats:
        """The model answers freely: text streams as message deltas; tool-call markup is held
        back (on every turn: a model shown no tools may still imitate the calls in its history),
        and the first call streams as step deltas (activities/call_stream.py)."""
        stream = MessageStream(self.pool, inp, attempt)
        markup = toolcalls.MarkupFilter(bare_json=bool(specs))
        auto = AutoCallStream(self.pool, inp, attempt, specs) if specs and not native else None

        def on_delta(piece: str) -> None:
            stream.push(markup.feed(piece))
            if auto is not None and markup.in_call:
                auto.feed(markup)

        constraint = await _text_constraint(model, inp.response_format, specs, guided_calls=auto is not None)
        pump = asyncio.create_task(stream.pump())
        try:
            result = await model.engine.generate(
                self._request(inp, prompt_ids, max_new, constraint), on_delta
            )
        finally:
            stream.close()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            step = await auto.opened() if auto is not None else None
        timings = result.timings
        metrics.observe_generation(
            inp.model, timings.first_token_s, timings.total_s, result.completion_tokens
        )
        calls: list[ToolCall] = []
        completion = result.completion_tokens
        if step is not None and auto is not None:
            calls, used = await self._streamed_calls(
                model, inp, prompt_ids, result.text, auto, step, specs, max_new
            )
            completion += used
            text = stream.emitted
        elif specs:
            text_part, parsed = toolcalls.parse_tool_calls(result.text)
            fresh = [p for p in parsed if not _already_called(inp, p)]
            if parsed and not fresh and not stream.emitted.strip():
                return _OnlyRepeats(completion)
            calls, used = await self._validated_calls(model, inp, prompt_ids, fresh, specs, max_new)
            completion += used
            # Markup never reaches message text, even when the call in it was unusable.
            text = (
                stream.emitted if calls else (text_part if toolcalls.OPEN_TAG in result.text else result.text)
            )
        else:
            text = toolcalls.text_before_markup(result.text)
        rest = text[len(stream.emitted) :] if text.startswith(stream.emitted) else ""
        if rest:
            await stream.write_text(rest)
        out = GenerateOutput(
            text=text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=completion,
            finish_reason=result.finish_reason,
        )
        if calls and step is not None:
            out.tool_calls, out.finish_reason, out.tool_step_id = calls, "tool_calls", step.step_id
        elif calls:
            out.tool_calls, out.finish_reason = calls, "tool_calls"
            out.tool_step_id = (
                inp.step_id if not stream.created else derived_id("step", inp.run_id, inp.turn, "tools")
            )
            await ToolStepStream(self.pool, inp, attempt, out.tool_step_id).write_calls(calls)
        if stream.created or not calls:
            await stream.ensure_created()
            out.created_message = True
        return out

    async def _streamed_calls(
        self,
        model: Any,
        inp: GenerateInput,
        prompt_ids: list[int],
        output: str,
        auto: AutoCallStream,
        step: ToolStepStream,
        specs: list[dict[str, Any]],
        max_new: int,
    ) -> tuple[list[ToolCall], int]:
        """The calls of a turn whose first call streamed: that call with its arguments as
        streamed (continued under the schema if the output stopped inside them), then, when
        parallel calls are allowed, the others, added to the step's stream whole."""
        call, used = auto.call, 0
        assert call is not None
        if auto.reader.closed:
            await step.flush()
            call.arguments = auto.reader.raw
        else:
            schema = (
                next(s["function"] for s in specs if s["function"]["name"] == call.name).get("parameters")
                or EMPTY_PARAMS
            )
            more, used = await self._constrained_arguments(
                model, inp, prompt_ids, call.name, schema, step, max_new, (output, auto.reader.raw)
            )
            call.arguments = auto.reader.raw + more
        try:
            json.loads(call.arguments)
        except ValueError:
            raise ApplicationError(
                f"the model wrote arguments for {call.name} that do not parse",
                type="InvalidRequest",
                non_retryable=True,
            ) from None
        calls = [call]
        if inp.parallel_tool_calls:
            _, parsed = toolcalls.parse_tool_calls(output)
            rest = [p for p in parsed[1:] if not _already_called(inp, p)]
            more_calls, regenerated = await self._validated_calls(
                model, inp, prompt_ids, rest, specs, max_new, first=1
            )
            used += regenerated
            await step.append_calls(more_calls, 1)
            calls += more_calls
        await step.write_calls(calls)
        return calls, used

    async def _validated_calls(
        self,
        model: Any,
        inp: GenerateInput,
        prompt_ids: list[int],
        parsed: list[toolcalls.ParsedCall],
        specs: list[dict[str, Any]],
        max_new: int,
        first: int = 0,
    ) -> tuple[list[ToolCall], int]:
        """Keep calls to known functions; arguments that do not validate are regenerated
        constrained. Returns the calls and the tokens that regenerating took."""
        by_name = {s["function"]["name"]: s["function"] for s in specs}
        calls: list[ToolCall] = []
        used = 0
        for p in parsed:
            fn = by_name.get(p.name)
            if fn is None:
                continue
            schema = fn.get("parameters") or EMPTY_PARAMS
            try:
                grammar.validate_arguments(p.arguments, schema)
                arguments = json.dumps(p.arguments, ensure_ascii=False)
            except jsonschema.ValidationError:
                arguments, n = await self._constrained_arguments(
                    model, inp, prompt_ids, p.name, schema, None, max_new
                )
                used += n
            calls.append(
                ToolCall(
                    id=derived_id("call", inp.run_id, inp.turn, first + len(calls)),
                    type=toolcalls.tool_type(p.name, inp.tools),
                    name=p.name,
                    arguments=arguments,
                )
            )
            if not inp.parallel_tool_calls:
                break
        return calls, used

    async def _forced_call(
        self,
        model: Any,
        inp: GenerateInput,
        attempt: int,
        prompt_ids: list[int],
        specs: list[dict[str, Any]],
        max_new: int,
    ) -> GenerateOutput:
        """A call is guaranteed: constrained name (enum), then constrained arguments (schema)."""
        names = [s["function"]["name"] for s in specs]
        prompt_tokens, completion = len(prompt_ids), 0
        if len(names) == 1:
            name = names[0]
        else:
            prefix = model.encode(toolcalls.OPEN_TAG + '{"name": ')
            res = await model.engine.generate(
                self._request(
                    inp,
                    prompt_ids + prefix,
                    32,
                    await model.json_schema_constraint_async({"type": "string", "enum": names}),
                )
            )
            completion += res.completion_tokens
            name = json.loads(res.text) if res.text.strip().startswith('"') else names[0]
        call = ToolCall(
            id=derived_id("call", inp.run_id, inp.turn, 0),
            type=toolcalls.tool_type(name, inp.tools),
            name=name,
        )
        step = ToolStepStream(self.pool, inp, attempt, inp.step_id)
        await step.start(call)
        schema = (
            next(s["function"] for s in specs if s["function"]["name"] == name).get("parameters")
            or EMPTY_PARAMS
        )
        call.arguments, used = await self._constrained_arguments(
            model, inp, prompt_ids, name, schema, step, max_new
        )
        completion += used
        await step.write_calls([call])
        return GenerateOutput(
            text="",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            finish_reason="tool_calls",
            tool_calls=[call],
            tool_step_id=inp.step_id,
        )

    async def _constrained_arguments(
        self,
        model: Any,
        inp: GenerateInput,
        prompt_ids: list[int],
        name: str,
        schema: dict[str, Any],
        step: ToolStepStream | None,
        max_new: int,
        resume: tuple[str, str] | None = None,
    ) -> tuple[str, int]:
        """The arguments, generated under the schema; with `resume` (the model's output so far,
        the arguments it had written), the rest of those arguments."""
        if resume is None:
            prefix = model.encode(toolcalls.OPEN_TAG + json.dumps({"name": name})[:-1] + ', "arguments": ')
            constraint = await model.json_schema_constraint_async(schema)
        else:
            prefix = model.encode(resume[0])
            compiler = await asyncio.to_thread(lambda: model.grammar_compiler)
            constraint = await grammar.json_schema_constraint_async(compiler, schema, prefix=resume[1])
            try:
                constraint()
            except ValueError as exc:
                raise ApplicationError(str(exc), type="InvalidRequest", non_retryable=True) from None
        request = self._request(inp, prompt_ids + prefix, max_new, constraint)
        # Greedy decoding keeps forced arguments deterministic and schema-valid even on small models.
        request.temperature, request.top_p = 0.0, 1.0
        res = await model.engine.generate(request, step.push if step else None)
        if step:
            await step.flush()
        try:
            json.loads((resume[1] if resume else "") + res.text)
        except ValueError:
            raise ApplicationError(
                f"the model ran out of tokens while writing arguments for {name}",
                type="InvalidRequest",
                non_retryable=True,
            ) from None
        return res.text, res.completion_tokens
