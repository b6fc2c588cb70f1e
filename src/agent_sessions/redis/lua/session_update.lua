-- prelude: _clock _gate _change _idempotency _index
-- session_update.lua: the PATCH. Idempotency, existence checks, If-Match, change detection, write,
-- version bump, updated_at from Redis TIME, the session.updated event and the history entry, all in
-- one atomic step. Optionally admits the request first (_gate.lua), so that a PATCH by a key the API
-- already knows is one round trip: no token, no write.
--
-- Key layout: see session_create.lua, _change.lua and _idempotency.lua.
--
-- KEYS, ARGV: bound to named locals just below.
--
-- A field whose new value equals the stored one is not a change; when nothing changes the session is
-- left alone: no version bump, no updated_at, no event, no history.
--
-- Returns {"idempotency_mismatch"} | {"replay", status, field, value, ...}
--       | {"agent_not_found"} | {"session_not_found"} | {"precondition_failed", current version}
--       | {"noop", field, value, ...} | {"ok", field, value, ...} (the hash after the call, less the
--         fields sent and `ix`; a replay has them all).
-- When admitting: {admit()'s reply} if the request is refused, else {admit()'s reply, the reply above}.
-- On a Redis Cluster the API never admits here: the key's record is in another slot than the agent's.
--
-- KEYS: agent, session, enabled_index, disabled_index, outbox, history, history_bytes, idem_record,
--       idem_index, updated_index, expiry_index, key_record, key_bucket
-- ARGV: agent, session, event_id, actor, request_id, if_match, idem_fingerprint, idem_ttl,
--       idem_max, idem_snapshots, history_max, history_max_bytes, default_rate, default_burst,
--       dimension_prefix, indexed, changes...

local agent_hash, session_hash, enabled_index, disabled_index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local history, history_bytes = KEYS[6], KEYS[7]
local outbox = KEYS[5]   -- see emit_event in _change.lua
local idem = {
  record = KEYS[8], index = KEYS[9],                     -- unused without an Idempotency-Key
  fingerprint = ARGV[7], ttl = tonumber(ARGV[8]), max = tonumber(ARGV[9]), snapshots = ARGV[10],
}
local index = index_of(ARGV[15], nil, KEYS[10], KEYS[11])  -- see _index.lua
local new_ix = ARGV[16]     -- the indexed values of the metadata sent (see _index.lua); "-": none sent
local key_record, key_bucket = KEYS[12], KEYS[13]  -- only when admitting
local agent, session, event_id, actor, request_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local if_match = ARGV[6]    -- "" (none), "*" (any existing version) or versions separated by commas
local history_cap, history_max_bytes = tonumber(ARGV[11]), tonumber(ARGV[12])
local default_rate, default_burst = ARGV[13], ARGV[14]
-- ARGV[13..14]: "" (the request was admitted already) or admit()'s default rate and burst; a refused
-- key ("unknown", "revoked") is charged to its address by the caller (auth_failure.lua)
local admitting = default_rate ~= ''
local first_change = 17     -- ARGV[17..]: field, value pairs to set; fields are among description,
                            -- metadata (canonical JSON, so equal metadata is equal bytes), enabled ("1"/"0")
                            -- and tti_minutes

-- Admission first (see _gate.lua): a refused request touches nothing else. The steps below are the
-- script's top level, not a function: a closure over all these locals cost about 2.5 µs a call.
local admitted = admitting and admit(key_record, key_bucket, default_rate, default_burst)
if admitted and admitted[1] ~= 'ok' then return {admitted} end
local function answer(reply)
  if admitted then return {admitted, reply} end
  return reply
end

local replay = idem_lookup(idem)
if replay then return answer(replay) end
-- The reply leaves out what the caller sent (it knows those values: changed, or equal to what is
-- stored) and the indexed values: the rest of the session.
local sent = {ix = true}
for i = first_change, #ARGV, 2 do sent[ARGV[i]] = true end
local function finish(status, fields)
  return idem_store(idem, status, fields, nil, sent)
end

-- One read of the whole session, one write. The agent is checked too: an agent being deleted is
-- gone at once, while its sessions are removed in the background (agent_delete.lua).
-- A session past its time-to-idle is gone, even before the workers' sweep removes it.
local session_fields = redis.call('HGETALL', session_hash)
if redis.call('EXISTS', agent_hash) == 0 then return answer(finish('agent_not_found')) end
local now = now_ms()
if #session_fields == 0 then return answer(finish('session_not_found')) end
local at = {}  -- field -> index of its value in `session_fields` (session_create.lua sets every field)
for i = 1, #session_fields, 2 do at[session_fields[i]] = i + 1 end
local expiry = expires_at(session_fields[at['updated_at']], at['tti_minutes'] and session_fields[at['tti_minutes']])
if expiry and tonumber(now) >= expiry then return answer(finish('session_not_found')) end

if if_match ~= '' and if_match ~= '*' then
  local current = session_fields[at['version']]
  local matched = false
  for wanted in string.gmatch(if_match, '[^,]+') do
    if wanted == current then matched = true end
  end
  if not matched then  -- the answer names the current version (the 412's ETag); a replay does not
    local reply = finish('precondition_failed')
    reply[#reply + 1] = current
    return answer(reply)
  end
end

local changed, old = {}, {}
for i = first_change, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local current = session_fields[at[field]]
  if current == nil and field == 'tti_minutes' then current = '0' end  -- sessions older than expiry
  if current ~= value then
    changed[#changed + 1] = field
    changed[#changed + 1] = value
    old[#old + 1] = field
    old[#old + 1] = current
  end
end

if #changed == 0 then return answer(finish('noop', session_fields)) end
local previous_tti = at['tti_minutes'] and session_fields[at['tti_minutes']]

local version = tostring(tonumber(session_fields[at['version']]) + 1)
redis.call('HSET', session_hash, 'updated_at', now, 'version', version, unpack(changed))
-- The session after the write: what was read, with what was written.
session_fields[at['updated_at']], session_fields[at['version']] = now, version
for i = 1, #changed, 2 do
  if at[changed[i]] then
    session_fields[at[changed[i]]] = changed[i + 1]
  else
    session_fields[#session_fields + 1] = changed[i]
    session_fields[#session_fields + 1] = changed[i + 1]
    at[changed[i]] = #session_fields
  end
  if changed[i] == 'enabled' then
    if changed[i + 1] == '1' then
      redis.call('ZADD', enabled_index, 0, session)
      redis.call('ZREM', disabled_index, session)
    else
      redis.call('ZADD', disabled_index, 0, session)
      redis.call('ZREM', enabled_index, session)
    end
  end
end
local old_ix = at['ix'] and session_fields[at['ix']] or ''
if new_ix ~= '-' and new_ix ~= old_ix then
  reindex(index, session, old_ix, new_ix)
  redis.call('HSET', session_hash, 'ix', new_ix)
  if at['ix'] then session_fields[at['ix']] = new_ix end
end
place(index, agent, session, nil, now, session_fields[at['tti_minutes']] or '0', previous_tti)
emit_event(outbox, 'session.updated', event_id, agent, session, version, now, actor, request_id, session_fields, old)
record_history(history, history_bytes, tonumber(version), now, actor, request_id, old, changed, history_cap,
  history_max_bytes)
return answer(finish('ok', session_fields))
