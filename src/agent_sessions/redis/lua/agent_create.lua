-- prelude: _clock
-- agent_create.lua: create one agent, atomically.
--
-- Key layout (see agent_sessions/redis/keys.py):
--   as:agents:{t}          zset  the agent keys of the partition (tag {t}), score 0, ordered by member
--   as:agent:{t}:<agent>   hash  name, description, metadata (canonical JSON), enabled ("1"/"0"),
--                            created_at, updated_at (ms since epoch, Redis TIME), default_tti_minutes
--   as:purge:{t}:<agent>   zset  sessions of a deleted agent with this key, still being removed
--
-- Returns {"agent_exists"} | {"agent_purging"} | {"ok", field, value, ...}
--
-- KEYS: agent, agents, purge, ready, purges
-- ARGV: agent, name, description, metadata, enabled, default_tti, ready_fields...

local agent_hash, agents_index, purge_set = KEYS[1], KEYS[2], KEYS[3]
local ready, purges = KEYS[4], KEYS[5]   -- see sessions_find.lua; the purges in progress
local agent, name, description, metadata = ARGV[1], ARGV[2], ARGV[3], ARGV[4]  -- metadata: JSON
local enabled = ARGV[5]                                                      -- "1" or "0"
local default_tti = ARGV[6]       -- minutes (text) a new session idles before it expires; "0": never
local first_ready = 7             -- ARGV[7..]: the fields of as:indexes:{t} for the indexes the API keeps

if redis.call('EXISTS', agent_hash) == 1 then return {'agent_exists'} end
if redis.call('EXISTS', purge_set) == 1 then return {'agent_purging'} end

local now = now_ms()
-- The first agent of an empty partition: no session of it exists that its indexes could lack.
if redis.call('ZCARD', agents_index) == 0 and redis.call('HLEN', purges) == 0 then
  for i = first_ready, #ARGV do redis.call('HSET', ready, ARGV[i], now) end
end
redis.call('HSET', agent_hash, 'name', name, 'description', description, 'metadata', metadata,
  'enabled', enabled, 'created_at', now, 'updated_at', now, 'default_tti_minutes', default_tti)
redis.call('ZADD', agents_index, 0, agent)

local reply = redis.call('HGETALL', agent_hash)
table.insert(reply, 1, 'ok')
return reply
