// Chat: a thread with one assistant. Runs stream over SSE (token deltas, run steps inline), a
// form answers required tool calls, and each run links to its workflow in the Temporal UI.
import { api, fileObjectUrl, health, listAll, resumeEvents, stream, url } from "./api.js";
import { $, guard, h, notify, replace, showError } from "./dom.js";

const TERMINAL = new Set(["completed", "incomplete", "failed", "cancelled", "expired"]);
const ACTIVE = new Set(["queued", "in_progress", "requires_action", "cancelling"]);
const THREAD_KEY = "assistants-playground.thread";

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

/** Open a file (citation, image, generated file) using the key, in a new tab. */
async function openFile(event, fileId) {
  event.preventDefault();
  const tab = window.open("", "_blank");
  try {
    const href = await fileObjectUrl(fileId);
    if (tab) tab.location = href; else window.location.assign(href);
  } catch (err) {
    if (tab) tab.close();
    showError(err);
  }
}

function fileLink(fileId, label, cls = "") {
  return h("a", { href: url(`/v1/files/${fileId}/content`), class: cls, title: fileId, onclick: (e) => openFile(e, fileId) }, label);
}

function fileImage(fileId, alt) {
  const img = h("img", { alt, class: "output-image" });
  fileObjectUrl(fileId).then((src) => { img.src = src; }, showError);
  return img;
}

/** A text part with its annotations: citation markers become numbered links to the cited file. */
function textWithCitations(text, citations) {
  const out = [];
  const anns = [...(text.annotations || [])].filter((a) => a.end_index > a.start_index).sort((a, b) => a.start_index - b.start_index);
  let at = 0;
  for (const a of anns) {
    if (a.start_index < at) continue;
    out.push(text.value.slice(at, a.start_index));
    const fileId = (a.file_citation || a.file_path || {}).file_id;
    if (fileId) {
      if (!citations.has(fileId)) citations.set(fileId, citations.size + 1);
      out.push(fileLink(fileId, `[${citations.get(fileId)}]`, "citation"));
    } else out.push(a.text || "");
    at = a.end_index;
  }
  out.push(text.value.slice(at));
  return out;
}

export function renderContent(parts) {
  const citations = new Map();
  const body = (parts || []).map((part) => {
    if (part.type === "text") return h("div", { class: "part" }, textWithCitations(part.text, citations));
    if (part.type === "image_file") return h("div", { class: "part" }, fileImage(part.image_file.file_id, "Image from the assistant"));
    if (part.type === "image_url") return h("div", { class: "part" }, h("img", { src: part.image_url.url, alt: "Image", class: "output-image" }));
    return h("div", { class: "part muted" }, `[${part.type}]`);
  });
  const sources = [...citations.entries()];
  if (sources.length) {
    body.push(h("p", { class: "sources" }, "Sources: ", sources.map(([id, n]) => [fileLink(id, `[${n}] ${id}`, "citation"), " "])));
  }
  return body;
}

function renderToolCall(call) {
  if (call.type === "function") {
    const fn = call.function || {};
    return h("details", { class: "tool function", open: true },
      h("summary", {}, "Function call ", h("code", {}, fn.name || "…")),
      h("div", { class: "label" }, "Arguments"), h("pre", { class: "code" }, pretty(fn.arguments || "")),
      fn.output !== null && fn.output !== undefined
        ? [h("div", { class: "label" }, "Output"), h("pre", { class: "code" }, fn.output)] : null);
  }
  if (call.type === "code_interpreter") {
    const ci = call.code_interpreter || {};
    return h("details", { class: "tool code", open: true },
      h("summary", {}, "Code interpreter"),
      h("pre", { class: "code" }, ci.input || ""),
      (ci.outputs || []).map((o) => o.type === "logs"
        ? [h("div", { class: "label" }, "Logs"), h("pre", { class: "code logs" }, o.logs)]
        : o.type === "image" ? fileImage(o.image.file_id, "Code interpreter output") : null));
  }
  if (call.type === "file_search") {
    const results = (call.file_search && call.file_search.results) || [];
    return h("details", { class: "tool search", open: true },
      h("summary", {}, "File search", results.length ? ` · ${results.length} result(s)` : ""),
      results.length ? h("ol", { class: "results" }, results.map((r) => h("li", {},
        fileLink(r.file_id, r.file_name || r.file_id), ` (score ${Number(r.score).toFixed(2)})`,
        (r.content || []).map((c) => h("blockquote", {}, c.text))))) : null);
  }
  return h("pre", { class: "code" }, JSON.stringify(call, null, 2));
}

function mergeStepDelta(step, delta) {
  const details = delta.step_details || {};
  if (details.type !== "tool_calls") return;
  step.step_details = step.step_details || { type: "tool_calls", tool_calls: [] };
  const calls = step.step_details.tool_calls || (step.step_details.tool_calls = []);
  for (const d of details.tool_calls || []) {
    const call = calls[d.index] || (calls[d.index] = { id: d.id, type: d.type });
    if (d.id) call.id = d.id;
    if (d.function) {
      call.function = call.function || { name: "", arguments: "", output: null };
      if (d.function.name) call.function.name = d.function.name;
      call.function.arguments += d.function.arguments || "";
      if (d.function.output) call.function.output = d.function.output;
    }
    if (d.code_interpreter) {
      call.code_interpreter = call.code_interpreter || { input: "", outputs: [] };
      call.code_interpreter.input += d.code_interpreter.input || "";
      call.code_interpreter.outputs.push(...(d.code_interpreter.outputs || []));
    }
    if (d.file_search) call.file_search = d.file_search;
  }
}

export function createChatView(root) {
  let assistants = [];
  let links = null; // {temporal_ui, temporal_namespace}
  const state = { threadId: sessionStorage.getItem(THREAD_KEY), run: null, streaming: false, abort: null };
  let runEls = new Map(); // run id -> {block, status, body, error}
  let stepEls = new Map(); // step id -> {step, el}
  let msgEls = new Map(); // message id -> {el, parts: Map(index -> element)}

  const assistantSelect = h("select", { id: "chat-assistant" });
  const toolChoice = h("select", { id: "chat-tool-choice" });
  const maxTokens = h("input", { id: "chat-max-tokens", type: "number", min: "1", step: "1", value: "256" });
  const threadLabel = h("span", { id: "thread-id", class: "mono muted" });
  const transcript = h("div", { id: "transcript", class: "transcript", role: "log", "aria-live": "polite",
    "aria-label": "Conversation" });
  const input = h("textarea", { id: "chat-input", rows: 2, placeholder: "Message the assistant (Enter to send, Shift+Enter for a new line)" });
  const send = h("button", { type: "submit", id: "send" }, "Send");
  const cancel = h("button", { type: "button", id: "cancel-run", class: "danger", disabled: true }, "Cancel run");
  const composer = h("form", { id: "composer", class: "composer" },
    h("label", { for: "chat-input", class: "sr-only" }, "Message"), input, h("div", { class: "composer-actions" }, send, cancel));
  const openInput = h("input", { id: "open-thread", placeholder: "thread_…", spellcheck: "false" });
  // Recent threads, from GET /v1/threads (this server's extension); choosing one loads it.
  const threadPicker = h("select", { id: "thread-picker", onchange: pickThread });

  replace(root,
    h("h2", { id: "h-chat" }, "Chat"),
    h("div", { class: "chat-controls" },
      h("div", { class: "field" }, h("label", { for: "chat-assistant" }, "Assistant"), assistantSelect),
      h("div", { class: "field" }, h("label", { for: "chat-tool-choice" }, "Tool choice"), toolChoice),
      h("div", { class: "field narrow" }, h("label", { for: "chat-max-tokens" }, "Max tokens"), maxTokens),
      h("div", { class: "field" }, h("span", { class: "label" }, "Thread"),
        h("div", { class: "row" }, threadLabel,
          h("button", { type: "button", id: "new-thread", class: "secondary small", onclick: newThread }, "New thread"))),
      h("div", { class: "field" }, h("label", { for: "thread-picker" }, "Recent threads"), threadPicker),
      h("form", { class: "field", onsubmit: openThread },
        h("label", { for: "open-thread" }, "Open thread"),
        h("div", { class: "row" }, openInput, h("button", { type: "submit", class: "secondary small" }, "Open")))),
    transcript, composer);

  function selectedAssistant() {
    return assistants.find((a) => a.id === assistantSelect.value);
  }

  function renderToolChoices() {
    const a = selectedAssistant();
    const previous = toolChoice.value;
    const options = [["auto", "auto"], ["none", "none"], ["required", "required"]];
    for (const t of (a && a.tools) || []) {
      if (t.type === "function") options.push([JSON.stringify({ type: "function", function: { name: t.function.name } }), `function: ${t.function.name}`]);
      else options.push([JSON.stringify({ type: t.type }), t.type]);
    }
    replace(toolChoice, options.map(([value, label]) => h("option", { value, selected: value === previous }, label)));
  }
  assistantSelect.addEventListener("change", renderToolChoices);

  function updateControls() {
    const active = state.run && ACTIVE.has(state.run.status);
    send.disabled = state.streaming || Boolean(active);
    cancel.disabled = !active || state.run.status === "cancelling";
    replace(threadLabel, state.threadId || "new thread on first message");
  }

  function add(el, container = transcript) {
    container.append(el);
    transcript.scrollTop = transcript.scrollHeight;
    return el;
  }

  function bubble(role, content) {
    return h("div", { class: `msg ${role}` }, h("div", { class: "who" }, role === "user" ? "You" : "Assistant"), content);
  }

  function workflowLink(runId) {
    if (!links || !links.temporal_ui) return null;
    const href = `${links.temporal_ui.replace(/\/$/, "")}/namespaces/${encodeURIComponent(links.temporal_namespace || "default")}/workflows/${encodeURIComponent(runId)}`;
    return h("a", { href, target: "_blank", rel: "noopener", class: "temporal-link" }, "Workflow in Temporal UI ↗");
  }

  function runBlock(run) {
    let r = runEls.get(run.id);
    if (!r) {
      const status = h("span", { class: "badge run-status" });
      const body = h("div", { class: "run-body" });
      const error = h("div", { class: "run-error", role: "alert" });
      const block = h("div", { class: "run", dataset: { runId: run.id } },
        h("div", { class: "run-head" }, h("span", { class: "mono" }, run.id), status, workflowLink(run.id)), body, error);
      r = { block, status, body, error };
      runEls.set(run.id, r);
      add(block);
    }
    return r;
  }

  function setRun(run) {
    state.run = run;
    const r = runBlock(run);
    r.status.textContent = run.status;
    r.status.className = `badge run-status ${run.status}`;
    if (run.status === "failed" && run.last_error) r.error.textContent = `Run failed: ${run.last_error.message}`;
    if (run.status === "incomplete" && run.incomplete_details) {
      r.error.textContent = `Stopped early: ${run.incomplete_details.reason}`;
      r.error.classList.add("warn"); // an expected outcome (e.g. the token limit), not a failure
    }
    if (run.status === "expired") r.error.textContent = "The run expired.";
    if (run.status !== "requires_action") r.block.querySelectorAll(".tool-form fieldset").forEach((f) => { f.disabled = true; });
    updateControls();
  }

  function messageEl(message) {
    let m = msgEls.get(message.id);
    if (!m) {
      const content = h("div", { class: "content" });
      m = { el: bubble("assistant", content), content, parts: new Map() };
      m.el.dataset.messageId = message.id;
      msgEls.set(message.id, m);
      add(m.el, message.run_id ? runBlock({ id: message.run_id }).body : transcript);
    }
    return m;
  }

  function onMessageDelta(delta) {
    const m = messageEl({ id: delta.id });
    for (const part of (delta.delta && delta.delta.content) || []) {
      let el = m.parts.get(part.index);
      if (!el) {
        el = h("div", { class: "part streaming" });
        m.parts.set(part.index, el);
        m.content.append(el);
      }
      if (part.type === "text" && part.text) el.append(part.text.value || "");
      else if (part.type === "image_file") el.append(fileImage(part.image_file.file_id, "Image from the assistant"));
    }
    transcript.scrollTop = transcript.scrollHeight;
  }

  function onStep(step) {
    if (!step.step_details || step.step_details.type !== "tool_calls") return;
    let s = stepEls.get(step.id);
    if (!s) {
      s = { step, el: h("div", { class: "step", dataset: { stepId: step.id } }) };
      stepEls.set(step.id, s);
      add(s.el, runBlock({ id: step.run_id }).body);
    } else if (step !== s.step) s.step = step;
    replace(s.el, (s.step.step_details.tool_calls || []).filter(Boolean).map(renderToolCall));
  }

  function onStepDelta(delta) {
    const s = stepEls.get(delta.id);
    if (!s) return;
    mergeStepDelta(s.step, delta.delta || {});
    onStep(s.step);
  }

  function toolForm(run) {
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    const fieldset = h("fieldset", {},
      h("legend", {}, "The run needs tool outputs"),
      calls.map((call, i) => h("div", { class: "field tool-call" },
        h("label", { for: `output-${call.id}` }, "Output of ", h("code", {}, `${call.function.name}(${call.function.arguments})`)),
        h("textarea", { id: `output-${call.id}`, rows: 2, class: "code tool-output", dataset: { callId: call.id },
          placeholder: "e.g. {\"temperature\": 21}", autofocus: i === 0 }))),
      h("button", { type: "submit", class: "submit-outputs" }, "Submit outputs"));
    const form = h("form", { class: "tool-form" }, fieldset);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const tool_outputs = [...form.querySelectorAll("textarea")].map((t) => ({ tool_call_id: t.dataset.callId, output: t.value }));
      fieldset.disabled = true;
      follow(stream(`/v1/threads/${run.thread_id}/runs/${run.id}/submit_tool_outputs`, { tool_outputs }, newAbort()), run)
        .then(() => { if (state.run && state.run.status === "requires_action") fieldset.disabled = false; });
    });
    add(form, runBlock(run).body);
    form.querySelector("textarea").focus();
  }

  function handle(ev) {
    const { event, data } = ev;
    if (event.startsWith("thread.run.step.")) {
      if (event === "thread.run.step.delta") onStepDelta(data);
      else onStep(data);
    } else if (event.startsWith("thread.run.")) {
      setRun(data);
      if (event === "thread.run.requires_action") toolForm(data);
    } else if (event === "thread.message.created") messageEl(data);
    else if (event === "thread.message.delta") onMessageDelta(data);
    else if (event === "thread.message.completed" || event === "thread.message.incomplete") {
      const m = messageEl(data);
      m.parts.clear();
      replace(m.content, renderContent(data.content));
    } else if (event === "thread.created") {
      state.threadId = data.id;
    } else if (event === "error") {
      const message = (data && data.error && data.error.message) || "The stream reported an error.";
      if (state.run) runBlock(state.run).error.textContent = message;
      notify(message, "error");
    }
  }

  function newAbort() {
    if (state.abort) state.abort.abort();
    state.abort = new AbortController();
    return state.abort.signal;
  }

  /** Consume a run's event stream; if it drops before the run stops, resume from the last event id. */
  async function follow(events, run) {
    state.streaming = true;
    updateControls();
    let lastId = null;
    try {
      for (let attempt = 0; attempt < 4; attempt++) {
        try {
          for await (const ev of events) {
            if (ev.id) lastId = ev.id;
            if (ev.event === "done") return;
            handle(ev);
          }
        } catch (err) {
          if (err.name === "AbortError" || attempt === 0 && !state.run) throw err;
        }
        const current = state.run || run;
        if (!current || TERMINAL.has(current.status) || current.status === "requires_action") return;
        events = resumeEvents(`/v1/threads/${current.thread_id}/runs/${current.id}/events`, lastId, state.abort && state.abort.signal);
      }
    } catch (err) {
      showError(err);
    } finally {
      state.streaming = false;
      updateControls();
    }
  }

  async function submitMessage(event) {
    event.preventDefault();
    const text = input.value.trim();
    const assistant = selectedAssistant();
    if (!text) return;
    if (!assistant) return notify("Create an assistant first (Assistants tab).", "error");
    send.disabled = true;
    try {
      if (!state.threadId) {
        state.threadId = (await api("/v1/threads", { method: "POST", body: {} })).id;
        sessionStorage.setItem(THREAD_KEY, state.threadId);
        refreshThreads().catch(() => {});
      }
      await api(`/v1/threads/${state.threadId}/messages`, { method: "POST", body: { role: "user", content: text } });
    } catch (err) {
      showError(err);
      updateControls();
      return;
    }
    input.value = "";
    add(bubble("user", h("div", { class: "content" }, h("div", { class: "part" }, text))));
    const body = { assistant_id: assistant.id };
    if (toolChoice.value !== "auto") body.tool_choice = toolChoice.value.startsWith("{") ? JSON.parse(toolChoice.value) : toolChoice.value;
    const max = parseInt(maxTokens.value, 10);
    if (max > 0) body.max_completion_tokens = max;
    state.run = null;
    await follow(stream(`/v1/threads/${state.threadId}/runs`, body, newAbort()));
    if (!state.run || state.run.status !== "requires_action") input.focus(); // else the tool form has focus
  }
  composer.addEventListener("submit", submitMessage);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!send.disabled) composer.requestSubmit();
    }
  });

  cancel.addEventListener("click", () => guard(cancel, async () => {
    const run = state.run;
    if (!run) return;
    const updated = await api(`/v1/threads/${run.thread_id}/runs/${run.id}/cancel`, { method: "POST" });
    if (state.streaming) return; // the stream shows the run's end
    // Nobody is streaming (the run was waiting for tool outputs): poll it to its end.
    setRun(updated);
    for (let i = 0; i < 120 && !TERMINAL.has(state.run.status); i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (state.run.id !== run.id) return;
      setRun(await api(`/v1/threads/${run.thread_id}/runs/${run.id}`));
    }
  }));

  function reset(threadId) {
    if (state.abort) state.abort.abort();
    Object.assign(state, { threadId, run: null, streaming: false, abort: null });
    if (threadId) sessionStorage.setItem(THREAD_KEY, threadId); else sessionStorage.removeItem(THREAD_KEY);
    runEls = new Map(); stepEls = new Map(); msgEls = new Map();
    replace(transcript);
    updateControls();
  }

  function newThread() {
    reset(null);
    input.focus();
  }

  async function openThread(event) {
    event.preventDefault();
    const id = openInput.value.trim();
    if (id) await guard(event.submitter, () => loadThread(id));
  }

  async function refreshThreads() {
    const page = await api("/v1/threads?limit=20&order=desc");
    const label = (t) => `${(t.metadata && t.metadata.name) || t.id} · ${new Date(t.created_at * 1000).toLocaleString()}`;
    replace(threadPicker, h("option", { value: "" }, page.data.length ? "(choose a thread)" : "(no threads yet)"),
      page.data.map((t) => h("option", { value: t.id, selected: t.id === state.threadId }, label(t))));
  }

  async function pickThread() {
    const id = threadPicker.value;
    if (id) await guard(threadPicker, () => loadThread(id));
  }

  async function loadThread(id) {
    const [messages, runs] = await Promise.all([
      listAll(`/v1/threads/${id}/messages?order=asc`), listAll(`/v1/threads/${id}/runs?order=asc`)]);
    reset(id);
    for (const m of messages) {
      if (m.role === "user") add(bubble("user", h("div", { class: "content" }, renderContent(m.content))));
      else replace(messageEl(m).content, renderContent(m.content));
    }
    for (const run of runs) setRun(run);
    const last = runs[runs.length - 1];
    if (last && ACTIVE.has(last.status) && last.status !== "requires_action") {
      follow(resumeEvents(`/v1/threads/${id}/runs/${last.id}/events`, null, newAbort()), last);
    } else if (last && last.status === "requires_action") toolForm(last);
  }

  return {
    async show(assistantId) {
      const [list, info] = await Promise.all([listAll("/v1/assistants"), links ? links : health().catch(() => null)]);
      assistants = list;
      links = info;
      const previous = assistantId || assistantSelect.value;
      replace(assistantSelect, assistants.length === 0 ? h("option", { value: "" }, "(create an assistant first)")
        : assistants.map((a) => h("option", { value: a.id, selected: a.id === previous }, `${a.name || "(unnamed)"} · ${a.id}`)));
      renderToolChoices();
      await refreshThreads().catch(showError);
      if (state.threadId && msgEls.size === 0 && runEls.size === 0 && transcript.childElementCount === 0) {
        await loadThread(state.threadId).catch((err) => { showError(err); reset(null); });
      }
      updateControls();
    },
  };
}
