// The Usage page's table (and its CSV): the columns of a grouping, a row's names in them, and the
// export's file name. Rows are ordered by total tokens, most first.

import type { UsageRow } from "../api/types";
import type { CsvValue } from "./csv";

export type UsageGroupBy = "model" | "user" | "key";

export const GROUP_OPTIONS: { value: UsageGroupBy; label: string }[] = [
  { value: "model", label: "Model" },
  { value: "user", label: "User" },
  { value: "key", label: "API key" },
];

export const COUNT_COLUMNS = ["Requests", "Prompt tokens", "Completion tokens", "Total tokens"];

/** The columns that name a group. */
export function groupColumns(group: UsageGroupBy): string[] {
  if (group === "model") return ["Model"];
  if (group === "user") return ["User"];
  return ["API key", "User"];
}

function userName(row: UsageRow): string {
  if (row.username) return row.username;
  return row.user_id === null ? "—" : `(deleted user ${row.user_id})`;
}

/** A row's names, one per group column. */
export function groupNames(row: UsageRow, group: UsageGroupBy): string[] {
  if (group === "model") return [row.model_name ?? "—"];
  if (group === "user") return [userName(row)];
  return [row.api_key_name ?? `(key ${row.api_key_id ?? "?"})`, userName(row)];
}

/** One label for a group (a chart's axis): "key-name (alice)" for keys. */
export function groupLabel(row: UsageRow, group: UsageGroupBy): string {
  const [first, second] = groupNames(row, group);
  return second === undefined ? (first ?? "—") : `${first} (${second})`;
}

export function sortUsage(rows: readonly UsageRow[], group: UsageGroupBy): UsageRow[] {
  return [...rows].sort(
    (a, b) =>
      b.total_tokens - a.total_tokens ||
      b.requests - a.requests ||
      groupLabel(a, group).localeCompare(groupLabel(b, group)),
  );
}

/** The table as the CSV holds it: its header and, per row, the names then the raw counts. */
export function usageTable(rows: readonly UsageRow[], group: UsageGroupBy): { header: string[]; body: CsvValue[][] } {
  return {
    header: [...groupColumns(group), ...COUNT_COLUMNS],
    body: sortUsage(rows, group).map((row) => [
      ...groupNames(row, group),
      row.requests,
      row.prompt_tokens,
      row.completion_tokens,
      row.total_tokens,
    ]),
  };
}

/** "gpufleet-usage-model-2026-11-04-to-2026-12-03.csv" */
export function usageFilename(group: UsageGroupBy, from: string, to: string): string {
  return `gpufleet-usage-${group}-${from}-to-${to}.csv`;
}

export function usagePath(group: UsageGroupBy, from: string, to: string): string {
  return `/api/usage?group_by=${group}&from=${from}&to=${to}`;
}
