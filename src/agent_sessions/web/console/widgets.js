import { api, query } from "./api.js";
import { button, field, h, uid } from "./dom.js";

const AGENT_PATTERN = "agt_[0-9a-zA-Z_\\-]+";

// A text input (any agent can be typed) suggesting the first agents; failing to list them only loses
// the suggestions.
export function agentInput(value, signal) {
  const listId = uid("agents");
  const input = h("input", {
    name: "agent_key",
    value,
    required: true,
    pattern: AGENT_PATTERN,
    list: listId,
    class: "mono",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "agt_…",
  });
  const options = h("datalist", { id: listId });
  api("GET", `/v2/agents${query({ limit: 100 })}`, { signal })
    .then((data) =>
      options.replaceChildren(...data.agents.map((agent) => h("option", { value: agent.key }, agent.name))),
    )
    .catch(() => {});
  return { el: h("div", {}, field("Agent", input), options), input };
}

// Pages of a list the API pages with page_key: the keys of the pages seen are kept to go back.
export function pager(label, onPage) {
  const keys = [null];
  let index = 0;
  let next = null;
  const go = (to) => {
    if (to > index) keys[to] = next;
    index = to;
    onPage(keys[index]);
  };
  const previous = button("Previous page", () => go(index - 1));
  const following = button("Next page", () => go(index + 1));
  const where = h("span", { class: "muted" });
  const el = h("nav", { class: "pager", "aria-label": label, hidden: true }, previous, where, following);
  return {
    el,
    current: () => keys[index],
    reset() {
      keys.length = 1;
      index = 0;
    },
    update(pageKey) {
      next = pageKey ?? null;
      previous.disabled = index === 0;
      following.disabled = !next;
      where.textContent = `Page ${index + 1}`;
      el.hidden = index === 0 && !next;
    },
  };
}
