// CSV as RFC 4180 writes it: a header row, CRLF line ends, and a field quoted when it holds a comma,
// a double quote or a line break (its quotes doubled).

export type CsvValue = string | number | null | undefined;

/** One field: "" for null, numbers as they are, text quoted only when it must be. */
export function csvField(value: CsvValue): string {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The whole file: the header row, then one line per row, each line ended by CRLF. */
export function toCsv(header: readonly string[], rows: readonly (readonly CsvValue[])[]): string {
  return [header, ...rows].map((row) => `${row.map(csvField).join(",")}\r\n`).join("");
}
