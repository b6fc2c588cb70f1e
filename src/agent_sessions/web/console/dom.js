// Building the page from API data. Nothing here parses HTML: strings become text nodes, so whatever a
// client stored (a session's metadata, a webhook's last error) is shown, never run.
import { ApiError, isAbort } from "./api.js";

let counter = 0;
export const uid = (prefix = "id") => `${prefix}-${++counter}`;

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

// Children first, then properties: a <select>'s value can only be set once its options exist.
export function h(tag, props = {}, ...children) {
  const el = append(document.createElement(tag), children);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    // defaultChecked too: a form's reset then keeps the box as it was made.
    else if (name === "checked") el.defaultChecked = el.checked = value;
    else if (name === "value" || name === "hidden" || name === "disabled") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  return el;
}

export const NONE = "—";

export function show(value) {
  if (value === null || value === undefined || value === "") return NONE;
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// UTC as the API gives it, to the second: operators compare these times with logs, which are UTC.
export function time(iso, none = NONE) {
  if (!iso) return h("span", { class: "muted" }, none);
  const text = String(iso)
    .replace("T", " ")
    .replace(/(\.\d+)?Z$/, "Z");
  return h("time", { datetime: iso, title: iso }, text);
}

export const link = (href, text, cls) => h("a", { href, class: cls }, text);
export const button = (text, onclick, props = {}) => h("button", { type: "button", onclick, ...props }, text);
export const row = (...cells) =>
  h(
    "tr",
    {},
    cells.map((cell) => h("td", {}, cell)),
  );

export function table(headings, body, cls = "") {
  const head = h(
    "thead",
    {},
    h(
      "tr",
      {},
      headings.map((name) => h("th", { scope: "col" }, name)),
    ),
  );
  return h("div", { class: "table-wrap" }, h("table", { class: cls }, head, body));
}

export function emptyRow(columns, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: columns }, text));
}

export function field(label, control, hint) {
  control.id ||= uid("field");
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function checkboxes(legend, values, checked = []) {
  const boxes = values.map((value) =>
    h("input", { type: "checkbox", name: legend, value, checked: checked.includes(value) }),
  );
  const el = h(
    "fieldset",
    { class: "checks" },
    h("legend", {}, legend),
    boxes.map((box) => h("label", { class: "check" }, box, " ", h("code", {}, box.value))),
  );
  return { el, values: () => boxes.filter((box) => box.checked).map((box) => box.value) };
}

export function select(options, value) {
  return h(
    "select",
    { value },
    options.map(([optionValue, text]) => h("option", { value: optionValue }, text)),
  );
}

// The button stays disabled while its action runs: a second click would send the request twice.
export async function busy(control, action) {
  control.disabled = true;
  try {
    return await action();
  } finally {
    control.disabled = false;
  }
}

export class Alert {
  constructor(el = h("div", { class: "alert", role: "alert" })) {
    this.el = el;
    this.el.hidden = true;
  }

  show(error) {
    if (isAbort(error)) return;
    const parts = [];
    if (error instanceof ApiError) {
      parts.push(h("p", {}, h("strong", {}, error.code), error.status ? ` (HTTP ${error.status})` : "", ": "));
      parts[0].append(error.messages.join(" "));
      const fields = Object.entries(error.fieldErrors);
      if (fields.length) {
        parts.push(
          h(
            "ul",
            {},
            fields.map(([name, message]) => h("li", {}, h("code", {}, name), ": ", String(message))),
          ),
        );
      }
      if (error.requestId) parts.push(h("p", { class: "request-id" }, "Request id: ", h("code", {}, error.requestId)));
    } else {
      parts.push(h("p", {}, error instanceof Error ? error.message : String(error)));
    }
    this.el.replaceChildren(...parts);
    this.el.hidden = false;
  }

  clear() {
    this.el.hidden = true;
    this.el.replaceChildren();
  }
}

// Shown once: the API never returns a signing secret again.
export function secretNotice(endpointId, secret, what = "Signing secret") {
  return h(
    "div",
    { class: "secret", role: "status" },
    h("p", {}, h("strong", {}, what), " for ", h("code", {}, endpointId), ":"),
    h("p", {}, h("code", { class: "secret-value" }, secret)),
    h("p", {}, "It will not be shown again: store it now, where the receiver can read it."),
  );
}
