-- session_update.lua: the PATCH. Existence checks, change detection, write, version bump and
-- updated_at from Redis TIME, all in one atomic step.
--
-- Key layout: see session_create.lua.
--
-- KEYS[1] agent hash      KEYS[2] session hash
-- KEYS[3] enabled index   KEYS[4] disabled index
-- ARGV[1] session key
-- ARGV[2..] field, value pairs to set; fields are among description, metadata (canonical JSON, so
--           equal metadata is equal bytes) and enabled ("1" or "0").
--
-- A field whose new value equals the stored one is not a change; when nothing changes the session is
-- left alone (no version bump, no updated_at).
--
-- Returns {"agent_not_found"} | {"session_not_found"}
--       | {"noop", field, value, ...} | {"ok", field, value, ...} (the hash after the call).

if redis.call('EXISTS', KEYS[1]) == 0 then return {'agent_not_found'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'session_not_found'} end

local changed = {}
for i = 2, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', KEYS[2], field) ~= value then
    table.insert(changed, field)
    table.insert(changed, value)
  end
end

local status = 'noop'
if #changed > 0 then
  status = 'ok'
  local t = redis.call('TIME')
  local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
  redis.call('HSET', KEYS[2], 'updated_at', now, unpack(changed))
  redis.call('HINCRBY', KEYS[2], 'version', 1)
  for i = 1, #changed, 2 do
    if changed[i] == 'enabled' then
      if changed[i + 1] == '1' then
        redis.call('ZADD', KEYS[3], 0, ARGV[1])
        redis.call('ZREM', KEYS[4], ARGV[1])
      else
        redis.call('ZADD', KEYS[4], 0, ARGV[1])
        redis.call('ZREM', KEYS[3], ARGV[1])
      end
    end
  end
end

local reply = redis.call('HGETALL', KEYS[2])
table.insert(reply, 1, status)
return reply
