// Live events. EventSource cannot send the x-api-key header, and the key must never be in a URL, so
// each feed first mints a short-lived viewer token scoped to its agent (and session) and puts that in
// the stream's URL instead.
import { api, EVENT_TYPES, query } from "./api.js";

const TTL_SECONDS = 900;
const RETRY_MS = [1000, 2000, 5000, 10000, 30000];

// onStatus(state, detail): "connecting", "live", "reconnecting", or "failed" with the ApiError.
export function follow({ agent, session, types }, { onEvent, onStatus }) {
  let source = null;
  let closed = false;
  let timer = null;
  let failures = 0;
  let lastId = null;

  const retry = () => {
    const delay = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
    failures += 1;
    timer = setTimeout(open, delay);
  };

  async function open() {
    onStatus(failures ? "reconnecting" : "connecting");
    let minted;
    try {
      const body = { agent_key: agent, role: "viewer", ttl_seconds: TTL_SECONDS };
      if (session) body.session_key = session;
      minted = await api("POST", "/v2/client_tokens", { body });
    } catch (error) {
      if (closed) return;
      // 4xx: tokens are off (CLIENT_TOKENS), the key may not see the agent...: retrying cannot help.
      if (error.status >= 400 && error.status < 500 && error.status !== 429) onStatus("failed", error);
      else {
        onStatus("reconnecting", error);
        retry();
      }
      return;
    }
    if (closed) return;
    const params = { agent_key: agent, session_key: session, types: types?.join(","), after: lastId };
    source = new EventSource(`/v2/events/stream${query({ ...params, access_token: minted.token })}`);
    source.onopen = () => {
      failures = 0;
      onStatus("live");
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => {
        lastId = message.lastEventId || lastId;
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          return;
        }
        onEvent(event);
      });
    }
    source.onerror = () => {
      if (closed) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gives up on an answer that is not a stream (the token expired, the server
        // restarting): mint a new token and resume after the last event received.
        source = null;
        onStatus("reconnecting");
        retry();
      } else {
        onStatus("reconnecting"); // the browser retries by itself, with Last-Event-ID
      }
    };
  }

  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    source?.close();
  };
}

export const STATUS_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  failed: "Not running",
  stopped: "Stopped",
};
