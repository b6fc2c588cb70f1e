-- prelude: _change
-- session_delete.lua: delete one session, its index entries and history, and emit session.deleted,
-- atomically.
-- The event's version is the session's last version + 1 (a deletion is a change consumers order by).
--
-- Key layout: see session_create.lua.
--
-- KEYS[1] agent hash      KEYS[2] session hash
-- KEYS[3] all-sessions    KEYS[4] enabled index    KEYS[5] disabled index    KEYS[6] outbox
-- KEYS[7] history    KEYS[8] history byte count (both deleted with the session)
-- ARGV[1] agent key       ARGV[2] session key      ARGV[3] event id    ARGV[4] actor   ARGV[5] request id
--
-- Returns {"agent_not_found"} | {"session_not_found"} | {"ok", field, value, ...} (the deleted hash).

if redis.call('EXISTS', KEYS[1]) == 0 then return {'agent_not_found'} end
local reply = redis.call('HGETALL', KEYS[2])
if #reply == 0 then return {'session_not_found'} end

local version = tonumber(redis.call('HGET', KEYS[2], 'version')) + 1
redis.call('DEL', KEYS[2], KEYS[7], KEYS[8])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
emit_event(KEYS[6], 'session.deleted', ARGV[3], ARGV[1], ARGV[2], version, now_ms(), ARGV[4], ARGV[5], reply, {})

table.insert(reply, 1, 'ok')
return reply
