import { api, apiKey } from "../api.js";
import { Alert, busy, h } from "../dom.js";

export function render({ view, title, done }) {
  title("Sign in");
  const alert = new Alert();
  const input = h("input", {
    type: "password",
    id: "api-key",
    name: "api-key",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    class: "mono",
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin", onsubmit: signIn },
    h("h1", { tabindex: -1 }, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "The key stays in this browser tab only (session storage) and is sent to this API as the x-api-key header.",
    ),
    alert.el,
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), input),
    h("div", { class: "actions" }, submit),
  );
  view.append(form);
  input.focus();

  async function signIn(event) {
    event.preventDefault();
    alert.clear();
    const key = input.value.trim();
    if (!key) return alert.show("Enter an API key.");
    await busy(submit, async () => {
      try {
        await api("GET", "/v2/agents?limit=1", { key }); // a key that cannot list agents is of no use here
        apiKey.set(key);
        input.value = "";
        done();
      } catch (error) {
        alert.show(error);
      }
    });
  }
}
