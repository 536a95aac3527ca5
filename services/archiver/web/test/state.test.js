import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_VIEW, formatState, parseState, pick } from "../src/state.js";

test("a state survives the round trip through the hash, Korean included", () => {
  const params = { q: "삼성전자 실적 발표", kind: "news", since: "2026-11-01" };
  const hash = formatState("search", params);
  assert.deepEqual(parseState(hash), { view: "search", params });
});

test("keys are sorted and empty values left out, so equal states make equal links", () => {
  assert.equal(formatState("search", { q: "a b", kind: "", source: null, k: 5 }), "#/search?k=5&q=a+b");
  assert.equal(formatState("status"), "#/status");
});

test("an unknown or missing view falls back to the default", () => {
  assert.equal(parseState("#/nope?x=1").view, DEFAULT_VIEW);
  assert.deepEqual(parseState(""), { view: DEFAULT_VIEW, params: {} });
});

test("an entity key with a colon and an ampersand is kept whole", () => {
  const hash = formatState("entity", { key: "company:at&t" });
  assert.deepEqual(parseState(hash).params, { key: "company:at&t" });
});

test("pick keeps only the named keys that are set", () => {
  assert.deepEqual(pick({ a: "1", b: "", c: "3" }, ["a", "b"]), { a: "1" });
});
