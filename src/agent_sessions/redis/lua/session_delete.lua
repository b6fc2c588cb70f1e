-- prelude: _clock _change _index _remove
-- session_delete.lua: delete one session, its index entries and history, and emit session.deleted,
-- atomically.
-- The event's version is the session's last version + 1 (a deletion is a change consumers order by).
--
-- Key layout: see session_create.lua.
--
-- Returns {"agent_not_found"} | {"session_not_found"} | {"ok", field, value, ...} (the deleted hash).
--
-- KEYS: agent, session, all_sessions, enabled_index, disabled_index, outbox, history,
--       history_bytes, created_index, updated_index, expiry_index
-- ARGV: agent, session, event_id, actor, request_id, dimension_prefix

local agent_hash, session_hash = KEYS[1], KEYS[2]   -- all KEYS: see _remove.lua
local agent, session, event_id, actor, request_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local index = index_of(ARGV[6], KEYS[9], KEYS[10], KEYS[11])  -- see _index.lua

if redis.call('EXISTS', agent_hash) == 0 then return {'agent_not_found'} end
local reply = redis.call('HGETALL', session_hash)
local now = now_ms()
if #reply == 0 or expired(reply, now) then return {'session_not_found'} end  -- an expired one: the sweep's

remove_session(index, agent, session, reply, 'session.deleted', event_id, now, actor, request_id)

table.insert(reply, 1, 'ok')
return reply
