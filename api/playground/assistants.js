// Assistants: list, create, edit, delete. Functions are edited as JSON with feedback as you type.
import { api, listAll } from "./api.js";
import { $, guard, h, notify, replace } from "./dom.js";

const FUNCTION_TEMPLATE = {
  name: "get_weather",
  description: "Get the current weather in a city",
  parameters: {
    type: "object",
    properties: { city: { type: "string", description: "City name" }, unit: { type: "string", enum: ["c", "f"] } },
    required: ["city"],
  },
};
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** Parse one function definition: {fn} when valid, {error} (a sentence for the user) otherwise. */
export function parseFunction(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `Not valid JSON: ${err.message}` };
  }
  if (isObject(value) && value.type === "function" && isObject(value.function)) value = value.function;
  if (!isObject(value)) return { error: "A function must be a JSON object like {\"name\": …, \"parameters\": {…}}." };
  if (typeof value.name !== "string" || !NAME.test(value.name)) {
    return { error: "\"name\" is required: 1–64 letters, digits, underscores or dashes." };
  }
  const extra = Object.keys(value).filter((k) => !["name", "description", "parameters", "strict"].includes(k));
  if (extra.length) return { error: `Unknown field "${extra[0]}" (allowed: name, description, parameters, strict).` };
  if (value.description !== undefined && typeof value.description !== "string") {
    return { error: "\"description\" must be a string." };
  }
  const params = value.parameters;
  if (params !== undefined) {
    if (!isObject(params) || params.type !== "object") {
      return { error: "\"parameters\" must be a JSON schema object with \"type\": \"object\"." };
    }
    if (params.properties !== undefined && !isObject(params.properties)) {
      return { error: "\"parameters.properties\" must be an object." };
    }
    if (params.required !== undefined && !Array.isArray(params.required)) {
      return { error: "\"parameters.required\" must be an array of property names." };
    }
  }
  return { fn: value };
}

function describe(fn) {
  const props = Object.keys((fn.parameters && fn.parameters.properties) || {});
  return `${fn.name}(${props.join(", ")})`;
}

export function createAssistantsView(root, { onChat }) {
  let assistants = [];
  let models = [];
  let stores = [];
  let current = null; // the assistant being edited (null: a new one)
  let fnCounter = 0;

  const list = h("ul", { class: "item-list", id: "assistant-list", "aria-label": "Assistants" });
  const form = h("form", { id: "assistant-form", class: "editor", novalidate: true });
  replace(root,
    h("h2", { id: "h-assistants" }, "Assistants"),
    h("div", { class: "split" },
      h("div", { class: "panel list-panel" },
        h("button", { type: "button", id: "new-assistant", onclick: () => edit(null) }, "New assistant"),
        list),
      h("div", { class: "panel" }, form)));

  function field(id, label, control, hint) {
    return h("div", { class: "field" }, h("label", { for: id }, label), control,
      hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null);
  }

  function functionEditor(fn) {
    const id = `fn-${++fnCounter}`;
    const area = h("textarea", { id, class: "code", rows: 8, spellcheck: "false", "aria-describedby": `${id}-feedback` });
    area.value = JSON.stringify(fn, null, 2);
    const feedback = h("p", { id: `${id}-feedback`, class: "feedback", "aria-live": "polite" });
    const box = h("div", { class: "function-editor" },
      h("div", { class: "row spread" }, h("label", { for: id }, "Function (JSON schema)"),
        h("button", { type: "button", class: "secondary small", onclick: () => { box.remove(); validateAll(); } },
          "Remove")),
      area, feedback);
    area.addEventListener("input", validateAll);
    return box;
  }

  /** Validate every function editor; returns the function definitions or null if any is invalid. */
  function validateAll() {
    const fns = [];
    let ok = true;
    const seen = new Set();
    for (const area of form.querySelectorAll(".function-editor textarea")) {
      const feedback = $(`#${area.id}-feedback`, form);
      let { fn, error } = parseFunction(area.value);
      if (fn && seen.has(fn.name)) error = `Another function is already named "${fn.name}".`;
      if (error) {
        ok = false;
        area.setAttribute("aria-invalid", "true");
        feedback.className = "feedback bad";
        feedback.textContent = error;
      } else {
        seen.add(fn.name);
        fns.push(fn);
        area.removeAttribute("aria-invalid");
        feedback.className = "feedback good";
        feedback.textContent = `✓ ${describe(fn)}`;
      }
    }
    return ok ? fns : null;
  }

  function responseFormatValue() {
    const kind = $("#asst-response-format", form).value;
    if (kind === "auto") return "auto";
    if (kind !== "json_schema") return { type: kind };
    const text = $("#asst-json-schema", form).value;
    let schema;
    try {
      schema = JSON.parse(text);
    } catch (err) {
      throw new Error(`Response format schema is not valid JSON: ${err.message}`);
    }
    if (!isObject(schema)) throw new Error("Response format schema must be a JSON object.");
    return { type: "json_schema", json_schema: { name: "response", schema } };
  }

  function body() {
    const fns = validateAll();
    if (!fns) throw new Error("Fix the function definitions marked in red before saving.");
    const tools = [];
    if ($("#asst-code", form).checked) tools.push({ type: "code_interpreter" });
    if ($("#asst-search", form).checked) tools.push({ type: "file_search" });
    for (const fn of fns) tools.push({ type: "function", function: fn });
    const temperature = $("#asst-temperature", form).value.trim();
    const store = $("#asst-store", form).value;
    const out = {
      name: $("#asst-name", form).value.trim() || null,
      model: $("#asst-model", form).value,
      instructions: $("#asst-instructions", form).value || null,
      tools,
      response_format: responseFormatValue(),
      tool_resources: { file_search: { vector_store_ids: store ? [store] : [] } },
    };
    if (temperature !== "") out.temperature = Number(temperature);
    return out;
  }

  function edit(assistant) {
    current = assistant;
    const a = assistant || { name: "", instructions: "You are a helpful assistant. Be brief.", model: models[0] || "",
      temperature: 1, tools: [], response_format: "auto" };
    const tools = a.tools || [];
    const has = (type) => tools.some((t) => t.type === type);
    const rf = a.response_format && a.response_format !== "auto" ? a.response_format : { type: "auto" };
    const storeIds = (a.tool_resources && a.tool_resources.file_search && a.tool_resources.file_search.vector_store_ids) || [];
    const modelSelect = h("select", { id: "asst-model", required: true },
      [...new Set([...models, a.model].filter(Boolean))].map((m) => h("option", { value: m, selected: m === a.model }, m)));
    const rfSelect = h("select", { id: "asst-response-format" },
      ["auto", "text", "json_object", "json_schema"].map((v) => h("option", { value: v, selected: v === rf.type }, v)));
    const schemaArea = h("textarea", { id: "asst-json-schema", class: "code", rows: 5, spellcheck: "false" });
    schemaArea.value = rf.type === "json_schema" ? JSON.stringify(rf.json_schema.schema || {}, null, 2)
      : "{\n  \"type\": \"object\",\n  \"properties\": {\"answer\": {\"type\": \"string\"}}\n}";
    const schemaField = field("asst-json-schema", "JSON schema", schemaArea);
    schemaField.hidden = rf.type !== "json_schema";
    rfSelect.addEventListener("change", () => { schemaField.hidden = rfSelect.value !== "json_schema"; });
    const functions = h("div", { id: "function-list" },
      tools.filter((t) => t.type === "function").map((t) => functionEditor(t.function)));

    replace(form,
      h("h3", {}, assistant ? `Edit ${assistant.name || assistant.id}` : "New assistant"),
      assistant ? h("p", { class: "muted mono" }, assistant.id) : null,
      field("asst-name", "Name", h("input", { id: "asst-name", value: a.name || "", maxlength: "256" })),
      field("asst-model", "Model", modelSelect),
      field("asst-instructions", "Instructions",
        h("textarea", { id: "asst-instructions", rows: 4 }, a.instructions || "")),
      field("asst-temperature", "Temperature",
        h("input", { id: "asst-temperature", type: "number", min: "0", max: "2", step: "0.1",
          value: a.temperature === null || a.temperature === undefined ? "" : String(a.temperature) }),
        "0 = deterministic (greedy); empty = the default."),
      h("fieldset", { class: "tools" },
        h("legend", {}, "Tools"),
        h("label", { class: "check" }, h("input", { type: "checkbox", id: "asst-code", checked: has("code_interpreter") }),
          " Code interpreter"),
        h("label", { class: "check" }, h("input", { type: "checkbox", id: "asst-search", checked: has("file_search") }),
          " File search"),
        field("asst-store", "Vector store for file search",
          h("select", { id: "asst-store" }, h("option", { value: "" }, "(none)"),
            stores.map((s) => h("option", { value: s.id, selected: storeIds.includes(s.id) }, `${s.name || s.id}`)))),
        functions,
        h("button", { type: "button", class: "secondary", id: "add-function",
          onclick: () => {
            const used = new Set([...form.querySelectorAll(".function-editor textarea")].map((t) => parseFunction(t.value).fn?.name));
            const fn = { ...FUNCTION_TEMPLATE };
            for (let i = 2; used.has(fn.name); i++) fn.name = `${FUNCTION_TEMPLATE.name}_${i}`;
            const editor = functionEditor(fn);
            functions.append(editor);
            validateAll();
            editor.querySelector("textarea").focus();
          } }, "Add function")),
      field("asst-response-format", "Response format", rfSelect),
      schemaField,
      h("div", { class: "row actions" },
        h("button", { type: "submit", id: "save-assistant" }, assistant ? "Save changes" : "Create assistant"),
        assistant ? h("button", { type: "button", class: "secondary", id: "chat-assistant-btn",
          onclick: () => onChat(assistant.id) }, "Chat with it") : null,
        assistant ? h("button", { type: "button", class: "danger", id: "delete-assistant", onclick: remove }, "Delete") : null));
    validateAll();
    renderList();
  }

  async function save(event) {
    event.preventDefault();
    const button = $("#save-assistant", form);
    await guard(button, async () => {
      const payload = body();
      const saved = current
        ? await api(`/v1/assistants/${current.id}`, { method: "POST", body: payload })
        : await api("/v1/assistants", { method: "POST", body: payload });
      notify(`${current ? "Saved" : "Created"} assistant ${saved.name || saved.id}.`);
      await load();
      edit(assistants.find((a) => a.id === saved.id) || saved);
    });
  }
  form.addEventListener("submit", save);

  async function remove(event) {
    if (!current || !confirm(`Delete assistant ${current.name || current.id}?`)) return;
    await guard(event.currentTarget, async () => {
      await api(`/v1/assistants/${current.id}`, { method: "DELETE" });
      notify(`Deleted assistant ${current.name || current.id}.`);
      await load();
      edit(null);
    });
  }

  function renderList() {
    replace(list, assistants.length === 0 ? h("li", { class: "muted" }, "No assistants yet.") : assistants.map((a) =>
      h("li", {}, h("button", { type: "button", class: `item${current && current.id === a.id ? " selected" : ""}`,
        "aria-current": current && current.id === a.id ? "true" : null, onclick: () => edit(a) },
      h("span", { class: "item-title" }, a.name || "(unnamed)"),
      h("span", { class: "item-sub" }, `${a.model} · ${(a.tools || []).map((t) => t.type === "function" ? t.function.name : t.type).join(", ") || "no tools"}`)))));
  }

  async function load() {
    [assistants, models, stores] = await Promise.all([
      listAll("/v1/assistants"),
      api("/v1/models").then((r) => r.data.map((m) => m.id)),
      listAll("/v1/vector_stores").catch(() => []),
    ]);
    renderList();
  }

  return {
    async show() {
      await load();
      const still = current && assistants.find((a) => a.id === current.id);
      if (!form.hasChildNodes() || (current && !still)) edit(still || null);
      else if (!current && $("#asst-model", form) && !$("#asst-model", form).value) edit(null);
    },
  };
}
