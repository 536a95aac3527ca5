// One document with its analysis history (oldest first) and the entities it mentions.

import { getJson } from "../api.js";
import { toCsv } from "../csv.js";
import { exportButton, field, formValues, h, table, viewLink } from "../dom.js";
import { formatScore, formatTime } from "../format.js";
import { formatState } from "../state.js";

const COLUMNS = ["created_at", "analysis_type", "prompt_version", "model", "score", "summary"];

export async function render(params, go) {
  const form = h("form", { class: "filters", "aria-label": "Open a document" },
    field("Document id", "id", params.id, { required: true, size: 66, pattern: "[0-9a-f]{64}" }),
    h("button", { type: "submit" }, "Open"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go("document", formValues(form));
  });
  const view = h("section", { "aria-labelledby": "view-title" },
    h("h2", { id: "view-title" }, "Document"), form);
  if (!params.id) return view;
  const doc = await getJson(`/v1/documents/${encodeURIComponent(params.id)}`);
  const lang = doc.language || undefined;
  const rows = doc.analyses.map((a) => ({ ...a, summary: a.result?.summary ?? "" }));
  view.append(
    h("article", { lang },
      h("h3", {}, doc.title || doc.id),
      h("p", { class: "meta", lang: "en" }, `${doc.kind} · ${doc.source} · ${doc.language ?? "?"} · `
        + `published ${formatTime(doc.published_at)} · stored ${formatTime(doc.stored_at)} · `
        + `${doc.embedded_chunks} embedded chunks`),
      doc.url ? h("p", {}, h("a", { href: doc.url, rel: "noreferrer" }, doc.url)) : null,
      h("p", { class: "body" }, doc.body)),
    h("h3", {}, "Entities"),
    h("ul", {}, doc.entities.map((e) => h("li", {},
      viewLink(formatState("entity", { key: e.entity_key }), e.name),
      ` (${e.kind}${e.ticker ? `, ${e.ticker}` : ""}) score ${formatScore(e.score)}`))),
    table("Analysis history, oldest first", ["Analysed", "Type", "Prompt", "Model", "Score", "Summary"],
      rows, (a) => [formatTime(a.created_at), a.analysis_type, a.prompt_version, a.model,
        formatScore(a.score), h("span", { lang }, a.summary)], "rows"),
    exportButton(`analyses ${doc.id.slice(0, 12)}`, async () => toCsv(COLUMNS, rows)),
  );
  return view;
}
