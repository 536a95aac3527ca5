// Shaping API answers into chart data. Pure: unit-tested under node.

const seconds = (iso) => Math.floor(new Date(iso).getTime() / 1000);

/** Score buckets (as /v1/entities/{key}/scores answers them) as uPlot's columns:
 * [x (unix s), mean, min, max, count], sorted by time. */
export function timelineData(buckets) {
  const sorted = [...buckets].sort((a, b) => seconds(a.bucket_start) - seconds(b.bucket_start));
  return [
    sorted.map((b) => seconds(b.bucket_start)),
    sorted.map((b) => b.mean),
    sorted.map((b) => b.min),
    sorted.map((b) => b.max),
    sorted.map((b) => b.count),
  ];
}

/** Digests as annotations: the time each was written (unix s), its score and summary,
 * oldest first; only those inside [from, to] when a range is given. */
export function digestMarks(digests, from = -Infinity, to = Infinity) {
  return digests
    .map((d) => ({ x: seconds(d.created_at), at: d.created_at, score: d.score, summary: d.summary }))
    .filter((m) => m.x >= from && m.x <= to)
    .sort((a, b) => new Date(a.at) - new Date(b.at));
}

/** An SVG path drawing `values` (0-100 scores) left to right in a width × height box;
 * null values are skipped, and one value is a flat line. */
export function sparklinePath(values, width, height) {
  const points = values
    .map((v, i) => [i, v])
    .filter(([, v]) => typeof v === "number" && Number.isFinite(v));
  if (points.length === 0) return "";
  const span = Math.max(values.length - 1, 1);
  const xy = points.map(([i, v]) => [
    points.length === 1 ? 0 : (i / span) * width,
    height - (Math.min(Math.max(v, 0), 100) / 100) * height,
  ]);
  if (xy.length === 1) xy.push([width, xy[0][1]]);
  return xy.map(([x, y], k) => `${k ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
}

/** The start of a window of `days` days ending at `now`, as ISO (the rankings' window). */
export function windowStart(days, now = new Date()) {
  return new Date(now.getTime() - Number(days) * 86400_000).toISOString();
}
