import assert from "node:assert/strict";
import { test } from "node:test";
import { digestMarks, sparklinePath, timelineData, windowStart } from "../src/chartdata.js";

const bucket = (day, mean, min, max, count) =>
  ({ bucket_start: `2026-11-0${day}T00:00:00Z`, mean, min, max, count });

test("buckets become time-sorted columns: x, mean, min, max, count", () => {
  const data = timelineData([bucket(3, 60, 50, 70, 2), bucket(2, 40, 30, 45, 5)]);
  assert.deepEqual(data, [
    [Date.UTC(2026, 10, 2) / 1000, Date.UTC(2026, 10, 3) / 1000],
    [40, 60], [30, 50], [45, 70], [5, 2],
  ]);
});

test("digest marks are the digests inside the range, oldest first", () => {
  const digests = [
    { created_at: "2026-11-05T00:00:00Z", score: 70, summary: "later" },
    { created_at: "2026-11-02T12:00:00Z", score: 40, summary: "first" },
    { created_at: "2026-12-30T00:00:00Z", score: 10, summary: "outside" },
  ];
  const from = Date.UTC(2026, 10, 1) / 1000;
  const to = Date.UTC(2026, 10, 30) / 1000;
  assert.deepEqual(digestMarks(digests, from, to).map((m) => m.summary), ["first", "later"]);
  assert.equal(digestMarks(digests).length, 3);
});

test("digests written within the same second keep their order to the millisecond", () => {
  const digests = [
    { created_at: "2026-11-05T00:00:00.900Z", score: 2, summary: "second" },
    { created_at: "2026-11-05T00:00:00.100Z", score: 1, summary: "first" },
  ];
  assert.deepEqual(digestMarks(digests).map((m) => m.summary), ["first", "second"]);
});

test("a sparkline spans the box, 100 at the top, 0 at the bottom, skipping nulls", () => {
  assert.equal(sparklinePath([0, 100], 100, 20), "M0.0,20.0L100.0,0.0");
  assert.equal(sparklinePath([50, null, 50], 100, 20), "M0.0,10.0L100.0,10.0");
  assert.equal(sparklinePath([75], 100, 20), "M0.0,5.0L100.0,5.0");
  assert.equal(sparklinePath([], 100, 20), "");
});

test("the rankings window starts that many days before now", () => {
  assert.equal(windowStart(2, new Date("2026-11-10T00:00:00Z")), "2026-11-08T00:00:00.000Z");
});
