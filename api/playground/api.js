// Talking to the API: the key (browser storage only), JSON calls that turn the OpenAI error
// envelope into a readable Error, run streams, and authorized downloads.
import { readEvents } from "./sse.js";

const KEY = "assistants-playground.api-key";
// The API lives next to /playground/, wherever the page is mounted.
export const ROOT = new URL("../", document.baseURI);

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "",
  set(key, remember) {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
  remembered: () => Boolean(localStorage.getItem(KEY)),
};

export function url(path) {
  return new URL(path.replace(/^\//, ""), ROOT).href;
}

async function errorFrom(response) {
  let body = null;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
    else if (body && body.detail) message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message, body);
}

async function send(path, { method = "GET", body, form, signal, headers = {} } = {}) {
  const key = apiKey.get();
  if (!key) throw new ApiError(401, "Enter an API key first (top of the page).");
  const init = { method, signal, headers: { Authorization: `Bearer ${key}`, ...headers } };
  if (form) init.body = form;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url(path), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `Cannot reach the API at ${ROOT.href} (${err.message}).`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function api(path, options) {
  const response = await send(path, options);
  return response.json();
}

/** All pages of a list endpoint (they are small here: assistants, files, stores). */
export async function listAll(path, limit = 100) {
  const items = [];
  let after = null;
  for (let i = 0; i < 20; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    items.push(...page.data);
    if (!page.has_more || page.data.length === 0) break;
    after = page.last_id || page.data[page.data.length - 1].id;
  }
  return items;
}

/** POST a streaming request and yield its events; HTTP errors throw before the first event. */
export async function* stream(path, body, signal) {
  const response = await send(path, { method: "POST", body: { ...body, stream: true }, signal,
    headers: { Accept: "text/event-stream" } });
  yield* readEvents(response);
}

/** GET a run's event stream (resumable: Last-Event-ID is the last event this page got). */
export async function* resumeEvents(path, lastEventId, signal) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  yield* readEvents(await send(path, { signal, headers }));
}

/** GET /health: unauthenticated; carries the Temporal UI address even when not ready (503). */
export async function health() {
  const response = await fetch(url("health"));
  return response.json();
}

const blobs = new Map();

/** An object URL for a file's content, fetched with the key (a plain link cannot send it). */
export async function fileObjectUrl(fileId) {
  if (!blobs.has(fileId)) {
    const response = await send(`/v1/files/${encodeURIComponent(fileId)}/content`);
    blobs.set(fileId, URL.createObjectURL(await response.blob()));
  }
  return blobs.get(fileId);
}
