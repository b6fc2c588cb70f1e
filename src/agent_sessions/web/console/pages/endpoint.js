// One webhook endpoint: its settings and actions (enable, rotate the secret, a test event, recovery
// from the event log, delete) and its deliveries, each with its attempts and a redelivery.
import { api, path } from "../api.js";
import { Alert, busy, button, field, h, link, secretNotice, show, time } from "../dom.js";
import { navigate } from "../nav.js";
import { deliveries } from "./deliveries.js";

export function render({ view, params: [id], signal, title }) {
  title(id);
  const url = path`/v2/webhook_endpoints/${id}`;
  const alert = new Alert();
  const fields = h("dl", { class: "fields" });
  const secret = h("div");
  const toggle = button("Disable", setEnabled);
  const rotate = button("Rotate secret", rotateSecret);
  const test = button("Send test event", sendTest);
  const testResult = h("p", { class: "outcome", role: "status" });
  const since = h("input", { type: "datetime-local", step: 1, value: localNow(-3600_000) });
  const recoverButton = h("button", { type: "submit" }, "Recover");
  const recovered = h("div", { role: "status" });
  const remove = button("Delete endpoint", () => askDelete(true), { class: "danger" });
  const confirmRemove = button("Yes, delete it and its delivery log", deleteEndpoint, {
    class: "danger",
    hidden: true,
  });
  const cancelRemove = button("Cancel", () => askDelete(false), { hidden: true });
  const managed = h(
    "p",
    { class: "notice", hidden: true },
    "This endpoint is managed by the server's settings: change it there.",
  );
  let current = null;

  view.append(
    h("p", { class: "crumbs" }, link("#/webhooks", "Webhook endpoints"), " / ", h("code", {}, id)),
    h("h1", { tabindex: -1 }, "Webhook endpoint ", h("code", {}, id)),
    alert.el,
    managed,
    secret,
    h(
      "div",
      { class: "columns" },
      h("section", { "aria-label": "Settings" }, h("h2", {}, "Settings"), fields),
      h(
        "section",
        { "aria-label": "Actions", class: "actions-panel" },
        h("h2", {}, "Actions"),
        h("div", { class: "actions" }, toggle, rotate, test),
        testResult,
        h(
          "form",
          { class: "inline", onsubmit: recover, "aria-label": "Recover" },
          field("Recover since (your local time)", since, "queues again every subscribed event of the log since then"),
          h("div", { class: "actions" }, recoverButton),
        ),
        recovered,
        h("div", { class: "actions" }, remove, confirmRemove, cancelRemove),
      ),
    ),
  );
  const log = deliveries(id, signal);
  view.append(log.el);

  function showEndpoint(e) {
    current = e;
    const entries = [
      ["URL", h("code", { class: "url" }, e.url)],
      ["Description", show(e.description)],
      ["Event types", e.event_types.map((type) => h("code", { class: "tag" }, type))],
      ["Agents", e.agent_keys ? e.agent_keys.map((key) => h("code", { class: "tag" }, key)) : "all"],
      ["Enabled", show(e.enabled)],
      ["Max retries", e.max_retries ?? "server default"],
      ["Backoff (ms)", backoff(e.min_backoff_ms, e.max_backoff_ms)],
      ["Managed by", show(e.managed_by)],
      ["Created", time(e.created_at)],
      ["Updated", time(e.updated_at)],
    ];
    fields.replaceChildren(...entries.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
    toggle.textContent = e.enabled ? "Disable" : "Enable";
    const bySettings = e.managed_by === "settings";
    managed.hidden = !bySettings;
    for (const control of [toggle, rotate, remove]) control.hidden = bySettings;
  }

  // Every action: its button disabled while it runs, its error in the page's alert.
  const act = (control, action) =>
    busy(control, async () => {
      alert.clear();
      try {
        await action();
      } catch (error) {
        alert.show(error);
      }
    });

  function setEnabled() {
    return act(toggle, async () =>
      showEndpoint(await api("PATCH", url, { body: { enabled: !current.enabled }, signal })),
    );
  }

  function rotateSecret() {
    return act(rotate, async () => {
      const rotated = await api("POST", `${url}/rotate_secret`, { signal });
      secret.replaceChildren(secretNotice(id, rotated.secret, "New signing secret"));
      showEndpoint(rotated);
    });
  }

  function sendTest() {
    testResult.textContent = "Sending…";
    return act(test, async () => {
      try {
        const outcome = await api("POST", `${url}/test`, { signal });
        const ok = outcome.status_code >= 200 && outcome.status_code < 300 && !outcome.error;
        testResult.dataset.ok = String(ok);
        testResult.replaceChildren(
          ok ? "Delivered: " : "Failed: ",
          `HTTP ${show(outcome.status_code)}`,
          outcome.error ? ` — ${outcome.error}` : "",
          ` in ${show(outcome.duration_ms)} ms`,
        );
      } catch (error) {
        testResult.textContent = "";
        throw error;
      }
    });
  }

  function recover(event, pageKey) {
    event?.preventDefault();
    const at = new Date(since.value);
    if (Number.isNaN(at.getTime())) return alert.show("Choose a date and time to recover from.");
    return act(recoverButton, async () => {
      const body = { since: at.toISOString() };
      if (pageKey) body.page_key = pageKey;
      const done = await api("POST", `${url}/recover`, { body, signal });
      recovered.replaceChildren(
        h(
          "p",
          {},
          `Queued ${done.queued}, refused ${done.refused}. Oldest event still in the log: `,
          time(done.oldest_available, "none"),
          ".",
        ),
        done.page_key ? button("Continue recovery", () => recover(null, done.page_key)) : null,
      );
      log.reload();
    });
  }

  function askDelete(asking = true) {
    remove.hidden = asking;
    confirmRemove.hidden = cancelRemove.hidden = !asking;
  }

  function deleteEndpoint() {
    return act(confirmRemove, async () => {
      await api("DELETE", url, { signal });
      navigate("#/webhooks");
    });
  }

  api("GET", url, { signal }).then(showEndpoint, (error) => alert.show(error));
}

// The value a datetime-local input takes: the local wall-clock time, without a zone.
function localNow(offsetMs) {
  const at = new Date(Date.now() + offsetMs);
  at.setMinutes(at.getMinutes() - at.getTimezoneOffset());
  return at.toISOString().slice(0, 19);
}

// "server default" when neither bound is set, else both, each bound the server's when not set.
function backoff(min, max) {
  if (min == null && max == null) return "server default";
  return `${min ?? "server default"} to ${max ?? "server default"}`;
}
