-- _change.lua: prelude prepended to every script that changes a session (see agent_sessions/redis/scripts.py).
-- What every change writes besides the session, in the same atomic step: the event in the outbox
-- stream and the entry in the session's history. All or nothing.
--
-- Outbox entry (stream as:outbox:{t}, read by the relay through consumer group "relay"):
--   type, event_id, agent_key, session_key, version, occurred_at (ms, Redis TIME), actor, request_id,
--   o:<field>  the old value of each changed field (session.updated only)
--   s:<field>  the session hash after the change (for session.deleted: its last state)

-- The relay appends the same entry to the event log (events_append.lua) before acknowledging it: the
-- log is one stream for every partition, so a write, which touches one partition's keys, cannot.
local function emit_event(outbox, kind, event_id, agent, session, version, at, actor, request_id, snapshot, old)
  local entry = {'type', kind, 'event_id', event_id, 'agent_key', agent, 'session_key', session,
    'version', tostring(version), 'occurred_at', at, 'actor', actor, 'request_id', request_id}
  for i = 1, #old, 2 do
    entry[#entry + 1] = 'o:' .. old[i]
    entry[#entry + 1] = old[i + 1]
  end
  for i = 1, #snapshot, 2 do
    if snapshot[i] ~= 'ix' then  -- the session's indexed values (_index.lua) are not part of it
      entry[#entry + 1] = 's:' .. snapshot[i]
      entry[#entry + 1] = snapshot[i + 1]
    end
  end
  redis.call('XADD', outbox, '*', unpack(entry))
end

-- History (list as:history:{t}:<agent>:<session>, newest first; one JSON entry per version):
--   {"v": version, "at": ms, "actor": …, "request_id": …, "o": {field: old}, "n": {field: new}}
-- with stored representations (metadata as its JSON text). Bounded twice: at most `cap` newest entries
-- (0: no count limit) and at most `max_bytes` bytes of entries (string as:history:{t}:<agent>:<session>:bytes
-- keeps the total); the oldest entries go first, and the newest is always kept.
-- Versions are dense (1 = created, +1 per change), so the entry of version v sits at index head - v.
local function record_history(key, bytes_key, version, at, actor, request_id, old, new, cap, max_bytes)
  local o, n = {}, {}
  for i = 1, #old, 2 do o[old[i]] = old[i + 1] end
  for i = 1, #new, 2 do n[new[i]] = new[i + 1] end
  local entry = cjson.encode({v = version, at = at, actor = actor, request_id = request_id, o = o, n = n})
  local length = redis.call('LPUSH', key, entry)
  local added = #entry
  if cap > 0 and length > cap then  -- at the count bound (the usual case for a long session): one in,
    added = added - #redis.call('RPOP', key)  -- one out, and the byte total moved once for both
    length = length - 1
  end
  local total = redis.call('INCRBY', bytes_key, added)
  while length > 1 and ((cap > 0 and length > cap) or total > max_bytes) do
    local dropped = redis.call('RPOP', key)
    total = redis.call('DECRBY', bytes_key, #dropped)
    length = length - 1
  end
end
