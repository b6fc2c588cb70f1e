-- prelude: _gate _change _idempotency
-- session_update.lua: the PATCH. Idempotency, existence checks, If-Match, change detection, write,
-- version bump, updated_at from Redis TIME, the session.updated event and the history entry, all in
-- one atomic step. Optionally admits the request first (_gate.lua), so that a PATCH by a key the API
-- already knows is one round trip: no token, no write.
--
-- Key layout: see session_create.lua, _change.lua and _idempotency.lua.
--
-- KEYS[1] agent hash      KEYS[2] session hash      KEYS[3] enabled index   KEYS[4] disabled index
-- KEYS[5] outbox          KEYS[6] session history   KEYS[7] idempotency record (unused without one)
-- KEYS[8] key record      KEYS[9] key bucket        KEYS[10] address bucket   (only when admitting)
-- ARGV[1] agent key       ARGV[2] session key       ARGV[3] event id    ARGV[4] actor   ARGV[5] request id
-- ARGV[6] If-Match: "" (none), "*" (any existing version) or versions separated by commas
-- ARGV[7] request fingerprint ("" without an Idempotency-Key)    ARGV[8] idempotency ttl (s)
-- ARGV[9] history cap (newest entries kept per session)
-- ARGV[10..13] "" (the request was admitted already) or admit()'s default rate, default burst,
--            failure rate and failure burst
-- ARGV[14..] field, value pairs to set; fields are among description, metadata (canonical JSON, so
--            equal metadata is equal bytes) and enabled ("1" or "0").
--
-- A field whose new value equals the stored one is not a change; when nothing changes the session is
-- left alone: no version bump, no updated_at, no event, no history.
--
-- Returns {"idempotency_mismatch"} | {"replay", status, field, value, ...}
--       | {"agent_not_found"} | {"session_not_found"} | {"precondition_failed"}
--       | {"noop", field, value, ...} | {"ok", field, value, ...} (the hash after the call).
-- When admitting: {admit()'s reply} if the request is refused, else {admit()'s reply, the reply above}.

local function apply()
  local replay = idem_lookup(KEYS[7], ARGV[7])
  if replay then return replay end
  local function finish(status, fields)
    return idem_store(KEYS[7], ARGV[7], tonumber(ARGV[8]), status, fields)
  end

  -- One read of the whole session, one write. A session never outlives its agent (agent_delete.lua
  -- deletes both in one step), so the agent is looked up only to tell which of the two 404s it is.
  local session = redis.call('HGETALL', KEYS[2])
  if #session == 0 then
    if redis.call('EXISTS', KEYS[1]) == 0 then return finish('agent_not_found') end
    return finish('session_not_found')
  end
  local at = {}  -- field -> index of its value in `session` (session_create.lua sets every field)
  for i = 1, #session, 2 do at[session[i]] = i + 1 end

  if ARGV[6] ~= '' and ARGV[6] ~= '*' then
    local current = session[at['version']]
    local matched = false
    for wanted in string.gmatch(ARGV[6], '[^,]+') do
      if wanted == current then matched = true end
    end
    if not matched then return finish('precondition_failed') end
  end

  local changed, old = {}, {}
  for i = 14, #ARGV, 2 do
    local field, value = ARGV[i], ARGV[i + 1]
    local current = session[at[field]]
    if current ~= value then
      changed[#changed + 1] = field
      changed[#changed + 1] = value
      old[#old + 1] = field
      old[#old + 1] = current
    end
  end

  if #changed == 0 then return finish('noop', session) end

  local now = now_ms()
  local version = tostring(tonumber(session[at['version']]) + 1)
  redis.call('HSET', KEYS[2], 'updated_at', now, 'version', version, unpack(changed))
  -- The session after the write: what was read, with what was written.
  session[at['updated_at']], session[at['version']] = now, version
  for i = 1, #changed, 2 do
    session[at[changed[i]]] = changed[i + 1]
    if changed[i] == 'enabled' then
      if changed[i + 1] == '1' then
        redis.call('ZADD', KEYS[3], 0, ARGV[2])
        redis.call('ZREM', KEYS[4], ARGV[2])
      else
        redis.call('ZADD', KEYS[4], 0, ARGV[2])
        redis.call('ZREM', KEYS[3], ARGV[2])
      end
    end
  end
  emit_event(KEYS[5], 'session.updated', ARGV[3], ARGV[1], ARGV[2], version, now, ARGV[4], ARGV[5], session, old)
  record_history(KEYS[6], tonumber(version), now, ARGV[4], ARGV[5], old, changed, tonumber(ARGV[9]))
  return finish('ok', session)
end

if ARGV[10] == '' then return apply() end
local admitted = admit(KEYS[8], KEYS[9], KEYS[10], ARGV[10], ARGV[11], ARGV[12], ARGV[13])
if admitted[1] ~= 'ok' then return {admitted} end
return {admitted, apply()}
