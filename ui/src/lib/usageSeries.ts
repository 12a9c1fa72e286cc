// Usage over time as the dashboard charts it: which range of GET /api/usage/series a preset asks
// for, and the server's sparse points turned into one zero-filled row per bucket with a column per
// model (columns are named m0, m1… since a model name such as "qwen2.5" is no safe chart key).

import type { UsageSeries } from "../api/types";

export type RangePreset = "24h" | "7d" | "30d" | "custom";

export interface SeriesQuery {
  step: "hour" | "day";
  from: string; // YYYY-MM-DD, UTC
  to: string;
  keep: number | null; // keep only the last `keep` buckets that have started (24 h: 24)
}

const DAY_MS = 86_400_000;
const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
export const SERIES_COLORS = [
  "blue.6",
  "teal.6",
  "orange.6",
  "grape.6",
  "red.6",
  "cyan.6",
  "lime.7",
  "pink.6",
  "indigo.6",
  "yellow.7",
];

/** The UTC day of an instant, "YYYY-MM-DD". */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A UTC day `days` later (or earlier, when negative). */
export function shiftDay(day: string, days: number): string {
  return utcDay(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS);
}

export function isDay(value: string): boolean {
  return DAY_PATTERN.test(value) && !Number.isNaN(Date.parse(`${value}T00:00:00Z`));
}

/** The last `days` UTC days, today included. */
export function lastDays(days: number, now: number): { from: string; to: string } {
  const to = utcDay(now);
  return { from: shiftDay(to, 1 - days), to };
}

/** What a range preset asks the server for; null while a custom range is incomplete. */
export function seriesQuery(preset: RangePreset, now: number, custom: { from: string; to: string }): SeriesQuery | null {
  const today = utcDay(now);
  switch (preset) {
    case "24h":
      return { step: "hour", from: shiftDay(today, -1), to: today, keep: 24 };
    case "7d":
      return { step: "day", ...lastDays(7, now), keep: null };
    case "30d":
      return { step: "day", ...lastDays(30, now), keep: null };
    case "custom":
      if (!isDay(custom.from) || !isDay(custom.to)) return null;
      return { step: "day", from: custom.from, to: custom.to, keep: null };
  }
}

export function seriesPath(query: SeriesQuery): string {
  return `/api/usage/series?step=${query.step}&from=${query.from}&to=${query.to}`;
}

/** A bucket's label on the x axis (UTC): "Dec 3" per day, "Dec 3 14:00" per hour. */
export function bucketLabel(ms: number, step: "hour" | "day"): string {
  const date = new Date(ms);
  const day = `${MONTHS[date.getUTCMonth()]} ${date.getUTCDate()}`;
  if (step === "day") return day;
  return `${day} ${String(date.getUTCHours()).padStart(2, "0")}:00`;
}

export interface SeriesModel {
  key: string; // the chart column: m0, m1…
  model: string;
  color: string;
}

export interface ModelTotals {
  model_name: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type ChartRow = { time: string; label: string } & Record<string, string | number>;

export interface UsageChart {
  models: SeriesModel[]; // by name
  requests: ChartRow[]; // one row per bucket, ascending
  tokens: ChartRow[];
  totals: ModelTotals[]; // over the buckets kept, most tokens first
  empty: boolean; // no request in the buckets kept
}

/** Chart rows from a series: every bucket (the last `keep` that started by `now`, when `keep` is
 * set), every model's requests and total tokens in it (0 where it had none), and per-model sums. */
export function usageChart(series: UsageSeries, keep: number | null = null, now: number = Infinity): UsageChart {
  let buckets = series.buckets.map((iso) => Date.parse(iso)).filter((ms) => !Number.isNaN(ms));
  if (keep !== null) buckets = buckets.filter((ms) => ms <= now).slice(-keep);
  const index = new Map(buckets.map((ms, i) => [ms, i]));
  const totals = new Map<string, ModelTotals>();
  const kept = series.points.filter((point) => index.has(Date.parse(point.time)));
  for (const point of kept) {
    const sum = totals.get(point.model_name) ?? {
      model_name: point.model_name,
      requests: 0,
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
    };
    sum.requests += point.requests;
    sum.prompt_tokens += point.prompt_tokens;
    sum.completion_tokens += point.completion_tokens;
    sum.total_tokens += point.total_tokens;
    totals.set(point.model_name, sum);
  }
  const names = [...totals.keys()].sort((a, b) => a.localeCompare(b));
  const models = names.map((model, i) => ({
    key: `m${i}`,
    model,
    color: SERIES_COLORS[i % SERIES_COLORS.length] ?? "gray.6",
  }));
  const keyOf = new Map(models.map((m) => [m.model, m.key]));
  const blank = (ms: number): ChartRow => {
    const row: ChartRow = { time: new Date(ms).toISOString(), label: bucketLabel(ms, series.step) };
    for (const m of models) row[m.key] = 0;
    return row;
  };
  const requests = buckets.map(blank);
  const tokens = buckets.map(blank);
  for (const point of kept) {
    const i = index.get(Date.parse(point.time)) ?? 0;
    const key = keyOf.get(point.model_name) ?? "";
    const r = requests[i];
    const t = tokens[i];
    if (r) r[key] = Number(r[key] ?? 0) + point.requests;
    if (t) t[key] = Number(t[key] ?? 0) + point.total_tokens;
  }
  const ordered = [...totals.values()].sort(
    (a, b) => b.total_tokens - a.total_tokens || b.requests - a.requests || a.model_name.localeCompare(b.model_name),
  );
  return { models, requests, tokens, totals: ordered, empty: kept.length === 0 };
}
