// Semantic search with filters; each hit with its summary, score and entities.

import { getCsv, getJson } from "../api.js";
import { exportButton, field, formValues, h, viewLink } from "../dom.js";
import { formatScore, formatTime } from "../format.js";
import { formatState, pick } from "../state.js";
import { filterFields, filterParams } from "./filters.js";

export async function render(params, go) {
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Semantic search" },
    field("Search by meaning", "q", params.q, { type: "search", required: true, lang: "", size: 40 }),
    filterFields(params),
    field("Results", "k", params.k || "10", { type: "number", min: 1, max: 100 }),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go("search", formValues(form));
  });
  const view = h("section", { "aria-labelledby": "view-title" },
    h("h2", { id: "view-title" }, "Search"), form);
  if (!params.q) return view;
  const query = { q: params.q, ...filterParams(params), ...pick(params, ["k"]) };
  const page = await getJson("/v1/search", query);
  // The search route answers no entities: each hit's document gives them.
  const docs = await Promise.all(page.items.map((hit) => getJson(`/v1/documents/${hit.document_id}`)));
  view.append(
    page.items.length
      ? h("ol", { class: "hits", "data-testid": "rows", "aria-label": "Search results" },
          page.items.map((hit, i) => hitItem(hit, docs[i])))
      : h("p", {}, "Nothing matches these filters."),
    exportButton("search results", () => getCsv("/v1/search", query)),
  );
  return view;
}

function hitItem(hit, doc) {
  const lang = hit.language || undefined;
  return h("li", { "data-document": hit.document_id },
    h("h3", { lang }, viewLink(formatState("document", { id: hit.document_id }), hit.title || hit.document_id)),
    h("p", { class: "meta" }, `similarity ${hit.score.toFixed(3)} · ${hit.kind} · ${hit.source} · `
      + `${hit.language ?? "?"} · ${formatTime(hit.published_at)} · score `
      + formatScore(doc.analyses.at(-1)?.score)),
    h("p", { lang }, hit.summary ?? "(no summary)"),
    h("p", { class: "entities" }, "Entities: ", doc.entities.length
      ? doc.entities.flatMap((e, i) => [i ? ", " : "",
          viewLink(formatState("entity", { key: e.entity_key }), `${e.name} (${formatScore(e.score)})`)])
      : "none"),
  );
}
