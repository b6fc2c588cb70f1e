-- prelude: _clock
-- agent_update.lua: change some fields of an agent; a no-op when every value equals the stored one.
--
-- Key layout: see agent_create.lua.
--
-- Returns {"agent_not_found"} | {"noop", field, value, ...} | {"ok", field, value, ...} (the hash after).
--
-- KEYS: agent
-- ARGV: changes...

local agent_hash = KEYS[1]
local first_change = 1  -- ARGV[1..]: field, value pairs among name, description, metadata (JSON), enabled

if redis.call('EXISTS', agent_hash) == 0 then return {'agent_not_found'} end

local changed = {}
for i = first_change, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', agent_hash, field) ~= value then
    table.insert(changed, field)
    table.insert(changed, value)
  end
end

local status = 'noop'
if #changed > 0 then
  status = 'ok'
  redis.call('HSET', agent_hash, 'updated_at', now_ms(), unpack(changed))
end

local reply = redis.call('HGETALL', agent_hash)
table.insert(reply, 1, status)
return reply
