// A tiny DOM helper and the page-wide notice area. Text is always set as text, never as HTML,
// so API content (messages, names, tool output) cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

let noticeTimer = null;

/** Show a message in the page's live region; errors stay until dismissed or replaced. */
export function notify(message, kind = "info") {
  const box = $("#notice");
  clearTimeout(noticeTimer);
  replace(box, h("span", { class: "notice-text" }, message),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss message", onclick: () => replace(box) }, "×"));
  box.className = `notice ${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  if (kind !== "error") noticeTimer = setTimeout(() => replace(box), 4000);
}

export function showError(err) {
  if (err && err.name === "AbortError") return;
  console.error(err);
  notify(err && err.message ? err.message : String(err), "error");
}

/** Run an async UI action: disable its button while it runs and show any error. */
export async function guard(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function when(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "";
}
