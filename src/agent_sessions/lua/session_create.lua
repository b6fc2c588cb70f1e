-- session_create.lua: create one session under an existing agent, atomically.
--
-- Key layout (prefix P, "as:" by default):
--   P..agent:<agent>              hash   the agent; must exist
--   P..session:<agent>:<session>  hash   name, description, metadata (canonical JSON), enabled ("1"/"0"),
--                                        created_at, updated_at (ms since epoch, Redis TIME), version
--   P..sessions:<agent>           zset   every session key of the agent, score 0, ordered by member
--   P..sessions:<agent>:on / :off zset   the enabled / disabled subset (for the list filter)
--
-- KEYS[1] agent hash      KEYS[2] session hash
-- KEYS[3] all-sessions    KEYS[4] enabled index    KEYS[5] disabled index
-- ARGV[1] session key     ARGV[2] name    ARGV[3] description    ARGV[4] metadata JSON
-- ARGV[5] enabled ("1" or "0")
--
-- Returns {"agent_not_found"} | {"exists"} | {"ok", field, value, ...} (the new hash).

if redis.call('EXISTS', KEYS[1]) == 0 then return {'agent_not_found'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists'} end

local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))

redis.call('HSET', KEYS[2], 'name', ARGV[2], 'description', ARGV[3], 'metadata', ARGV[4],
  'enabled', ARGV[5], 'created_at', now, 'updated_at', now, 'version', 1)
redis.call('ZADD', KEYS[3], 0, ARGV[1])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[4], 0, ARGV[1])
else
  redis.call('ZADD', KEYS[5], 0, ARGV[1])
end

local reply = redis.call('HGETALL', KEYS[2])
table.insert(reply, 1, 'ok')
return reply
