-- prelude: _clock _change _index
-- agent_purge.lua: one bounded step of a deleted agent's purge (see agent_delete.lua): delete up to
-- `batch` of its remaining sessions with their history, each with its session.deleted event (version
-- = the session's last + 1, as session_delete.lua does). The last step clears the agent from the
-- purges hash.
--
-- Key layout: see agent_delete.lua and session_create.lua. Session hashes and histories are addressed
-- by prefix .. member: the prefixes carry the agent's partition tag, so on a Redis Cluster they are in the
-- slot of the declared keys.
--
-- Returns {sessions deleted by this step, sessions left}
--
-- KEYS: purge, purges, outbox, created_index, updated_index, expiry_index
-- ARGV: agent, batch, session_prefix, history_prefix, event_id_prefix, dimension_prefix

local purge_set, purges = KEYS[1], KEYS[2]
local outbox = KEYS[3]   -- see emit_event in _change.lua
local agent, batch = ARGV[1], tonumber(ARGV[2])
local session_prefix, history_prefix = ARGV[3], ARGV[4]   -- e.g. "as:session:{t}:agt_x:", "as:history:{t}:agt_x:"
local event_id_prefix = ARGV[5]                            -- fresh per step; "_<n>" is appended
local index = index_of(ARGV[6], KEYS[4], KEYS[5], KEYS[6])  -- see _index.lua

local origin = redis.call('HGET', purges, agent) or 'system '
local split = string.find(origin, ' ', 1, true)
local actor, request_id = string.sub(origin, 1, split - 1), string.sub(origin, split + 1)

local now = now_ms()
local members = redis.call('ZPOPMIN', purge_set, batch)
local deleted = 0
for i = 1, #members, 2 do
  local member = members[i]
  local key = session_prefix .. member
  local snapshot = redis.call('HGETALL', key)
  if #snapshot > 0 then
    local version = tonumber(field_of(snapshot, 'version')) + 1
    redis.call('DEL', key, history_prefix .. member, history_prefix .. member .. ':bytes')
    unplace(index, agent, member, field_of(snapshot, 'ix'))
    deleted = deleted + 1
    emit_event(outbox, 'session.deleted', event_id_prefix .. '_' .. deleted, agent, member, version, now, actor,
      request_id, snapshot, {})
  end
end
local left = redis.call('ZCARD', purge_set)
if left == 0 then redis.call('HDEL', purges, agent) end
return {deleted, left}
