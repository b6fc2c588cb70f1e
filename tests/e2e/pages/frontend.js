// What a frontend does with a client token: PATCH its session through fetch (reading the exposed
// ETag), and follow the session's events with EventSource (which sends no headers: the token goes in
// the URL, the one place the API takes it there).
const given = new URLSearchParams(location.hash.slice(1));
const api = given.get("api"), token = given.get("token"), agent = given.get("agent"), session = given.get("session");
const url = `${api}/v2/agents/${agent}/sessions/${session}`;
window.received = [];
document.getElementById("session").textContent = session;

window.patch = async (description, ifMatch) => {
  const headers = {"Authorization": `Bearer ${token}`, "Content-Type": "application/json"};
  if (ifMatch) headers["If-Match"] = ifMatch;
  const response = await fetch(url, {method: "PATCH", headers, body: JSON.stringify({description})});
  const etag = response.headers.get("ETag");
  if (etag) document.getElementById("version").textContent = etag;
  return {status: response.status, etag, requestId: response.headers.get("X-Request-ID"), body: await response.json()};
};

const feed = new EventSource(`${api}/v2/events/stream?session_key=${session}&access_token=${encodeURIComponent(token)}`);
feed.onopen = () => { document.getElementById("feed").textContent = "live"; };
feed.addEventListener("session.updated", (message) => {
  const event = JSON.parse(message.data);
  window.received.push({version: event.version, description: event.session.description, id: message.lastEventId});
  const item = document.createElement("li");
  item.textContent = `v${event.version}: ${event.session.description}`;  // text, never HTML
  document.getElementById("events").appendChild(item);
});
