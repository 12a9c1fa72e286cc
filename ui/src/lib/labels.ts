// A worker's labels as the editor shows them: rows of key and value. The automatic ones (from the
// worker's hardware) are listed too, read-only: the server keeps them whatever is sent.

export const AUTO_LABELS = ["os", "arch", "gpu-vendor"] as const;

const KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^[A-Za-z0-9._:/+-]{0,128}$/;

export interface LabelRow {
  key: string;
  value: string;
}

export function isAutoLabel(key: string): boolean {
  return (AUTO_LABELS as readonly string[]).includes(key);
}

/** "zone=eu-west", how a label reads on a badge. */
export function formatLabel(key: string, value: string): string {
  return `${key}=${value}`;
}

/** Labels sorted by key, the automatic ones first. */
export function labelEntries(labels: Record<string, string>): [string, string][] {
  return Object.entries(labels).sort(([a], [b]) => {
    const auto = Number(isAutoLabel(b)) - Number(isAutoLabel(a));
    return auto || a.localeCompare(b);
  });
}

/** The rows a person edits: every label but the automatic ones. */
export function editableRows(labels: Record<string, string>): LabelRow[] {
  return labelEntries(labels)
    .filter(([key]) => !isAutoLabel(key))
    .map(([key, value]) => ({ key, value }));
}

export type RowsResult = { labels: Record<string, string>; error: null } | { labels: null; error: string };

/** Rows back to labels: blank rows are skipped; a bad key or value, a key given twice with two values
 * or an automatic key is an error. */
export function rowsToLabels(rows: LabelRow[]): RowsResult {
  const labels: Record<string, string> = {};
  for (const row of rows) {
    const key = row.key.trim();
    const value = row.value.trim();
    if (!key && !value) continue;
    if (!KEY.test(key)) {
      return {
        labels: null,
        error: `label key "${key}" must be 1-63 letters, digits, '.', '_', '/' or '-', starting and ending with a letter or digit`,
      };
    }
    if (!VALUE.test(value)) {
      return { labels: null, error: `label value "${value}" for "${key}" must be at most 128 letters, digits or ._:/+-` };
    }
    if (isAutoLabel(key)) return { labels: null, error: `label "${key}" is set automatically from the worker's hardware` };
    if (key in labels && labels[key] !== value) {
      return { labels: null, error: `label "${key}" is given twice, as "${labels[key]}" and "${value}"` };
    }
    labels[key] = value;
  }
  return { labels, error: null };
}
