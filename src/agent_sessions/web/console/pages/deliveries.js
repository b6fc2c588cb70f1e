// An endpoint's deliveries, one row per message, each able to list its attempts and be sent again.
import { api, path, query } from "../api.js";
import { Alert, button, emptyRow, field, h, row, select, show, table, time, uid } from "../dom.js";
import { pager } from "../widgets.js";

const STATUSES = [
  ["", "Any"],
  ["pending", "pending"],
  ["delivered", "delivered"],
  ["failed", "failed"],
  ["dead", "dead"],
];
const COLUMNS = ["Event", "Type", "Status", "Attempts", "Last answer", "Created", "Delivered or next attempt", ""];
const POLL_MS = 500;
const POLL_FOR_MS = 30_000;

export function deliveries(endpointId, signal) {
  const base = path`/v2/webhook_endpoints/${endpointId}/deliveries`;
  const alert = new Alert();
  const status = select(STATUSES, "");
  const body = h("tbody");
  const pages = pager("Delivery pages", load);
  const rows = new Map();
  const el = h(
    "section",
    { "aria-label": "Deliveries" },
    h("h2", {}, "Deliveries"),
    h(
      "form",
      { class: "filters", "aria-label": "Delivery filters", onsubmit: (event) => event.preventDefault() },
      field("Status", status),
      h(
        "div",
        { class: "actions" },
        button("Refresh", () => reload()),
      ),
    ),
    alert.el,
    table(COLUMNS, body, "deliveries"),
    pages.el,
  );
  status.addEventListener("change", () => reload());

  function reload() {
    pages.reset();
    return load(null);
  }

  async function load(pageKey) {
    alert.clear();
    try {
      const data = await api("GET", base + query({ status: status.value, limit: 25, page_key: pageKey }), { signal });
      rows.clear();
      body.replaceChildren();
      for (const delivery of data.deliveries) {
        const item = deliveryRow(delivery);
        rows.set(delivery.event_id, item);
        body.append(item.row, item.detail);
      }
      if (!data.deliveries.length) body.append(emptyRow(COLUMNS.length, "No delivery."));
      pages.update(data.metadata.page_key);
    } catch (error) {
      alert.show(error);
    }
  }

  // After a redelivery, the row's status as it is now, whatever the filter (a dead one that was
  // delivered stays in sight, updated).
  async function refreshRow(eventId) {
    const data = await api("GET", base + query({ limit: 100 }), { signal });
    const found = data.deliveries.find((delivery) => delivery.event_id === eventId);
    if (found) rows.get(eventId)?.fill(found);
  }

  function deliveryRow(delivery) {
    const panelId = uid("attempts");
    const rowAlert = new Alert();
    const attemptsBody = h("tbody");
    const attemptsButton = button("Attempts", toggle, { "aria-expanded": "false", "aria-controls": panelId });
    const redeliverButton = button("Redeliver", redeliver);
    const note = h("span", { class: "muted", role: "status" });
    const actions = h("div", { class: "row-actions" }, attemptsButton, redeliverButton);
    const tr = h("tr");
    const detail = h(
      "tr",
      { class: "detail", hidden: true },
      h(
        "td",
        { colspan: COLUMNS.length },
        h(
          "div",
          { id: panelId, class: "attempts", role: "region", "aria-label": `Attempts of ${delivery.event_id}` },
          h(
            "div",
            { class: "actions" },
            h("strong", {}, "Attempts, oldest first"),
            button("Refresh attempts", () => loadAttempts()),
            note,
          ),
          rowAlert.el,
          table(["At", "Status code", "Error", "Duration (ms)"], attemptsBody, "attempts-table"),
        ),
      ),
    );
    let attempts = null;

    function fill(d) {
      const cells = [
        h("code", {}, d.event_id),
        h("code", {}, d.type),
        h("span", { class: `badge status-${d.status}` }, d.status),
        show(d.attempts),
        [show(d.last_status_code), d.last_error ? h("div", { class: "error-text" }, d.last_error) : null],
        time(d.created_at),
        d.delivered_at ? time(d.delivered_at) : d.next_attempt_at ? ["next: ", time(d.next_attempt_at)] : time(null),
        actions,
      ];
      tr.replaceChildren(...cells.map((cell) => h("td", {}, cell)));
    }

    async function loadAttempts() {
      rowAlert.clear();
      try {
        const data = await api("GET", base + path`/${delivery.event_id}/attempts`, { signal });
        attempts = data.attempts;
        attemptsBody.replaceChildren(
          ...attempts.map((a) => row(time(a.at), show(a.status_code), show(a.error), show(a.duration_ms))),
        );
        if (!attempts.length) attemptsBody.append(emptyRow(4, "No attempt yet."));
      } catch (error) {
        rowAlert.show(error);
        return null;
      }
      return attempts;
    }

    function open(opened) {
      detail.hidden = !opened;
      attemptsButton.setAttribute("aria-expanded", String(opened));
    }

    async function toggle() {
      const opening = detail.hidden;
      open(opening);
      if (opening) await loadAttempts();
    }

    async function redeliver() {
      rowAlert.clear();
      redeliverButton.disabled = true;
      try {
        open(true);
        const before = (attempts ?? (await loadAttempts()) ?? []).length;
        fill(await api("POST", base + path`/${delivery.event_id}/redeliver`, { signal }));
        note.textContent = "Queued again; waiting for the attempt…";
        // The worker sends it within moments: show the attempt when it is logged.
        const until = Date.now() + POLL_FOR_MS;
        while (Date.now() < until && !signal.aborted) {
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
          const found = await loadAttempts();
          if (!found || found.length > before) break; // an error (shown) ends the wait too
        }
        note.textContent = (attempts ?? []).length > before ? "" : "No new attempt yet: refresh later.";
        await refreshRow(delivery.event_id);
      } catch (error) {
        note.textContent = "";
        rowAlert.show(error);
      } finally {
        redeliverButton.disabled = false;
      }
    }

    fill(delivery);
    return { row: tr, detail, fill };
  }

  load(null);
  return { el, reload };
}
