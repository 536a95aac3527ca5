// Small DOM helpers: elements built with textContent only (no innerHTML), so text from the
// store is never markup, and tables/forms with their labels.

import { csvFilename } from "./csv.js";

/** An element with attributes and children (strings become text nodes). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element (sparklines). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  el.append(...children);
  return el;
}

/** A table with a caption and a header row; `cells(row)` gives one row's cells. */
export function table(caption, headers, rows, cells, testid) {
  return h(
    "table",
    { "data-testid": testid },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, cells(row).map((c) => h("td", {}, c))))),
  );
}

/** A labelled form field; `lang` set where Korean may be typed. */
export function field(label, name, value, attrs = {}) {
  const id = `f-${name}`;
  const input = attrs.options
    ? h("select", { id, name }, attrs.options.map(([v, t]) =>
        h("option", { value: v, selected: v === (value ?? "") }, t)))
    : h("input", { id, name, value: value ?? "", ...attrs });
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

/** Save text as a CSV file in the browser (UTF-8, so Korean survives). */
export function download(label, text) {
  const blob = new Blob([text], { type: "text/csv;charset=utf-8" });
  const link = h("a", { href: URL.createObjectURL(blob), download: csvFilename(label) });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** A button that exports a list as CSV. */
export function exportButton(label, csvText) {
  return h(
    "button",
    { type: "button", class: "export", onclick: async () => download(label, await csvText()) },
    `Export ${label} as CSV`,
  );
}

/** A link to another view of the page. */
export function viewLink(hash, text) {
  return h("a", { href: hash }, text);
}

/** The form's values as a plain object. */
export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}
