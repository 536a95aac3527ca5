// The page's state lives in the URL hash ("#/search?q=...&kind=news") so a link can be shared.
// Pure functions: no DOM, no window; unit-tested under node.

export const VIEWS = ["timeline", "rankings", "search", "document", "entity", "status"];
export const DEFAULT_VIEW = "rankings";

/** The view and its parameters from a location hash; an unknown view falls back to the default. */
export function parseState(hash) {
  const text = (hash || "").replace(/^#\/?/, "");
  const at = text.indexOf("?");
  const name = decodeURIComponent(at < 0 ? text : text.slice(0, at));
  const params = {};
  if (at >= 0) {
    for (const [key, value] of new URLSearchParams(text.slice(at + 1))) {
      if (value !== "") params[key] = value;
    }
  }
  return { view: VIEWS.includes(name) ? name : DEFAULT_VIEW, params };
}

/** The hash for a view and its parameters; empty values are left out, keys sorted (stable links). */
export function formatState(view, params = {}) {
  const kept = Object.keys(params)
    .filter((key) => params[key] !== undefined && params[key] !== null && params[key] !== "")
    .sort()
    .map((key) => [key, String(params[key])]);
  const query = new URLSearchParams(kept).toString();
  return `#/${view}${query ? `?${query}` : ""}`;
}

/** Query-string parameters for the API: only the keys named, only those set. */
export function pick(params, keys) {
  const out = {};
  for (const key of keys) {
    if (params[key] !== undefined && params[key] !== "") out[key] = params[key];
  }
  return out;
}
