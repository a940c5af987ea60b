// CSV files built in the browser (reports, audit log): RFC 4180 quoting,
// CRLF line ends, and cells that a spreadsheet would run as a formula
// (`=`, `+`, `-`, `@`, tab, CR at the start) neutralised with a leading
// apostrophe, so a name chosen by a stranger cannot run in Excel.
//
// Owns: turning rows into CSV text and a download. Must not: fetch anything.

/** A cell value: text, a number, a boolean, or nothing (empty). */
export type Cell = string | number | boolean | null | undefined;

const FORMULA = /^[=+\-@\t\r]/;

/** One cell as CSV: quoted when it holds a comma, quote or line end. */
export function csvCell(value: Cell): string {
  if (value === null || value === undefined) return '';
  let s = String(value);
  if (typeof value === 'string' && FORMULA.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A whole CSV text: the header line, then one line per row. */
export function toCsv(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

/** Offers `text` to the user as a file named `name` (a CSV download). */
export function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
