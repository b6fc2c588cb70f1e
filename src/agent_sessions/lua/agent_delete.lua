-- prelude: _change
-- agent_delete.lua: delete an agent and every one of its sessions, atomically, emitting one
-- session.deleted event per session (event ids ARGV[3] .. "_" .. n), so consumers see every deletion.
--
-- Key layout: see agent_create.lua and session_create.lua. Session hashes are addressed as
-- ARGV[2] .. member (single-node script, like page.lua).
--
-- KEYS[1] agent hash        KEYS[2] agents index
-- KEYS[3] all-sessions      KEYS[4] enabled index      KEYS[5] disabled index      KEYS[6] outbox
-- ARGV[1] agent key         ARGV[2] session hash prefix, e.g. "as:session:agt_x:"
-- ARGV[3] event id prefix   ARGV[4] actor              ARGV[5] request id
-- ARGV[6] history key prefix, e.g. "as:history:agt_x:"
--
-- Returns {"not_found"} | {"ok", sessions_deleted}

if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end

local now = now_ms()
local sessions = redis.call('ZRANGE', KEYS[3], 0, -1)
for n, member in ipairs(sessions) do
  local key = ARGV[2] .. member
  local snapshot = redis.call('HGETALL', key)
  if #snapshot > 0 then
    local version = tonumber(redis.call('HGET', key, 'version')) + 1
    redis.call('DEL', key, ARGV[6] .. member)
    emit_event(KEYS[6], 'session.deleted', ARGV[3] .. '_' .. n, ARGV[1], member, version, now, ARGV[4], ARGV[5],
      snapshot, {})
  end
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'ok', #sessions}
