// Pipeline status: every consumer queue's depth and dead-letter count, the store's row counts;
// refreshes itself every few seconds while shown.

import { getJson } from "../api.js";
import { toCsv } from "../csv.js";
import { exportButton, h, table } from "../dom.js";

export const REFRESH_MS = 5000;
const COLUMNS = ["queue", "messages", "dlq"];
const count = (n) => (n === null || n === undefined ? "not declared" : String(n));

export async function render(_params, _go, onCleanup) {
  const body = h("div", { "aria-live": "polite" }, await content());
  const timer = setInterval(async () => {
    try {
      body.replaceChildren(await content());
    } catch (error) {
      body.replaceChildren(h("p", { role: "alert", class: "error" }, error.message));
    }
  }, REFRESH_MS);
  onCleanup(() => clearInterval(timer));
  return h("section", { "aria-labelledby": "view-title" },
    h("h2", { id: "view-title" }, "Pipeline status"),
    h("p", {}, `Refreshes every ${REFRESH_MS / 1000} s.`), body);
}

async function content() {
  const status = await getJson("/v1/status");
  const rows = Object.entries(status.queues).map(([queue, q]) => ({ queue, ...q }));
  const store = Object.entries(status.store);
  return h("div", {},
    h("p", { class: "meta", "data-testid": "refreshed" }, `Updated ${new Date().toISOString().slice(11, 19)} UTC`),
    table("Queues", ["Queue", "Ready messages", "Dead-lettered"], rows,
      (q) => [q.queue, count(q.messages), h("span", { class: q.dlq ? "negative" : "" }, count(q.dlq))], "rows"),
    exportButton("queues", async () => toCsv(COLUMNS, rows)),
    table("Store", ["Table", "Rows"], store, ([name, n]) => [name, String(n)], "store"));
}
