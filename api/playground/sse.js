// Server-sent events over fetch: EventSource cannot send an Authorization header, so the page
// reads the response body itself. Each event is {id, event, data} with `data` parsed as JSON
// (the terminal `done` event carries the literal "[DONE]").

export class SSEParser {
  constructor() {
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.id = null;
    this.event = "message";
    this.data = [];
  }

  /** Feed decoded text; returns the events it completed. */
  push(text) {
    this.buffer += text;
    const out = [];
    let nl;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      const sep = this.buffer.startsWith("\r\n", nl) ? 2 : 1;
      this.buffer = this.buffer.slice(nl + sep);
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  line(line) {
    if (line === "") {
      if (this.data.length === 0) { this.reset(); return null; }
      const raw = this.data.join("\n");
      let data = raw;
      if (raw !== "[DONE]") {
        try { data = JSON.parse(raw); } catch { /* keep the text */ }
      }
      const ev = { id: this.id, event: this.event, data };
      this.reset();
      return ev;
    }
    if (line.startsWith(":")) return null; // keepalive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
    return null;
  }
}

/** Yields the events of a fetch Response whose body is text/event-stream. */
export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode() + "\n\n");
  } finally {
    reader.releaseLock();
  }
}
