-- _remove.lua: prelude of the scripts that remove one session with its event (session_delete.lua,
-- session_expire.lua), after _clock, _change and _index. Their KEYS are laid out as
-- SessionIndexes.removal_keys makes them (agent_sessions/sessions/indexes.py):
--   1 agent hash, 2 session hash, 3-5 the agent's key / enabled / disabled indexes, 6 outbox,
--   7-8 history and its byte count, 9-11 created, updated, expiry.

-- Delete the session (`fields`: its hash, read by the caller) and its history, take it out of every
-- index, and emit `kind` with version last + 1 and the last state, all in the caller's atomic step.
local function remove_session(index, agent, session, fields, kind, event_id, now, actor, request_id)
  local version = tonumber(field_of(fields, 'version')) + 1
  redis.call('DEL', KEYS[2], KEYS[7], KEYS[8])
  redis.call('ZREM', KEYS[3], session)
  redis.call('ZREM', KEYS[4], session)
  redis.call('ZREM', KEYS[5], session)
  unplace(index, agent, session, field_of(fields, 'ix'))
  emit_event(KEYS[6], kind, event_id, agent, session, version, now, actor, request_id, fields, {})
end
