-- prelude: _clock _change _index
-- session_delete.lua: delete one session, its index entries and history, and emit session.deleted,
-- atomically.
-- The event's version is the session's last version + 1 (a deletion is a change consumers order by).
--
-- Key layout: see session_create.lua.
--
-- Returns {"agent_not_found"} | {"session_not_found"} | {"ok", field, value, ...} (the deleted hash).

local agent_hash, session_hash = KEYS[1], KEYS[2]
local all_index, enabled_index, disabled_index = KEYS[3], KEYS[4], KEYS[5]
local history, history_bytes = KEYS[7], KEYS[8]
local streams = {outbox = KEYS[6], log = KEYS[9], ids = KEYS[10]}  -- see emit_event in _change.lua
local agent, session, event_id, actor, request_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local index = index_of(ARGV[6], KEYS[11], KEYS[12], KEYS[13])  -- see _index.lua

if redis.call('EXISTS', agent_hash) == 0 then return {'agent_not_found'} end
local reply = redis.call('HGETALL', session_hash)
local now = now_ms()
if #reply == 0 or expired(reply, now) then return {'session_not_found'} end  -- an expired one: the sweep's

local version = tonumber(field_of(reply, 'version')) + 1
redis.call('DEL', session_hash, history, history_bytes)
redis.call('ZREM', all_index, session)
redis.call('ZREM', enabled_index, session)
redis.call('ZREM', disabled_index, session)
unplace(index, agent, session, field_of(reply, 'ix'))
emit_event(streams, 'session.deleted', event_id, agent, session, version, now, actor, request_id, reply, {})

table.insert(reply, 1, 'ok')
return reply
