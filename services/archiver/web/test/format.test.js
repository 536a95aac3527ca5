import assert from "node:assert/strict";
import { test } from "node:test";
import { dayStart, errorMessage, formatScore, formatTime, scoreTone } from "../src/format.js";

test("scores have one decimal and a missing score is a dash, not 0", () => {
  assert.equal(formatScore(72.345), "72.3");
  assert.equal(formatScore(0), "0.0");
  assert.equal(formatScore(null), "–");
  assert.equal(formatScore(Number.NaN), "–");
});

test("times are shown in UTC to the minute", () => {
  assert.equal(formatTime("2026-11-02T09:00:00+09:00"), "2026-11-02 00:00 UTC");
  assert.equal(formatTime(null), "–");
  assert.equal(formatTime("not a time"), "–");
});

test("tones split around the neutral 50", () => {
  assert.deepEqual([80, 50, 20, null].map(scoreTone), ["positive", "neutral", "negative", "neutral"]);
});

test("a 422 names every field at fault", () => {
  const body = { error: { message: "bad", type: "invalid_request", field: "k",
    errors: [{ field: "k", reason: "must be at most 100" }] } };
  assert.equal(errorMessage(422, body), "A parameter is wrong — k: must be at most 100");
});

test("a 401 says what to do and keeps the API's message; a body that is not JSON still reads", () => {
  const body = { error: { message: "unknown API key", type: "unauthorized" } };
  assert.match(errorMessage(401, body), /^The API key is missing or unknown\. .*\(unknown API key\)$/);
  assert.equal(errorMessage(502, null), "The archiver answered 502.");
});

test("a date is the start of its UTC day; a full timestamp is left alone", () => {
  assert.equal(dayStart("2026-11-02"), "2026-11-02T00:00:00Z");
  assert.equal(dayStart("2026-11-02T05:00:00Z"), "2026-11-02T05:00:00Z");
});
