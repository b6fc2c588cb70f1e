// An agent's sessions: filtered, sorted, counted and paged by the API. The filter lives in the hash
// (#/agents/agt_x?metadata_filter=…), so a filtered list can be reloaded and shared.
import { api, path, query } from "../api.js";
import { Alert, emptyRow, field, h, link, row, select, show, table, time } from "../dom.js";
import { agentHash, navigate, sessionHash } from "../nav.js";
import { pager } from "../widgets.js";

const SORTS = [
  ["key", "Key"],
  ["created_at", "Created, oldest first"],
  ["-created_at", "Created, newest first"],
  ["updated_at", "Updated, oldest first"],
  ["-updated_at", "Updated, newest first"],
];
const ENABLED = [
  ["", "Any"],
  ["true", "Enabled only"],
  ["false", "Disabled only"],
];
const MAX_COUNT_CALLS = 20; // a very large agent is counted in steps; stop at "at least"

export function render({ view, params: [agent], query: hashQuery, signal, title }) {
  title(agent);
  const filters = {
    metadata_filter: hashQuery.get("metadata_filter") ?? "",
    sort: SORTS.some(([value]) => value === hashQuery.get("sort")) ? hashQuery.get("sort") : "key",
    enabled: ["true", "false"].includes(hashQuery.get("enabled")) ? hashQuery.get("enabled") : "",
  };
  const alert = new Alert();
  const about = h("p", { class: "muted" });
  const filterInput = h("input", {
    name: "metadata_filter",
    value: filters.metadata_filter,
    class: "mono wide",
    spellcheck: "false",
    placeholder: "priority = 'urgent' AND tier >= 2",
  });
  const sortSelect = select(SORTS, filters.sort);
  const enabledSelect = select(ENABLED, filters.enabled);
  const form = h(
    "form",
    { class: "filters", onsubmit: apply, "aria-label": "Session filters" },
    field("Filter", filterInput, "on metadata, e.g. priority = 'urgent' AND tier >= 2"),
    field("Sort", sortSelect),
    field("Enabled", enabledSelect),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply")),
  );
  const count = h("p", { class: "count", role: "status" });
  const body = h("tbody");
  const pages = pager("Session pages", load);
  view.append(
    h("p", { class: "crumbs" }, link("#/agents", "Agents"), " / ", h("code", {}, agent)),
    h("h1", { tabindex: -1 }, "Agent ", h("code", {}, agent)),
    about,
    h(
      "p",
      { class: "links" },
      link(`#/events${query({ agent_key: agent })}`, "Live events of this agent"),
      link(`#/rules${query({ agent_key: agent })}`, "Its escalation rules"),
    ),
    alert.el,
    h("h2", {}, "Sessions"),
    form,
    count,
    table(["Session", "Name", "Description", "Enabled", "Version", "Updated", "Expires", "Metadata"], body, "sessions"),
    pages.el,
  );

  function apply(event) {
    event.preventDefault();
    const chosen = {
      metadata_filter: filterInput.value.trim(),
      sort: sortSelect.value === "key" ? "" : sortSelect.value,
      enabled: enabledSelect.value,
    };
    navigate(`${agentHash(agent)}${query(chosen)}`);
  }

  const sessionsUrl = path`/v2/agents/${agent}/sessions`;
  const wanted = { metadata_filter: filters.metadata_filter, enabled: filters.enabled };

  async function load(pageKey) {
    alert.clear();
    try {
      const data = await api(
        "GET",
        sessionsUrl + query({ ...wanted, sort: filters.sort, limit: 25, page_key: pageKey }),
        {
          signal,
        },
      );
      body.replaceChildren(...data.sessions.map(sessionRow));
      if (!data.sessions.length) body.append(emptyRow(8, "No session matches."));
      pages.update(data.metadata.page_key);
    } catch (error) {
      body.replaceChildren(emptyRow(8, "Not loaded."));
      alert.show(error);
    }
  }

  function sessionRow(s) {
    return row(
      link(sessionHash(agent, s.id), s.id, "mono"),
      show(s.name),
      h("span", { class: "clamp" }, show(s.description)),
      show(s.enabled),
      show(s.version),
      time(s.updated_at),
      time(s.expires_at, "never"),
      h("code", { class: "metadata" }, JSON.stringify(s.metadata)),
    );
  }

  async function countSessions() {
    count.textContent = "Counting…";
    let total = 0;
    let pageKey = null;
    for (let calls = 0; calls < MAX_COUNT_CALLS; calls += 1) {
      const data = await api("GET", `${sessionsUrl}/count${query({ ...wanted, page_key: pageKey })}`, { signal });
      total += data.count;
      pageKey = data.page_key;
      if (!pageKey) break;
    }
    const noun = `session${total === 1 ? "" : "s"}`;
    const filtered = filters.metadata_filter || filters.enabled;
    const matching = filtered ? (total === 1 && !pageKey ? " matches" : " match") : "";
    count.textContent = pageKey ? `At least ${total} ${noun}${matching}` : `${total} ${noun}${matching}`;
  }

  api("GET", path`/v2/agents/${agent}`, { signal })
    .then((a) => {
      about.textContent = [a.name, a.description].filter(Boolean).join(" — ") || "No name or description.";
    })
    .catch((error) => alert.show(error));
  load(null);
  countSessions().catch((error) => {
    count.textContent = "";
    alert.show(error);
  });
}
