// Pages put their state (filters, the agent followed) in the hash so that it survives a reload and can
// be linked to; the key never goes there. Setting the same hash fires no hashchange, so re-fire it:
// pressing "Apply" again must reload.
export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

export const agentHash = (agent) => `#/agents/${encodeURIComponent(agent)}`;
export const sessionHash = (agent, session) => `${agentHash(agent)}/sessions/${encodeURIComponent(session)}`;
export const endpointHash = (id) => `#/webhooks/${encodeURIComponent(id)}`;
