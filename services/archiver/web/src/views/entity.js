// One entity with its latest digest and its digest history (newest first).

import { getJson } from "../api.js";
import { toCsv } from "../csv.js";
import { exportButton, field, formValues, h, table, viewLink } from "../dom.js";
import { formatScore, formatTime } from "../format.js";
import { formatState } from "../state.js";

const COLUMNS = ["created_at", "digest_type", "score", "document_count", "model", "prompt_version", "summary"];

export async function render(params, go) {
  const form = h("form", { class: "filters", "aria-label": "Open an entity" },
    field("Entity (kind:name)", "key", params.key, { required: true, lang: "" }),
    h("button", { type: "submit" }, "Open"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go("entity", formValues(form));
  });
  const view = h("section", { "aria-labelledby": "view-title" },
    h("h2", { id: "view-title" }, "Entity"), form);
  if (!params.key) return view;
  const entity = await getJson(`/v1/entities/${encodeURIComponent(params.key)}`, { history: 100 });
  const latest = entity.latest_digest;
  view.append(
    h("h3", {}, entity.name),
    h("p", { class: "meta" }, `${entity.kind}${entity.ticker ? ` · ${entity.ticker}` : ""} · `
      + `${entity.documents} documents · first seen ${formatTime(entity.created_at)} · `,
      viewLink(formatState("timeline", { entity: entity.entity_key }), "score timeline")),
    latest
      ? h("div", { class: "digest" }, h("h4", {}, `Latest digest: score ${formatScore(latest.score)}`),
          h("p", {}, latest.summary))
      : h("p", {}, "No digest yet."),
    table("Digest history, newest first", ["Written", "Type", "Score", "Documents", "Model", "Summary"],
      entity.digests, (d) => [formatTime(d.created_at), d.digest_type, formatScore(d.score),
        String(d.document_count), d.model, d.summary], "rows"),
    exportButton(`digests ${entity.name}`, async () => toCsv(COLUMNS, entity.digests)),
  );
  return view;
}
