// The live feed of one agent's events (client tokens are scoped to one agent), newest first.
import { EVENT_TYPES, query } from "../api.js";
import { Alert, button, checkboxes, emptyRow, field, h, table } from "../dom.js";
import { EVENT_HEADINGS, eventRow } from "../events-view.js";
import { STATUS_TEXT, follow } from "../live.js";
import { navigate } from "../nav.js";
import { agentInput } from "../widgets.js";

const MAX_ROWS = 500; // a busy agent must not grow the page without end

export function render({ view, query: hashQuery, signal, onLeave, title }) {
  title("Events");
  const agent = hashQuery.get("agent_key") ?? "";
  const session = hashQuery.get("session_key") ?? "";
  const asked = (hashQuery.get("types") ?? "").split(",").filter((type) => EVENT_TYPES.includes(type));
  const types = asked.length ? asked : EVENT_TYPES;

  const alert = new Alert();
  const agentField = agentInput(agent, signal);
  const typeBoxes = checkboxes("Types", EVENT_TYPES, types);
  const sessionInput = h("input", {
    name: "session_key",
    value: session,
    class: "mono",
    pattern: "ase_[0-9a-zA-Z_\\-]+",
    spellcheck: "false",
    placeholder: "ase_…",
  });
  const stop = button(
    "Stop",
    () => {
      close?.();
      close = null;
      onStatus("stopped");
      stop.disabled = true;
    },
    { disabled: true },
  );
  const form = h(
    "form",
    { class: "filters", onsubmit: start, "aria-label": "Feed" },
    agentField.el,
    field("Session key (optional)", sessionInput),
    typeBoxes.el,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Follow"), stop),
  );
  const status = h("p", { class: "live-status", role: "status" }, agent ? "" : "Choose an agent to follow.");
  const body = h("tbody", {}, emptyRow(EVENT_HEADINGS.length, "No event yet."));
  view.append(
    h("h1", { tabindex: -1 }, "Events"),
    h(
      "p",
      { class: "muted" },
      "Events as they are committed, newest first. The feed starts now: earlier events are not shown.",
    ),
    form,
    alert.el,
    status,
    table(EVENT_HEADINGS, body, "events"),
  );

  function start(event) {
    event.preventDefault();
    const chosen = typeBoxes.values();
    if (!chosen.length) return alert.show("Choose at least one event type.");
    navigate(
      `#/events${query({
        agent_key: agentField.input.value.trim(),
        session_key: sessionInput.value.trim(),
        types: chosen.length === EVENT_TYPES.length ? "" : chosen.join(","),
      })}`,
    );
  }

  function onStatus(state, error) {
    status.textContent = STATUS_TEXT[state];
    status.dataset.state = state;
    if (error && state === "failed") alert.show(error);
  }

  function onEvent(e) {
    if (body.querySelector("tr.empty")) body.replaceChildren();
    body.prepend(eventRow(e));
    while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  }

  let close = null;
  if (agent) {
    const feed = { agent, session: session || undefined, types: asked.length ? asked : undefined };
    close = follow(feed, { onEvent, onStatus });
    stop.disabled = false;
    onLeave(() => close?.());
  }
}
