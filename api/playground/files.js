// Files and vector stores: upload, create stores, attach files, and watch ingestion progress.
import { api, fileObjectUrl, listAll, url } from "./api.js";
import { $, formatBytes, guard, h, notify, replace, when } from "./dom.js";

const POLL_MS = 1000;

export async function uploadFile(file) {
  const form = new FormData();
  form.append("purpose", "assistants");
  form.append("file", file, file.name);
  return api("/v1/files", { method: "POST", form });
}

export function createFilesView(root) {
  let files = [];
  let stores = [];
  let selected = null; // vector store id
  let pollTimer = null;
  let visible = false;

  const fileTable = h("div", { id: "file-table" });
  const storeList = h("ul", { class: "item-list", id: "store-list", "aria-label": "Vector stores" });
  const storeDetail = h("div", { id: "store-detail", class: "store-detail" });
  const uploadInput = h("input", { type: "file", id: "file-input", multiple: true });

  replace(root,
    h("h2", { id: "h-files" }, "Files & vector stores"),
    h("div", { class: "split even" },
      h("div", { class: "panel" },
        h("h3", {}, "Files"),
        h("form", { class: "row wrap", id: "upload-form", onsubmit: upload },
          h("label", { for: "file-input" }, "Upload files"), uploadInput,
          h("button", { type: "submit", id: "upload-button" }, "Upload")),
        fileTable),
      h("div", { class: "panel" },
        h("h3", {}, "Vector stores"),
        h("form", { class: "row wrap", id: "store-form", onsubmit: createStore },
          h("label", { for: "store-name" }, "New store"),
          h("input", { id: "store-name", placeholder: "Name", required: true }),
          h("button", { type: "submit", id: "create-store" }, "Create")),
        storeList,
        storeDetail)));

  async function upload(event) {
    event.preventDefault();
    if (!uploadInput.files.length) return notify("Choose a file to upload first.", "error");
    await guard($("#upload-button", root), async () => {
      for (const file of uploadInput.files) await uploadFile(file);
      notify(`Uploaded ${uploadInput.files.length} file(s).`);
      uploadInput.value = "";
      await load();
    });
  }

  async function createStore(event) {
    event.preventDefault();
    const input = $("#store-name", root);
    await guard($("#create-store", root), async () => {
      const store = await api("/v1/vector_stores", { method: "POST", body: { name: input.value.trim() } });
      input.value = "";
      selected = store.id;
      notify(`Created vector store ${store.name || store.id}.`);
      await load();
    });
  }

  async function download(event, file) {
    event.preventDefault();
    await guard(null, async () => {
      const link = h("a", { href: await fileObjectUrl(file.id), download: file.filename });
      link.click();
    });
  }

  function renderFiles() {
    if (files.length === 0) return replace(fileTable, h("p", { class: "muted" }, "No files yet."));
    replace(fileTable, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Size"), h("th", { class: "hide-narrow" }, "Uploaded"),
        h("th", {}, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", {}, files.map((f) => h("tr", {},
        h("td", { class: "name" }, h("a", { href: url(`/v1/files/${f.id}/content`), onclick: (e) => download(e, f) }, f.filename),
          h("div", { class: "mono muted" }, f.id)),
        h("td", {}, formatBytes(f.bytes)),
        h("td", { class: "hide-narrow" }, when(f.created_at)),
        h("td", {}, h("button", { type: "button", class: "danger small", "aria-label": `Delete ${f.filename}`,
          onclick: (e) => guard(e.currentTarget, async () => {
            if (!confirm(`Delete ${f.filename}?`)) return;
            await api(`/v1/files/${f.id}`, { method: "DELETE" });
            await load();
          }) }, "Delete")))))));
  }

  function renderStores() {
    replace(storeList, stores.length === 0 ? h("li", { class: "muted" }, "No vector stores yet.") : stores.map((s) =>
      h("li", {}, h("button", { type: "button", class: `item${s.id === selected ? " selected" : ""}`,
        "aria-current": s.id === selected ? "true" : null, onclick: () => { selected = s.id; renderStores(); refreshStore(); } },
      h("span", { class: "item-title" }, s.name || s.id),
      h("span", { class: "item-sub" }, `${s.file_counts.completed}/${s.file_counts.total} files ready · ${s.status}`)))));
  }

  async function attach(storeId, fileId) {
    await api(`/v1/vector_stores/${storeId}/files`, { method: "POST", body: { file_id: fileId } });
  }

  function renderStore(store, storeFiles) {
    const counts = store.file_counts;
    const candidates = files.filter((f) => !storeFiles.some((sf) => sf.id === f.id));
    const attachSelect = h("select", { id: "attach-file" }, candidates.length
      ? candidates.map((f) => h("option", { value: f.id }, f.filename)) : h("option", { value: "" }, "(no other files)"));
    const directInput = h("input", { type: "file", id: "store-upload" });
    const names = new Map(files.map((f) => [f.id, f.filename]));
    replace(storeDetail,
      h("h4", {}, store.name || store.id),
      h("p", { class: "mono muted" }, store.id),
      h("div", { class: "progress-row" },
        h("label", { for: "store-progress" }, `Ingestion: ${counts.completed} of ${counts.total} completed`,
          counts.failed ? `, ${counts.failed} failed` : "", counts.in_progress ? `, ${counts.in_progress} in progress` : ""),
        h("progress", { id: "store-progress", max: String(Math.max(counts.total, 1)), value: String(counts.completed) })),
      h("form", { class: "row wrap", onsubmit: (e) => { e.preventDefault(); guard(e.submitter, async () => {
        if (!attachSelect.value) throw new Error("Upload a file first, then attach it.");
        await attach(store.id, attachSelect.value);
        await refreshStore();
      }); } },
      h("label", { for: "attach-file" }, "Attach a file"), attachSelect, h("button", { type: "submit", id: "attach-button" }, "Attach")),
      h("form", { class: "row wrap", onsubmit: (e) => { e.preventDefault(); guard(e.submitter, async () => {
        if (!directInput.files.length) throw new Error("Choose a file to upload first.");
        for (const file of directInput.files) {
          const uploaded = await uploadFile(file);
          await attach(store.id, uploaded.id);
        }
        notify("Uploaded; ingestion started.");
        await load();
      }); } },
      h("label", { for: "store-upload" }, "Upload into this store"), directInput,
      h("button", { type: "submit", id: "store-upload-button" }, "Upload & attach")),
      storeFiles.length === 0 ? h("p", { class: "muted" }, "No files in this store.") : h("table", { class: "table", id: "store-files" },
        h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Status"), h("th", { class: "hide-narrow" }, "Size"))),
        h("tbody", {}, storeFiles.map((sf) => h("tr", { dataset: { fileId: sf.id } },
          h("td", { class: "name" }, names.get(sf.id) || sf.id),
          h("td", {}, h("span", { class: `badge ${sf.status}` }, sf.status),
            sf.last_error ? h("div", { class: "feedback bad" }, sf.last_error.message) : null),
          h("td", { class: "hide-narrow" }, sf.usage_bytes ? formatBytes(sf.usage_bytes) : ""))))),
      h("div", { class: "row actions" }, h("button", { type: "button", class: "danger", id: "delete-store",
        onclick: (e) => guard(e.currentTarget, async () => {
          if (!confirm(`Delete vector store ${store.name || store.id}?`)) return;
          await api(`/v1/vector_stores/${store.id}`, { method: "DELETE" });
          selected = null;
          await load();
        }) }, "Delete store")));
  }

  async function refreshStore() {
    clearTimeout(pollTimer);
    if (!selected) return replace(storeDetail, h("p", { class: "muted" }, "Select or create a vector store."));
    const [store, storeFiles] = await Promise.all([
      api(`/v1/vector_stores/${selected}`), listAll(`/v1/vector_stores/${selected}/files`)]);
    const index = stores.findIndex((s) => s.id === store.id);
    if (index >= 0) { stores[index] = store; renderStores(); }
    renderStore(store, storeFiles);
    // Poll while ingestion runs, and only while this view is on screen.
    if (visible && storeFiles.some((f) => f.status === "in_progress")) {
      pollTimer = setTimeout(() => refreshStore().catch(showPollError), POLL_MS);
    }
  }

  function showPollError(err) {
    notify(`Could not refresh the vector store: ${err.message}`, "error");
  }

  async function load() {
    [files, stores] = await Promise.all([listAll("/v1/files", 10000), listAll("/v1/vector_stores")]);
    if (selected && !stores.some((s) => s.id === selected)) selected = null;
    if (!selected && stores.length) selected = stores[0].id;
    renderFiles();
    renderStores();
    await refreshStore();
  }

  return {
    async show() { visible = true; await load(); },
    hide() { visible = false; clearTimeout(pollTimer); },
  };
}
