import assert from "node:assert/strict";
import { test } from "node:test";
import { csvFilename, toCsv } from "../src/csv.js";

test("cells with commas, quotes and newlines are quoted, quotes doubled", () => {
  const rows = [{ a: 'say "hi", then', b: "two\nlines" }, { a: 1.5, b: null }];
  assert.equal(toCsv(["a", "b"], rows), 'a,b\r\n"say ""hi"", then","two\nlines"\r\n1.5,\r\n');
});

test("Korean text passes through unchanged and objects become JSON", () => {
  assert.equal(toCsv(["name", "x"], [{ name: "삼성전자", x: { k: 1 } }]), 'name,x\r\n삼성전자,"{""k"":1}"\r\n');
});

test("an empty list is the header line alone", () => {
  assert.equal(toCsv(["a"], []), "a\r\n");
});

test("download names keep letters of any script and drop the rest", () => {
  assert.equal(csvFilename("digests 삼성전자/../x"), "sift-digests-삼성전자-x.csv");
  assert.equal(csvFilename("///"), "sift-export.csv");
});
