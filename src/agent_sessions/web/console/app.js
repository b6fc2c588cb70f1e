// The router: one page per hash route, rendered into #view. Leaving a page aborts its requests and
// closes its live feeds, so nothing of a page outlives it.
import { apiKey, isAbort } from "./api.js";
import { Alert, h } from "./dom.js";
import * as agent from "./pages/agent.js";
import * as agents from "./pages/agents.js";
import * as endpoint from "./pages/endpoint.js";
import * as endpoints from "./pages/endpoints.js";
import * as events from "./pages/events.js";
import * as rules from "./pages/rules.js";
import * as session from "./pages/session.js";
import * as signin from "./pages/signin.js";

const ROUTES = [
  [/^\/agents$/, agents, "agents"],
  [/^\/agents\/([^/]+)$/, agent, "agents"],
  [/^\/agents\/([^/]+)\/sessions\/([^/]+)$/, session, "agents"],
  [/^\/events$/, events, "events"],
  [/^\/webhooks$/, endpoints, "webhooks"],
  [/^\/webhooks\/([^/]+)$/, endpoint, "webhooks"],
  [/^\/rules$/, rules, "rules"],
];

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const signOut = document.getElementById("sign-out");
const alert = new Alert(document.getElementById("alert"));
let leave = () => {};

function parseHash() {
  const hash = location.hash.replace(/^#/, "");
  const at = hash.indexOf("?");
  const pathPart = at < 0 ? hash : hash.slice(0, at);
  return { pathPart, query: new URLSearchParams(at < 0 ? "" : hash.slice(at + 1)) };
}

function match(pathPart) {
  for (const [pattern, page, section] of ROUTES) {
    const found = pattern.exec(pathPart);
    if (found) {
      try {
        return { page, section, params: found.slice(1).map(decodeURIComponent) };
      } catch {
        return null; // a malformed %-escape: no such page
      }
    }
  }
  return null;
}

function route({ focus = false } = {}) {
  leave();
  alert.clear();
  const controller = new AbortController();
  const cleanups = [];
  leave = () => {
    controller.abort();
    for (const cleanup of cleanups.splice(0)) cleanup();
  };
  const ctx = {
    view,
    signal: controller.signal,
    // A feed started after its page was left (its request answered late) is closed at once.
    onLeave: (cleanup) => (controller.signal.aborted ? cleanup() : cleanups.push(cleanup)),
    title: (text) => {
      document.title = `${text} · agent-sessions console`;
    },
  };
  view.replaceChildren();
  const signedIn = Boolean(apiKey.get());
  nav.hidden = !signedIn;
  signOut.hidden = !signedIn;
  if (!signedIn) {
    signin.render({ ...ctx, done: () => route({ focus: true }) });
    return;
  }
  const { pathPart, query } = parseHash();
  if (pathPart === "" || pathPart === "/") {
    location.replace("#/agents");
    return;
  }
  const found = match(pathPart);
  for (const a of nav.querySelectorAll("a")) {
    if (found && a.dataset.section === found.section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!found) {
    ctx.title("Not found");
    view.append(h("h1", { tabindex: -1 }, "Not found"), h("p", {}, "The console has no such page."));
    return;
  }
  const failed = (error) => {
    if (!isAbort(error)) alert.show(error);
  };
  try {
    Promise.resolve(found.page.render({ ...ctx, params: found.params, query })).catch(failed);
  } catch (error) {
    failed(error);
  }
  // Moving focus to the new heading tells a screen reader the page changed.
  if (focus) view.querySelector("h1")?.focus();
}

signOut.addEventListener("click", () => {
  apiKey.clear();
  route({ focus: true });
});
window.addEventListener("hashchange", () => route({ focus: true }));
route();
