// The document filters the scores and search routes share: kind, source, language, dates.

import { field } from "../dom.js";
import { dayStart } from "../format.js";
import { pick } from "../state.js";

export const FILTERS = ["kind", "source", "language", "since", "until"];

export function filterFields(params) {
  return [
    field("Kind", "kind", params.kind, {
      options: [["", "any"], ["news", "news"], ["review", "review"], ["generic", "generic"]],
    }),
    field("Source", "source", params.source, { lang: "" }),
    field("Language", "language", params.language, { placeholder: "en, ko", size: 6 }),
    field("From (UTC day)", "since", params.since, { type: "date" }),
    field("Until (UTC day)", "until", params.until, { type: "date" }),
  ];
}

/** The filters as the API takes them (dates as the start of their UTC day). */
export function filterParams(params) {
  const out = pick(params, FILTERS);
  for (const key of ["since", "until"]) if (out[key]) out[key] = dayStart(out[key]);
  return out;
}
