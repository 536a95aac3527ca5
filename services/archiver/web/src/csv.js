// CSV the way the archiver's own `format=csv` writes it (RFC 4180: comma, CRLF, quotes doubled),
// for the lists no API route exports (analysis history, digest history, queue depths).

function cell(value) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Rows (objects) as CSV with a header line of `columns`, in that order. */
export function toCsv(columns, rows) {
  const lines = [columns.map(cell).join(",")];
  for (const row of rows) lines.push(columns.map((column) => cell(row[column])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

/** A safe download name from a label: letters of any script, digits, dashes. */
export function csvFilename(label) {
  const stem = String(label).normalize("NFC").replace(/[^\p{L}\p{N}]+/gu, "-").replace(/^-|-$/g, "");
  return `sift-${stem || "export"}.csv`;
}
