// An agent's escalation rules, edited as JSON (the API validates them and says what is wrong), and a
// dry run of the saved rules against a change of metadata.
import { api, path, query } from "../api.js";
import { Alert, busy, field, h, link } from "../dom.js";
import { agentHash, navigate } from "../nav.js";
import { agentInput } from "../widgets.js";

const EXAMPLE_OLD = { priority: "high" };
const EXAMPLE_NEW = { priority: "urgent" };

export function render({ view, query: hashQuery, signal, title }) {
  title("Escalation rules");
  const agent = hashQuery.get("agent_key") ?? "";
  const alert = new Alert();
  const agentField = agentInput(agent, signal);
  view.append(
    h("h1", { tabindex: -1 }, "Escalation rules"),
    h(
      "p",
      { class: "muted" },
      "A rule fires when an update changes the metadata at its path: to one of the values it lists (becomes), " +
        "or at all (changes: true). A fired rule emits a session.escalated event.",
    ),
    h(
      "form",
      { class: "filters", onsubmit: choose, "aria-label": "Choose an agent" },
      agentField.el,
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Load rules")),
    ),
    alert.el,
  );
  if (agent) editor(view, agent, signal, alert);

  function choose(event) {
    event.preventDefault();
    navigate(`#/rules${query({ agent_key: agentField.input.value.trim() })}`);
  }
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${what} is not valid JSON: ${error.message}`);
  }
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

function editor(view, agent, signal, alert) {
  const url = path`/v2/agents/${agent}/escalation_rules`;
  const source = h("p", { class: "notice" }, "Loading…");
  const rules = h("textarea", { rows: 16, class: "mono wide", spellcheck: "false" });
  const save = h("button", { type: "submit" }, "Save rules");
  const saved = h("span", { class: "muted", role: "status" });
  const dryAlert = new Alert();
  const oldMetadata = h("textarea", {
    rows: 6,
    class: "mono",
    spellcheck: "false",
    value: JSON.stringify(EXAMPLE_OLD, null, 2),
  });
  const newMetadata = h("textarea", {
    rows: 6,
    class: "mono",
    spellcheck: "false",
    value: JSON.stringify(EXAMPLE_NEW, null, 2),
  });
  const run = h("button", { type: "submit" }, "Dry run");
  const fired = h("p", { class: "outcome", role: "status" });
  view.append(
    h("h2", {}, "Rules of ", link(agentHash(agent), agent, "mono")),
    source,
    h(
      "form",
      { class: "stacked", onsubmit: store, "aria-label": "Rules" },
      field(
        "Rules (JSON)",
        rules,
        'a list, e.g. [{"name": "urgent", "path": "metadata.priority", "becomes": ["urgent"]}]',
      ),
      h("div", { class: "actions" }, save, saved),
    ),
    h("h2", {}, "Dry run"),
    h(
      "p",
      { class: "muted" },
      "Which of the saved rules an update from the old metadata to the new would fire. Nothing is stored.",
    ),
    h(
      "form",
      { class: "stacked", onsubmit: dryRun, "aria-label": "Dry run" },
      dryAlert.el,
      h("div", { class: "pair" }, field("Old metadata (JSON)", oldMetadata), field("New metadata (JSON)", newMetadata)),
      h("div", { class: "actions" }, run),
      fired,
    ),
  );

  function showRules(found) {
    rules.value = JSON.stringify(found.rules, null, 2);
    source.textContent =
      found.source === "agent"
        ? "This agent has its own rules."
        : "This agent has no rules of its own: these are the server's defaults (its settings). " +
          "Saving stores rules for this agent.";
  }

  async function store(event) {
    event.preventDefault();
    alert.clear();
    saved.textContent = "";
    await busy(save, async () => {
      try {
        const list = parseJson(rules.value, "The rules");
        if (!Array.isArray(list)) throw new Error("The rules must be a JSON list: [ {…}, … ].");
        showRules(await api("PUT", url, { body: { rules: list }, signal }));
        saved.textContent = "Saved.";
      } catch (error) {
        alert.show(error);
      }
    });
  }

  async function dryRun(event) {
    event.preventDefault();
    dryAlert.clear();
    fired.textContent = "";
    await busy(run, async () => {
      try {
        const old = parseJson(oldMetadata.value, "The old metadata");
        const now = parseJson(newMetadata.value, "The new metadata");
        if (!isObject(old) || !isObject(now)) throw new Error("Both metadata must be JSON objects: { … }.");
        const answer = await api("POST", `${url}/test`, { body: { old, new: now }, signal });
        fired.replaceChildren(
          ...(answer.fired.length
            ? ["Fired: ", ...answer.fired.map((name) => h("code", { class: "tag" }, name))]
            : ["No rule fired."]),
        );
      } catch (error) {
        dryAlert.show(error);
      }
    });
  }

  api("GET", url, { signal }).then(showRules, (error) => {
    source.textContent = "";
    alert.show(error);
  });
}
