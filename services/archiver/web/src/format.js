// Numbers, times and errors as the page shows them. Pure: unit-tested under node.

/** A 0-100 score with one decimal; a missing score is a dash, never a made-up 0. */
export function formatScore(score) {
  return typeof score === "number" && Number.isFinite(score) ? score.toFixed(1) : "–";
}

/** An ISO timestamp as "YYYY-MM-DD HH:MM UTC"; missing or unreadable is a dash. */
export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "–";
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** "positive", "negative" or "neutral" around 50, for a colour class and its text. */
export function scoreTone(score) {
  if (typeof score !== "number") return "neutral";
  if (score >= 60) return "positive";
  if (score <= 40) return "negative";
  return "neutral";
}

const STATUS_TEXT = {
  401: "The API key is missing or unknown. Sign in with an analyst key.",
  403: "This API key lacks the query scope.",
  404: "Not found.",
  429: "Too many failed key attempts from this address; wait a little and try again.",
  503: "A service the archiver needs is down.",
};

/** A readable message from an error response: the API's own message, the field at fault
 * (a 422 names it), and what the status means. */
export function errorMessage(status, body) {
  const error = body && typeof body === "object" ? body.error : null;
  if (status === 422 && error) {
    const fields = (error.errors || []).map((e) => `${e.field}: ${e.reason}`);
    const detail = fields.length ? fields.join("; ") : error.message;
    return `A parameter is wrong — ${detail}`;
  }
  const known = STATUS_TEXT[status] || `The archiver answered ${status}.`;
  return error && error.message ? `${known} (${error.message})` : known;
}

/** An ISO date (YYYY-MM-DD) as the start of that day in UTC; anything else unchanged. */
export function dayStart(value) {
  return /^\d{4}-\d{2}-\d{2}$/.test(value || "") ? `${value}T00:00:00Z` : value;
}
