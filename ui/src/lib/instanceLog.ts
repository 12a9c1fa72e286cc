// An instance's log as the page keeps it: the last lines only, so a long follow never grows without
// bound; its address; its command line as one line to copy.

export const LOG_TAIL = 200;
export const LOG_KEEP_LINES = 2000;

export function logUrl(instanceId: number | string, tail: number = LOG_TAIL, follow = true): string {
  return `/api/model-instances/${instanceId}/logs?tail=${tail}&follow=${follow}`;
}

/** `kept` with `chunk` appended, cut to its last `maxLines` lines (a partial last line counts). */
export function appendLog(kept: string, chunk: string, maxLines: number = LOG_KEEP_LINES): string {
  const text = kept + chunk;
  if (maxLines <= 0) return "";
  let newlines = 0;
  // a trailing newline ends the last line; it does not start another
  const end = text.endsWith("\n") ? text.length - 1 : text.length;
  for (let at = end - 1; at >= 0; at -= 1) {
    if (text[at] === "\n") {
      newlines += 1;
      if (newlines === maxLines) return text.slice(at + 1);
    }
  }
  return text;
}

/** The engine's argv joined with spaces, or null before the engine started. */
export function commandLine(argv: string[] | null | undefined): string | null {
  if (!argv || argv.length === 0) return null;
  return argv.join(" ");
}
