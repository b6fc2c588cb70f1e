-- prelude: _outbox
-- session_update.lua: the PATCH. Existence checks, change detection, write, version bump, updated_at
-- from Redis TIME and the session.updated event, all in one atomic step.
--
-- Key layout: see session_create.lua.
--
-- KEYS[1] agent hash      KEYS[2] session hash
-- KEYS[3] enabled index   KEYS[4] disabled index   KEYS[5] outbox
-- ARGV[1] agent key       ARGV[2] session key      ARGV[3] event id    ARGV[4] actor   ARGV[5] request id
-- ARGV[6..] field, value pairs to set; fields are among description, metadata (canonical JSON, so
--           equal metadata is equal bytes) and enabled ("1" or "0").
--
-- A field whose new value equals the stored one is not a change; when nothing changes the session is
-- left alone: no version bump, no updated_at, no event.
--
-- Returns {"agent_not_found"} | {"session_not_found"}
--       | {"noop", field, value, ...} | {"ok", field, value, ...} (the hash after the call).

if redis.call('EXISTS', KEYS[1]) == 0 then return {'agent_not_found'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'session_not_found'} end

local changed, old = {}, {}
for i = 6, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local current = redis.call('HGET', KEYS[2], field)
  if current ~= value then
    changed[#changed + 1] = field
    changed[#changed + 1] = value
    old[#old + 1] = field
    old[#old + 1] = current
  end
end

local status = 'noop'
if #changed > 0 then
  status = 'ok'
  local now = now_ms()
  redis.call('HSET', KEYS[2], 'updated_at', now, unpack(changed))
  local version = redis.call('HINCRBY', KEYS[2], 'version', 1)
  for i = 1, #changed, 2 do
    if changed[i] == 'enabled' then
      if changed[i + 1] == '1' then
        redis.call('ZADD', KEYS[3], 0, ARGV[2])
        redis.call('ZREM', KEYS[4], ARGV[2])
      else
        redis.call('ZADD', KEYS[4], 0, ARGV[2])
        redis.call('ZREM', KEYS[3], ARGV[2])
      end
    end
  end
  local snapshot = redis.call('HGETALL', KEYS[2])
  emit_event(KEYS[5], 'session.updated', ARGV[3], ARGV[1], ARGV[2], version, now, ARGV[4], ARGV[5], snapshot, old)
end

local reply = redis.call('HGETALL', KEYS[2])
table.insert(reply, 1, status)
return reply
