-- agent_delete.lua: delete an agent and every one of its sessions, atomically.
--
-- Key layout: see agent_create.lua and session_create.lua. Session hashes are addressed as
-- ARGV[2] .. member (single-node script, like page.lua).
--
-- KEYS[1] agent hash        KEYS[2] agents index
-- KEYS[3] all-sessions      KEYS[4] enabled index      KEYS[5] disabled index
-- ARGV[1] agent key         ARGV[2] session hash prefix, e.g. "as:session:agt_x:"
--
-- Returns {"not_found"} | {"ok", sessions_deleted}

if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end

local sessions = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, member in ipairs(sessions) do
  redis.call('DEL', ARGV[2] .. member)
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'ok', #sessions}
