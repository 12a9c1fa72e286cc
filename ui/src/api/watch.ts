// GET /api/watch: one JSON event a line. Opened with the session cookie; every (re)connection starts
// with the current objects (ADDED), then SYNCED, then live changes. When the stream drops it is
// opened again after a back-off (1 s doubling to 30 s), and the listing replaces what was known.

import type { WatchEvent } from "./types";

export interface WatchHandlers {
  onOpen: () => void; // a (re)connection: the listing of current objects follows, then "synced"
  onEvent: (event: WatchEvent) => void;
  onStatus: (connected: boolean) => void;
}

const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 30000;

export function watch(kinds: string[], handlers: WatchHandlers): () => void {
  const stop = new AbortController();
  let retry = FIRST_RETRY_MS;

  async function once(): Promise<void> {
    const response = await fetch(`/api/watch?kinds=${kinds.join(",")}`, {
      credentials: "same-origin",
      signal: stop.signal,
    });
    if (!response.ok || !response.body) throw new Error(`watch: HTTP ${response.status}`);
    handlers.onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline = buffer.indexOf("\n");
      while (newline >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) {
          const event = JSON.parse(line) as WatchEvent;
          if (event.type === "SYNCED") {
            retry = FIRST_RETRY_MS;
            handlers.onStatus(true);
          }
          handlers.onEvent(event);
        }
        newline = buffer.indexOf("\n");
      }
    }
  }

  async function loop(): Promise<void> {
    while (!stop.signal.aborted) {
      try {
        await once();
      } catch {
        // dropped, refused or the server restarted: try again after the back-off
      }
      if (stop.signal.aborted) return;
      handlers.onStatus(false);
      await new Promise((resolve) => setTimeout(resolve, retry));
      retry = Math.min(retry * 2, LAST_RETRY_MS);
    }
  }

  void loop();
  return () => stop.abort();
}
