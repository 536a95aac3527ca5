// An entity's score over time: mean with a min–max band, volume bars, digest annotations.

import uPlot from "uplot";
import { getCsv, getJson } from "../api.js";
import { digestMarks, timelineData } from "../chartdata.js";
import { exportButton, field, formValues, h, table, viewLink } from "../dom.js";
import { formatScore, formatTime } from "../format.js";
import { formatState, pick } from "../state.js";
import { filterFields, filterParams } from "./filters.js";

export async function render(params, go) {
  const form = h(
    "form",
    { class: "filters", "aria-label": "Timeline filters" },
    field("Entity (kind:name)", "entity", params.entity, { required: true, lang: "" }),
    field("Bucket", "bucket", params.bucket || "day", {
      options: [["hour", "hour"], ["day", "day"], ["week", "week"]],
    }),
    filterFields(params),
    h("button", { type: "submit" }, "Show"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go("timeline", formValues(form));
  });
  const view = h("section", { "aria-labelledby": "view-title" },
    h("h2", { id: "view-title" }, "Score timeline"), form);
  if (!params.entity) return view;
  const key = encodeURIComponent(params.entity);
  const query = { ...filterParams(params), ...pick(params, ["bucket"]), limit: 500 };
  const [scores, entity] = await Promise.all([
    getJson(`/v1/entities/${key}/scores`, query),
    getJson(`/v1/entities/${key}`, { history: 100 }),
  ]);
  const data = timelineData(scores.items);
  // Digests are written after their documents: the chart runs on to the latest one.
  const marks = digestMarks(entity.digests, data[0][0] ?? -Infinity);
  view.append(
    h("p", {}, viewLink(formatState("entity", { key: params.entity }), `${entity.name} — digest history`)),
    chart(data, marks, entity.name),
    h("h3", {}, "Digests on this timeline"),
    marks.length
      ? h("ul", { "data-testid": "digest-marks" }, marks.map((m) =>
          h("li", {}, `${formatTime(new Date(m.x * 1000).toISOString())} · score ${formatScore(m.score)} · ${m.summary}`)))
      : h("p", {}, "No digest was written in this range."),
    table("Score per bucket", ["Bucket start", "Documents", "Mean", "Min", "Max"], scores.items,
      (b) => [formatTime(b.bucket_start), String(b.count), formatScore(b.mean),
        formatScore(b.min), formatScore(b.max)], "rows"),
    exportButton(`scores ${params.entity}`, () => getCsv(`/v1/entities/${key}/scores`, query)),
  );
  return view;
}

function chart(data, marks, name) {
  const box = h("figure", {
    class: "chart", "data-testid": "timeline-chart", "data-chart": JSON.stringify(data),
  }, h("figcaption", {}, `${name}: mean score per bucket (line), min–max (band), documents (bars)`));
  if (data[0].length === 0) {
    box.append(h("p", {}, "No scored documents match these filters."));
    return box;
  }
  const opts = {
    width: 760, height: 320,
    scales: { x: { time: true, range: xRange(data[0], marks) }, score: { range: [0, 100] }, n: { range: (u, lo, hi) => [0, hi * 3] } },
    axes: [{}, { scale: "score", label: "score" }, { scale: "n", side: 1, label: "documents", grid: { show: false } }],
    series: [
      {},
      { label: "mean", scale: "score", stroke: "#1d4ed8", width: 2 },
      { label: "min", scale: "score", stroke: "#93a4c8" },
      { label: "max", scale: "score", stroke: "#93a4c8" },
      { label: "documents", scale: "n", stroke: "#6b7280", fill: "rgba(107,114,128,0.35)",
        paths: uPlot.paths.bars({ size: [0.6, 40] }) },
    ],
    bands: [{ series: [3, 2], fill: "rgba(29,78,216,0.12)" }],
    hooks: { draw: [(u) => drawMarks(u, marks)] },
  };
  queueMicrotask(() => new uPlot(opts, data, box));
  return box;
}

function xRange(xs, marks) {
  const lo = xs[0];
  const hi = Math.max(xs.at(-1), ...marks.map((m) => m.x));
  const pad = Math.max((hi - lo) * 0.03, 3600);
  return () => [lo - pad, hi + pad];
}

function drawMarks(u, marks) {
  const { ctx } = u;
  ctx.save();
  ctx.strokeStyle = "#b45309";
  ctx.setLineDash([4, 4]);
  for (const m of marks) {
    const x = Math.round(u.valToPos(m.x, "x", true));
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}
