-- agent_create.lua: create one agent, atomically.
--
-- Key layout (prefix "as:" by default):
--   as:agents          zset  every agent key, score 0, ordered by member
--   as:agent:<agent>   hash  name, description, metadata (canonical JSON), enabled ("1"/"0"),
--                            created_at, updated_at (ms since epoch, Redis TIME)
--
--   as:purge:<agent>   zset  sessions of a deleted agent with this key, still being removed
--
-- KEYS[1] agent hash    KEYS[2] agents index    KEYS[3] purge set of an earlier agent with this key
-- ARGV[1] agent key     ARGV[2] name    ARGV[3] description    ARGV[4] metadata JSON
-- ARGV[5] enabled ("1" or "0")
--
-- Returns {"exists"} | {"purging"} | {"ok", field, value, ...}

if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'purging'} end

local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))

redis.call('HSET', KEYS[1], 'name', ARGV[2], 'description', ARGV[3], 'metadata', ARGV[4],
  'enabled', ARGV[5], 'created_at', now, 'updated_at', now)
redis.call('ZADD', KEYS[2], 0, ARGV[1])

local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'ok')
return reply
