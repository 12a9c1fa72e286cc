// The API key form: what a person types (a date, optional limits) and the bodies it becomes.
// An empty field means no restriction: null on the wire (for an edit, null removes the limit).

import type { ApiKey } from "../api/types";

export interface KeyForm {
  name: string;
  allowedModels: string[]; // empty: every model
  expires: string; // YYYY-MM-DD from a date input, "" = never
  requestsPerMinute: number | string; // a NumberInput's value: "" when empty
  tokensPerDay: number | string;
}

export const EMPTY_KEY_FORM: KeyForm = {
  name: "",
  allowedModels: [],
  expires: "",
  requestsPerMinute: "",
  tokensPerDay: "",
};

export interface KeyLimits {
  expires_at: string | null;
  allowed_models: string[] | null;
  requests_per_minute: number | null;
  tokens_per_day: number | null;
}

/** "2027-01-31" → "2027-01-31T23:59:59Z" (the key works through that whole UTC day); "" → null. */
export function endOfDayUtc(date: string): string | null {
  const day = date.trim();
  if (!day) return null;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || Number.isNaN(Date.parse(`${day}T00:00:00Z`))) {
    throw new Error(`"${date}" is not a date`);
  }
  return `${day}T23:59:59Z`;
}

/** A NumberInput's value as a limit: "" → null (unlimited). */
export function limitValue(value: number | string): number | null {
  if (value === "" || value === null || value === undefined) return null;
  const number = typeof value === "number" ? value : Number(value);
  if (!Number.isFinite(number)) throw new Error(`"${value}" is not a number`);
  return Math.round(number);
}

export function keyLimits(form: KeyForm): KeyLimits {
  return {
    expires_at: endOfDayUtc(form.expires),
    allowed_models: form.allowedModels.length ? [...form.allowedModels] : null,
    requests_per_minute: limitValue(form.requestsPerMinute),
    tokens_per_day: limitValue(form.tokensPerDay),
  };
}

/** POST /api/api-keys */
export function createKeyBody(form: KeyForm): { name: string } & KeyLimits {
  return { name: form.name.trim(), ...keyLimits(form) };
}

/** The form filled from a key, to edit its limits. */
export function formFromKey(key: ApiKey): KeyForm {
  return {
    name: key.name,
    allowedModels: key.allowed_models ?? [],
    expires: key.expires_at ? new Date(key.expires_at).toISOString().slice(0, 10) : "",
    requestsPerMinute: key.requests_per_minute ?? "",
    tokensPerDay: key.tokens_per_day ?? "",
  };
}

/** PATCH /api/api-keys/{id}: only what changed (an unchanged, already past expiry is not sent back). */
export function updateKeyBody(form: KeyForm, key: ApiKey): Partial<KeyLimits> {
  const next = keyLimits(form);
  const before = formFromKey(key);
  const body: Partial<KeyLimits> = {};
  if (form.expires.trim() !== before.expires) body.expires_at = next.expires_at;
  const models = (list: string[] | null) => JSON.stringify([...(list ?? [])].sort());
  if (models(next.allowed_models) !== models(key.allowed_models)) body.allowed_models = next.allowed_models;
  if (next.requests_per_minute !== key.requests_per_minute) body.requests_per_minute = next.requests_per_minute;
  if (next.tokens_per_day !== key.tokens_per_day) body.tokens_per_day = next.tokens_per_day;
  return body;
}

/** How a client uses the key: curl against the gateway at `baseUrl` (…/v1). */
export function usageExample(baseUrl: string, key: string, model = "MODEL"): string {
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Hello!" }] });
  return [
    `curl ${baseUrl}/chat/completions \\`,
    `  -H "Authorization: Bearer ${key}" \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -d '${body}'`,
  ].join("\n");
}
