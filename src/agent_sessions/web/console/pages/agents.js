import { api, query } from "../api.js";
import { Alert, emptyRow, h, link, row, show, table, time } from "../dom.js";
import { agentHash } from "../nav.js";
import { pager } from "../widgets.js";

export function render({ view, signal, title }) {
  title("Agents");
  const alert = new Alert();
  const total = h("p", { class: "muted" });
  const body = h("tbody");
  const pages = pager("Agent pages", load);
  view.append(
    h("h1", { tabindex: -1 }, "Agents"),
    alert.el,
    total,
    table(["Agent", "Name", "Description", "Enabled", "Default TTI (min)", "Created"], body),
    pages.el,
  );

  async function load(pageKey) {
    alert.clear();
    try {
      const data = await api("GET", `/v2/agents${query({ limit: 50, page_key: pageKey })}`, { signal });
      body.replaceChildren(
        ...data.agents.map((agent) =>
          row(
            link(agentHash(agent.key), agent.key, "mono"),
            show(agent.name),
            h("span", { class: "clamp" }, show(agent.description)),
            show(agent.enabled),
            show(agent.default_tti_minutes),
            time(agent.created_at),
          ),
        ),
      );
      if (!data.agents.length) body.append(emptyRow(6, "No agents yet."));
      const count = data.metadata.total_count;
      total.textContent = `${count} agent${count === 1 ? "" : "s"}`;
      pages.update(data.metadata.page_key);
    } catch (error) {
      alert.show(error);
    }
  }
  load(null);
}
