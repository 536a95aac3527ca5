// Top and bottom entities over a window, each with a sparkline of its daily mean score.

import { getCsv, getJson } from "../api.js";
import { sparklinePath, windowStart } from "../chartdata.js";
import { exportButton, field, formValues, h, svg, table, viewLink } from "../dom.js";
import { formatScore, scoreTone } from "../format.js";
import { formatState, pick } from "../state.js";

const KEYS = ["direction", "window_days", "kind", "min_documents", "limit"];

export async function render(params, go) {
  const values = { direction: "top", window_days: "30", limit: "10", ...params };
  const form = h(
    "form",
    { class: "filters", "aria-label": "Ranking filters" },
    field("Direction", "direction", values.direction, {
      options: [["top", "top (best)"], ["bottom", "bottom (worst)"]],
    }),
    field("Window (days)", "window_days", values.window_days, { type: "number", min: 1, max: 3650 }),
    field("Entity kind", "kind", values.kind, { placeholder: "company, restaurant…" }),
    field("Min. documents", "min_documents", values.min_documents, { type: "number", min: 1 }),
    field("Rows", "limit", values.limit, { type: "number", min: 1, max: 500 }),
    h("button", { type: "submit" }, "Show"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go("rankings", formValues(form));
  });
  const query = pick(values, KEYS);
  const page = await getJson("/v1/rankings", query);
  const since = windowStart(values.window_days);
  const lines = await Promise.all(page.items.map((e) =>
    getJson(`/v1/entities/${encodeURIComponent(e.entity_key)}/scores`, { since, bucket: "day" })
      .then((s) => s.items.map((b) => b.mean))));
  const title = `${values.direction === "bottom" ? "Bottom" : "Top"} entities, last ${values.window_days} days`;
  return h("section", { "aria-labelledby": "view-title" },
    h("h2", { id: "view-title" }, "Rankings"), form,
    page.items.length
      ? table(title, ["Entity", "Kind", "Ticker", "Mean score", "Documents", "Daily mean"],
          page.items.map((e, i) => ({ ...e, line: lines[i] })), (e) => [
            viewLink(formatState("timeline", { entity: e.entity_key }), e.name),
            e.kind, e.ticker ?? "–",
            h("span", { class: scoreTone(e.mean_score) }, formatScore(e.mean_score)),
            String(e.documents), spark(e),
          ], "rows")
      : h("p", {}, "No entity has scored documents in this window."),
    exportButton(`rankings ${values.direction}`, () => getCsv("/v1/rankings", query)));
}

function spark(entity) {
  const path = sparklinePath(entity.line, 120, 28);
  return svg("svg", {
    width: 120, height: 28, viewBox: "0 0 120 28", class: "spark", role: "img",
    "aria-label": `daily mean scores of ${entity.name}: ${entity.line.map(formatScore).join(", ")}`,
  }, svg("path", { d: path, fill: "none", stroke: "#1d4ed8", "stroke-width": 1.5 }));
}
