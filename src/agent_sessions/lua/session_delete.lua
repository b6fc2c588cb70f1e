-- session_delete.lua: delete one session and its index entries, atomically.
--
-- Key layout: see session_create.lua.
--
-- KEYS[1] agent hash      KEYS[2] session hash
-- KEYS[3] all-sessions    KEYS[4] enabled index    KEYS[5] disabled index
-- ARGV[1] session key
--
-- Returns {"agent_not_found"} | {"session_not_found"} | {"ok", field, value, ...} (the deleted hash).

if redis.call('EXISTS', KEYS[1]) == 0 then return {'agent_not_found'} end
local reply = redis.call('HGETALL', KEYS[2])
if #reply == 0 then return {'session_not_found'} end

redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])

table.insert(reply, 1, 'ok')
return reply
