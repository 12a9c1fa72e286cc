// Server-sent events as the gateway streams them: text arrives in chunks cut anywhere (mid-line,
// mid-field, between "\r" and "\n"); an event is complete at its blank line. The parser keeps what
// is incomplete and hands back the data of every complete event, in order.

export class SseParser {
  private buffer = "";
  private data: string[] = [];

  /** Feed a chunk of text; returns the data of each event it completed. */
  push(chunk: string): string[] {
    this.buffer += chunk;
    const events: string[] = [];
    for (;;) {
      const found = /\r\n|\r|\n/.exec(this.buffer);
      if (!found) break;
      // a "\r" that ends the buffer may be the first half of "\r\n": wait for the next chunk
      if (found[0] === "\r" && found.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, found.index);
      this.buffer = this.buffer.slice(found.index + found[0].length);
      this.line(line, events);
    }
    return events;
  }

  /** The stream ended: what is left counts as a last line and a last event. */
  end(): string[] {
    const events: string[] = [];
    const rest = this.buffer.replace(/\r$/, "");
    this.buffer = "";
    if (rest) this.line(rest, events);
    this.dispatch(events);
    return events;
  }

  private line(line: string, events: string[]): void {
    if (line === "") {
      this.dispatch(events);
      return;
    }
    if (line.startsWith(":")) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
  }

  private dispatch(events: string[]): void {
    if (this.data.length === 0) return;
    events.push(this.data.join("\n"));
    this.data = [];
  }
}

/** Every event's data from a response body, until the stream ends or an event says "[DONE]". */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      const events = done ? parser.push(decoder.decode()).concat(parser.end()) : parser.push(decoder.decode(value, { stream: true }));
      for (const data of events) {
        if (data.trim() === "[DONE]") return;
        yield data;
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}
