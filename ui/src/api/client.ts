// Every call to the management API: same origin, the session cookie, JSON in and out. A refusal
// becomes an ApiError carrying the server's own message ("detail"), which pages show as it is.

export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

type Listener = () => void;
const signedOutListeners = new Set<Listener>();

/** Called when the server answers 401: the session ended (expired, revoked, password changed). */
export function onSignedOut(listener: Listener): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

export async function errorMessage(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { detail?: unknown; error?: { message?: string } };
    if (typeof body.detail === "string") return body.detail;
    if (body.error?.message) return body.error.message;
    if (body.detail !== undefined) return JSON.stringify(body.detail);
  } catch {
    // not JSON: the text itself
  }
  return text || `HTTP ${response.status} ${response.statusText}`;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
  quiet401?: boolean; // a 401 is expected (the sign-in check): do not announce a sign-out
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await fetch(path, {
    method: options.method ?? (options.body === undefined ? "GET" : "POST"),
    credentials: "same-origin",
    headers: options.body === undefined ? {} : { "content-type": "application/json" },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  if (!response.ok) {
    const message = await errorMessage(response);
    if (response.status === 401 && !options.quiet401) signedOutListeners.forEach((listener) => listener());
    throw new ApiError(response.status, message);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
