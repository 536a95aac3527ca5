// The page: a key to sign in with, a navigation of views, the view the URL hash names.

import "uplot/dist/uPlot.min.css";
import "./app.css";
import { forgetKey, getJson, storeKey, storedKey } from "./api.js";
import { h } from "./dom.js";
import { formatState, parseState } from "./state.js";
import * as documentView from "./views/document.js";
import * as entityView from "./views/entity.js";
import * as rankings from "./views/rankings.js";
import * as search from "./views/search.js";
import * as status from "./views/status.js";
import * as timeline from "./views/timeline.js";

const VIEWS = { rankings, timeline, search, document: documentView, entity: entityView, status };
const LABELS = { rankings: "Rankings", timeline: "Timeline", search: "Search",
  document: "Document", entity: "Entity", status: "Status" };
const main = document.getElementById("main");
let cleanups = [];
let shown = 0; // the latest route() call: a slower, older view must not replace a newer one

const go = (view, params) => { location.hash = formatState(view, params); };

// The links are built once and kept, so a keyboard user's focus stays on the one followed.
function nav(current) {
  const box = document.getElementById("nav");
  if (!box.children.length) {
    box.append(...Object.keys(VIEWS).map((name) =>
      h("a", { href: formatState(name), "data-view": name }, LABELS[name])));
  }
  for (const link of box.children) {
    if (link.dataset.view === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// A view replaced the element that had focus (a submitted form): focus moves to the content.
function keepFocus() {
  if (!document.activeElement || document.activeElement === document.body) main.focus();
}

async function route() {
  cleanups.forEach((stop) => stop());
  cleanups = [];
  const turn = ++shown;
  if (!storedKey()) return login();
  const { view, params } = parseState(location.hash);
  nav(view);
  document.getElementById("signout").hidden = false;
  main.replaceChildren(h("p", { role: "status" }, "Loading…"));
  main.setAttribute("aria-busy", "true");
  try {
    const stale = () => turn !== shown;
    const element = await VIEWS[view].render(params, go, (stop) => (stale() ? stop() : cleanups.push(stop)));
    if (stale()) return;
    main.replaceChildren(element);
    keepFocus();
  } catch (error) {
    if (turn !== shown) return;
    if (error.status === 401) forgetKey();
    if (error.status === 401) return login(error.message);
    main.replaceChildren(h("p", { role: "alert", class: "error", "data-testid": "error" }, error.message));
  } finally {
    main.removeAttribute("aria-busy");
  }
}

function login(message) {
  document.getElementById("nav").replaceChildren();
  document.getElementById("signout").hidden = true;
  const input = h("input", { id: "key", name: "key", type: "password", required: true,
    autocomplete: "current-password" });
  const error = h("p", { role: "alert", class: "error", "data-testid": "login-error" }, message ?? "");
  const form = h("form", { class: "login", "aria-labelledby": "login-title" },
    h("h2", { id: "login-title" }, "Sign in"),
    h("p", {}, "An analyst API key (scope query). It is kept in this tab only."),
    h("div", { class: "field" }, h("label", { for: "key" }, "API key"), input),
    h("button", { type: "submit" }, "Sign in"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await getJson("/v1/status", {}, input.value);
      storeKey(input.value);
      route();
    } catch (failure) {
      error.textContent = failure.message;
      input.focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}

document.getElementById("signout").addEventListener("click", () => {
  forgetKey();
  route();
});
window.addEventListener("hashchange", route);
route();
