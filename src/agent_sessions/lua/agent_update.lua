-- agent_update.lua: change some fields of an agent; a no-op when every value equals the stored one.
--
-- Key layout: see agent_create.lua.
--
-- KEYS[1] agent hash
-- ARGV[1..] field, value pairs among name, description, metadata (canonical JSON), enabled ("1"/"0")
--
-- Returns {"not_found"} | {"noop", field, value, ...} | {"ok", field, value, ...} (the hash after).

if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end

local changed = {}
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    table.insert(changed, ARGV[i])
    table.insert(changed, ARGV[i + 1])
  end
end

local status = 'noop'
if #changed > 0 then
  status = 'ok'
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'updated_at', tostring(t[1] * 1000 + math.floor(t[2] / 1000)),
    unpack(changed))
end

local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, status)
return reply
