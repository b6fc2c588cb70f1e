-- prelude: _clock _change _index _remove
-- session_expire.lua: the workers' sweep, one session: if it has been idle for its time-to-idle,
-- delete it as session_delete.lua does, with a session.expired event (actor "system"), in one step.
-- Re-checked here, so a session changed since the sweep read the expiry index is kept (and its new
-- expiry time stands), and a session swept twice expires once.
--
-- Key layout: see session_create.lua and _index.lua.
--
-- Returns "expired" | "kept" (not due) | "gone" (no such session, or its agent is being purged:
-- the purge deletes it, with its session.deleted event)
--
-- KEYS: agent, session, all_sessions, enabled_index, disabled_index, outbox, history,
--       history_bytes, created_index, updated_index, expiry_index
-- ARGV: agent, session, event_id, dimension_prefix

local agent_hash, session_hash = KEYS[1], KEYS[2]   -- all KEYS: see _remove.lua
local agent, session, event_id = ARGV[1], ARGV[2], ARGV[3]
local index = index_of(ARGV[4], KEYS[9], KEYS[10], KEYS[11])  -- see _index.lua
local member = agent .. '/' .. session

local fields = redis.call('HGETALL', session_hash)
if #fields == 0 or redis.call('EXISTS', agent_hash) == 0 then
  redis.call('ZREM', index.expiry, member)
  return 'gone'
end
local now = now_ms()
local at = expires_at(field_of(fields, 'updated_at'), field_of(fields, 'tti_minutes'))
if not at then
  redis.call('ZREM', index.expiry, member)
  return 'kept'
end
if tonumber(now) < at then
  redis.call('ZADD', index.expiry, at, member)
  return 'kept'
end

remove_session(index, agent, session, fields, 'session.expired', event_id, now, 'system', '')
return 'expired'
