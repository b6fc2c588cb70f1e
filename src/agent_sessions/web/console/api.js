// The console is a client of the public API like any other: every call goes to this origin with the
// key in the x-api-key header, and every error answer becomes an ApiError the pages show as text.

// sessionStorage, not localStorage or a cookie: the key lives as long as the tab and is sent only
// where the console puts it (a header), never automatically and never in a URL.
const STORAGE = "agent-sessions.console.api-key";

export const EVENT_TYPES = [
  "session.created",
  "session.updated",
  "session.deleted",
  "session.expired",
  "session.escalated",
];

export const apiKey = {
  get: () => sessionStorage.getItem(STORAGE),
  set: (key) => sessionStorage.setItem(STORAGE, key),
  clear: () => sessionStorage.removeItem(STORAGE),
};

export class ApiError extends Error {
  constructor(status, body) {
    const messages =
      Array.isArray(body?.messages) && body.messages.length ? body.messages.map(String) : [`HTTP ${status}`];
    super(messages.join(" "));
    this.name = "ApiError";
    this.status = status;
    this.code = String(body?.code ?? "http_error");
    this.messages = messages;
    this.fieldErrors = body?.field_errors && typeof body.field_errors === "object" ? body.field_errors : {};
    this.requestId = body?.request_id ? String(body.request_id) : null;
  }
}

export const isAbort = (error) => error?.name === "AbortError";

// A tagged template for API paths: what is interpolated is one encoded path segment, so a key can
// never change which resource a path names.
export function path(strings, ...values) {
  return strings.reduce((out, part, i) => out + encodeURIComponent(values[i - 1]) + part);
}

export function query(params = {}) {
  const found = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") found.set(name, String(value));
  }
  const text = found.toString();
  return text ? `?${text}` : "";
}

export async function api(method, url, { body, signal, key = apiKey.get() } = {}) {
  const headers = { accept: "application/json" };
  if (key) headers["x-api-key"] = key;
  const init = { method, headers, signal, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, { code: "network_error", messages: [`The API did not answer (${error.message}).`] });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null; // a proxy's HTML error page: the status says enough
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
