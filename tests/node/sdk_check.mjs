// The official `openai` Node SDK against a running stack: Responses, a streamed response,
// Conversations and one Assistants run. Prints one JSON object; tests/test_node_sdk.py checks it.
// Env: OPENAI_BASE_URL, OPENAI_API_KEY, MODEL.
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0, timeout: 120_000 });
const model = process.env.MODEL;
const tokens = 24;

const plain = await client.responses.create({
  model, input: "Say hello.", instructions: "Be brief.", temperature: 0, max_output_tokens: tokens,
});
const retrieved = await client.responses.retrieve(plain.id);

const stream = await client.responses.create({
  model, input: "Name a color.", temperature: 0, max_output_tokens: tokens, stream: true,
});
const events = [];
for await (const event of stream) events.push(event);
const last = events[events.length - 1];

const conv = await client.conversations.create({
  metadata: { app: "node" },
  items: [{ type: "message", role: "user", content: "Hi there." }],
});
const inConv = await client.responses.create({
  model, conversation: conv.id, input: "And hello again.", temperature: 0, max_output_tokens: tokens,
});
const items = [];
for await (const item of client.conversations.items.list(conv.id, { order: "asc" })) items.push(item);

const assistant = await client.beta.assistants.create({ model, instructions: "Be brief." });
const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "Say hi." }] });
const run = await client.beta.threads.runs.createAndPoll(thread.id, {
  assistant_id: assistant.id, temperature: 0, max_completion_tokens: tokens,
});
const messages = await client.beta.threads.messages.list(thread.id);

console.log(JSON.stringify({
  plain: {
    id: plain.id, object: plain.object, status: plain.status, output_text: plain.output_text,
    output_types: plain.output.map((o) => o.type), retrieved_text: retrieved.output_text,
  },
  stream: {
    types: events.map((e) => e.type),
    sequence_numbers: events.map((e) => e.sequence_number),
    deltas: events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join(""),
    final_status: last.response?.status,
    final_text: last.response?.output?.[0]?.content?.[0]?.text,
  },
  conversation: {
    id: conv.id, object: conv.object, metadata: conv.metadata, response_status: inConv.status,
    response_text: inConv.output_text, items: items.map((i) => ({ id: i.id, type: i.type, role: i.role })),
    response_message_id: inConv.output[0]?.id,
  },
  assistants: {
    run_status: run.status, thread_id: run.thread_id,
    roles: messages.data.map((m) => m.role),
    text: messages.data[0]?.content?.[0]?.text?.value,
  },
}));
