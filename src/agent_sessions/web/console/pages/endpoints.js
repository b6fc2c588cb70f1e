// Webhook endpoints (admin keys): the list, and creating one, whose signing secret is shown once.
import { api, EVENT_TYPES } from "../api.js";
import { Alert, busy, checkboxes, emptyRow, field, h, link, row, secretNotice, show, table, time } from "../dom.js";
import { endpointHash } from "../nav.js";

export function render({ view, signal, title }) {
  title("Webhook endpoints");
  const alert = new Alert();
  const body = h("tbody");
  const created = h("div");
  const createAlert = new Alert();
  const url = h("input", { type: "url", name: "url", required: true, class: "mono wide", placeholder: "https://…" });
  const types = checkboxes("Event types", EVENT_TYPES);
  const agents = h("input", {
    name: "agent_keys",
    class: "mono wide",
    spellcheck: "false",
    placeholder: "agt_a, agt_b",
  });
  const description = h("input", { name: "description", class: "wide" });
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: true });
  const submit = h("button", { type: "submit" }, "Create endpoint");
  view.append(
    h("h1", { tabindex: -1 }, "Webhook endpoints"),
    alert.el,
    table(["Endpoint", "URL", "Event types", "Agents", "Enabled", "Managed by", "Created"], body),
    h("h2", {}, "New endpoint"),
    created,
    h(
      "form",
      { class: "stacked", onsubmit: create, "aria-label": "New endpoint" },
      createAlert.el,
      field("URL", url),
      types.el,
      field("Agent keys (optional)", agents, "separated by commas or spaces; empty: every agent"),
      field("Description (optional)", description),
      h("label", { class: "check" }, enabled, " Enabled"),
      h("div", { class: "actions" }, submit),
    ),
  );

  async function load() {
    try {
      const data = await api("GET", "/v2/webhook_endpoints", { signal });
      body.replaceChildren(
        ...data.webhook_endpoints.map((e) =>
          row(
            link(endpointHash(e.id), e.id, "mono"),
            h("code", { class: "url" }, e.url),
            e.event_types.map((type) => h("code", { class: "tag" }, type)),
            e.agent_keys
              ? e.agent_keys.map((key) => h("code", { class: "tag" }, key))
              : h("span", { class: "muted" }, "all"),
            show(e.enabled),
            show(e.managed_by),
            time(e.created_at),
          ),
        ),
      );
      if (!data.webhook_endpoints.length) body.append(emptyRow(7, "No webhook endpoint yet."));
    } catch (error) {
      alert.show(error);
    }
  }

  async function create(event) {
    event.preventDefault();
    createAlert.clear();
    const chosen = types.values();
    if (!chosen.length) return createAlert.show("Choose at least one event type.");
    const keys = agents.value.split(/[\s,]+/).filter(Boolean);
    const payload = {
      url: url.value.trim(),
      event_types: chosen,
      agent_keys: keys.length ? keys : null,
      enabled: enabled.checked,
    };
    if (description.value.trim()) payload.description = description.value.trim();
    await busy(submit, async () => {
      try {
        const made = await api("POST", "/v2/webhook_endpoints", { body: payload, signal });
        created.replaceChildren(secretNotice(made.id, made.secret));
        event.target.reset();
        load();
      } catch (error) {
        createAlert.show(error);
      }
    });
  }

  load();
}
