// One session: its fields, metadata and history, kept current by a live feed of its events (a change
// made by any client appears here without a reload).
import { api, path, query } from "../api.js";
import { Alert, emptyRow, h, link, row, show, table, time } from "../dom.js";
import { changesList, EVENT_HEADINGS, eventRow } from "../events-view.js";
import { STATUS_TEXT, follow } from "../live.js";
import { agentHash } from "../nav.js";
import { pager } from "../widgets.js";

const MAX_LIVE_ROWS = 200;

export function render({ view, params: [agent, key], signal, onLeave, title }) {
  title(key);
  const alert = new Alert();
  const gone = h("p", { class: "notice", hidden: true });
  const fields = h("dl", { class: "fields" });
  const metadata = h("pre", { class: "json" });
  const liveStatus = h("p", { class: "live-status", role: "status" }, "Not connected");
  const liveAlert = new Alert();
  const liveBody = h("tbody", {}, emptyRow(5, "Waiting for events…"));
  const historyBody = h("tbody");
  const historyPages = pager("History pages", loadHistory);
  view.append(
    h(
      "p",
      { class: "crumbs" },
      link("#/agents", "Agents"),
      " / ",
      link(agentHash(agent), agent, "mono"),
      " / ",
      h("code", {}, key),
    ),
    h("h1", { tabindex: -1 }, "Session ", h("code", {}, key)),
    alert.el,
    gone,
    h(
      "div",
      { class: "columns" },
      h("section", { "aria-label": "Fields" }, h("h2", {}, "Fields"), fields, h("h3", {}, "Metadata"), metadata),
      h(
        "section",
        { "aria-label": "Live events" },
        h("h2", {}, "Live events"),
        liveStatus,
        liveAlert.el,
        table(
          EVENT_HEADINGS.filter((name) => name !== "Session"),
          liveBody,
          "events",
        ),
      ),
    ),
    h("h2", {}, "History"),
    table(["Version", "At", "Actor", "Request id", "Changes"], historyBody, "history"),
    historyPages.el,
  );

  const url = path`/v2/agents/${agent}/sessions/${key}`;
  let shown = null;

  function showSession(s) {
    // Events may overtake a GET that was sent earlier: never go back to an older version.
    if (shown && s.version < shown.version) return;
    shown = s;
    const entries = [
      ["Key", h("code", {}, s.id)],
      ["Agent", h("code", {}, s.agent_key)],
      ["Name", show(s.name)],
      ["Description", show(s.description)],
      ["Enabled", show(s.enabled)],
      ["Version", show(s.version)],
      ["Created", time(s.created_at)],
      ["Updated", time(s.updated_at)],
      ["Expires", time(s.expires_at, "never")],
      ["Inactivity TTL", `${show(s.tti_minutes)} min`],
    ];
    fields.replaceChildren(...entries.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
    metadata.textContent = JSON.stringify(s.metadata, null, 2);
  }

  async function loadSession() {
    showSession(await api("GET", url, { signal }));
  }

  async function loadHistory(pageKey) {
    try {
      const data = await api("GET", `${url}/history${query({ limit: 20, page_key: pageKey })}`, { signal });
      historyBody.replaceChildren(
        ...data.history.map((entry) =>
          row(
            show(entry.version),
            time(entry.at),
            h("code", {}, show(entry.actor)),
            h("code", {}, show(entry.request_id)),
            changesList(entry.changes),
          ),
        ),
      );
      if (!data.history.length) historyBody.append(emptyRow(5, "No history."));
      historyPages.update(data.metadata.page_key);
    } catch (error) {
      alert.show(error);
    }
  }

  // The newest page of the history is the one that grows; an older page stays as it is.
  const refreshHistory = () => {
    if (historyPages.current() === null) loadHistory(null);
  };

  function onEvent(event) {
    if (liveBody.querySelector("tr.empty")) liveBody.replaceChildren();
    liveBody.prepend(eventRow(event, { withSession: false }));
    while (liveBody.rows.length > MAX_LIVE_ROWS) liveBody.lastElementChild.remove();
    if (event.type === "session.deleted" || event.type === "session.expired") {
      gone.textContent = event.type === "session.deleted" ? "This session was deleted." : "This session expired.";
      gone.hidden = false;
      return;
    }
    if (event.type === "session.created") {
      gone.hidden = true;
      shown = null; // a new session under the same key starts again at version 1
    }
    if (event.session) showSession(event.session);
    refreshHistory();
  }

  function onStatus(state, error) {
    liveStatus.textContent = STATUS_TEXT[state];
    liveStatus.dataset.state = state;
    if (error && state === "failed") liveAlert.show(error);
    else liveAlert.clear();
    // Whatever happened while the feed was not connected is read again.
    if (state === "live") loadSession().catch((e) => alert.show(e));
  }

  loadSession()
    .then(() => {
      refreshHistory();
      onLeave(follow({ agent, session: key }, { onEvent, onStatus }));
    })
    .catch((error) => alert.show(error));
}
