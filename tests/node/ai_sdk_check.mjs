// The Vercel AI SDK (`ai` + `@ai-sdk/openai`, pinned in package-lock.json) against a running
// stack through the Responses API: a tool loop with generateText, then with streamText.
// The bundled model never calls a tool unprompted, so step 0 forces the call (toolChoice); later
// steps may not call tools, so the loop ends on the model's text. Prints one JSON object;
// tests/test_vercel_ai_sdk.py checks it. Env: OPENAI_BASE_URL, OPENAI_API_KEY, MODEL.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

export const WEATHER = "Sunny, 21 C (from the test tool)";
const provider = createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY });
const model = provider.responses(process.env.MODEL);

// Fresh tools per run, so each run counts its own executions.
function weatherTool(executed) {
  return tool({
    description: "Current weather of a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async (input) => {
      executed.push(input);
      return WEATHER;
    },
  });
}

const settings = (executed) => ({
  model,
  prompt: "What is the weather in Paris?",
  tools: { get_weather: weatherTool(executed) },
  stopWhen: stepCountIs(3),
  temperature: 0,
  maxOutputTokens: 32,
  maxRetries: 0,
  prepareStep: ({ stepNumber }) =>
    stepNumber === 0 ? { toolChoice: { type: "tool", toolName: "get_weather" } } : { toolChoice: "none" },
});

// What one step sent and got: the request body's input item types prove the history re-send.
const summarize = (steps) =>
  steps.map((s) => ({
    finish_reason: s.finishReason,
    tool_calls: s.toolCalls.map((c) => ({ name: c.toolName, input: c.input })),
    tool_results: s.toolResults.map((r) => r.output),
    text: s.text,
    request_body: s.request?.body ?? null,
    response_id: s.response?.id ?? null,
  }));

const describeError = (e) =>
  e == null ? null : { name: e.name, message: String(e.message ?? e), status: e.statusCode, body: e.responseBody };

async function runGenerate() {
  const executed = [];
  try {
    const result = await generateText(settings(executed));
    return { executed, steps: summarize(result.steps), text: result.text, error: null };
  } catch (e) {
    return { executed, steps: [], text: null, error: describeError(e) };
  }
}

async function runStream() {
  const executed = [];
  const errors = [];
  const partTypes = [];
  try {
    const result = streamText({ ...settings(executed), onError: ({ error }) => errors.push(describeError(error)) });
    for await (const part of result.fullStream) {
      partTypes.push(part.type);
      if (part.type === "error") errors.push(describeError(part.error));
    }
    const steps = await result.steps;
    return { executed, steps: summarize(steps), text: await result.text, part_types: partTypes, error: errors[0] ?? null };
  } catch (e) {
    return { executed, steps: [], text: null, part_types: partTypes, error: describeError(e) ?? errors[0] };
  }
}

console.log(JSON.stringify({ weather: WEATHER, generate: await runGenerate(), stream: await runStream() }));
