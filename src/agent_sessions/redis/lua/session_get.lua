-- prelude: _clock
-- session_get.lua: one session for GET, read with its agent's existence and Redis time in one step
-- (the agent's slot; a pipeline's TIME would go to any node of a Redis Cluster), so the caller can
-- answer 404 for a session past its time-to-idle before the sweep removes it (read only).
--
-- Key layout: see session_create.lua.
--
-- Returns {"agent_not_found"} | {"ok", now (ms), field, value, ...} (no fields: no such session)
--
-- KEYS: agent, session
-- ARGV: (none)

local agent_hash, session_hash = KEYS[1], KEYS[2]

if redis.call('EXISTS', agent_hash) == 0 then return {'agent_not_found'} end
local reply = redis.call('HGETALL', session_hash)
table.insert(reply, 1, now_ms())
table.insert(reply, 1, 'ok')
return reply
