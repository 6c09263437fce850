// The page shell: the API key, the three views (switched by the URL hash), and a last-resort
// error display so a failure is never a blank page or a console-only message.
import { api, apiKey } from "./api.js";
import { createAssistantsView } from "./assistants.js";
import { createChatView } from "./chat.js";
import { $, notify, showError } from "./dom.js";
import { createFilesView } from "./files.js";

window.addEventListener("error", (e) => showError(e.error || e.message));
window.addEventListener("unhandledrejection", (e) => showError(e.reason));

let pendingAssistant = null;
const views = {
  assistants: createAssistantsView($("#view-assistants"), {
    onChat(id) {
      pendingAssistant = id;
      location.hash = "#chat";
    },
  }),
  files: createFilesView($("#view-files")),
  chat: createChatView($("#view-chat")),
};

function currentView() {
  const name = location.hash.replace(/^#/, "");
  return name in views ? name : "assistants";
}

async function route() {
  const name = currentView();
  for (const [other, view] of Object.entries(views)) {
    $(`#view-${other}`).hidden = other !== name;
    if (other !== name && view.hide) view.hide();
  }
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.dataset.view === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (!apiKey.get()) {
    $("#api-key").focus();
    return;
  }
  try {
    await views[name].show(name === "chat" ? pendingAssistant : undefined);
    pendingAssistant = null;
  } catch (err) {
    showError(err);
  }
}

async function checkKey() {
  const status = $("#key-status");
  try {
    const models = await api("/v1/models");
    status.textContent = `Connected · ${models.data.length} model(s)`;
    return true;
  } catch (err) {
    status.textContent = "";
    showError(err);
    return false;
  }
}

$("#key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("#api-key").value.trim();
  if (!key) return notify("Enter an API key.", "error");
  apiKey.set(key, $("#remember-key").checked);
  if (await checkKey()) {
    notify("API key saved in this browser.");
    await route();
  }
});

$("#forget-key").addEventListener("click", () => {
  apiKey.clear();
  $("#api-key").value = "";
  $("#key-status").textContent = "";
  notify("API key removed from this browser.");
});

window.addEventListener("hashchange", route);
$("#api-key").value = apiKey.get();
$("#remember-key").checked = apiKey.remembered();
if (apiKey.get()) checkKey().then((ok) => ok && route());
else route();
