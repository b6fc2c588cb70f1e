// How an event (from the live feed) and a change (from the history) are shown, on every page.
import { h, link, NONE, show, time } from "./dom.js";
import { sessionHash } from "./nav.js";

// JSON, so that "" and null, "1" and 1 differ; absent (a field that did not exist) as a dash.
const value = (v) =>
  v === null || v === undefined ? h("span", { class: "muted" }, NONE) : h("code", {}, JSON.stringify(v));

export function changesList(changes) {
  const entries = Object.entries(changes ?? {});
  if (!entries.length) return h("span", { class: "muted" }, "no field changed");
  return h(
    "ul",
    { class: "changes" },
    entries.map(([name, change]) =>
      h("li", {}, h("code", { class: "field-name" }, name), ": ", value(change?.old), " → ", value(change?.new)),
    ),
  );
}

export function typeBadge(type) {
  return h("span", { class: `badge type-${String(type).replace(/^session\./, "")}` }, type);
}

function escalation(event) {
  if (event.type !== "session.escalated") return null;
  const rules = Array.isArray(event.rules) ? event.rules.join(", ") : event.rule;
  return h("p", { class: "escalation" }, "Rules fired: ", h("code", {}, show(rules)));
}

export function eventRow(event, { withSession = true } = {}) {
  const cells = [
    typeBadge(event.type),
    time(event.occurred_at),
    withSession ? link(sessionHash(event.agent_key, event.session_key), event.session_key, "mono") : null,
    show(event.version),
    h("code", {}, show(event.actor)),
    [escalation(event), changesList(event.changes)],
  ].filter((cell) => cell !== null);
  return h(
    "tr",
    {},
    cells.map((cell) => h("td", {}, cell)),
  );
}

export const EVENT_HEADINGS = ["Type", "Time", "Session", "Version", "Actor", "Changes"];
