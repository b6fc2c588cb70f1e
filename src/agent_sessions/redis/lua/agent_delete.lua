-- agent_delete.lua: delete an agent at once; its sessions are removed afterwards, in bounded steps,
-- by agent_purge.lua (run by the workers), each with its session.deleted event.
--
-- From this step on the agent is gone for every reader and writer: every session script checks the
-- agent first, so the sessions left to purge are invisible (404) and unchangeable. The agent's
-- session index moves to its purge set, and the agent is listed in the purges hash with the origin
-- of the deletion, which the session.deleted events carry. A key cannot be reused for a new agent
-- until its purge is over (agent_create.lua checks the purge set).
--
-- Key layout: see agent_create.lua and session_create.lua, and
--   as:purge:{t}:<agent>   zset   session keys still to delete (score 0)
--   as:purges:{t}          hash   agent -> "<actor> <request id>" for each purge in progress
--
-- Returns {"agent_not_found"} | {"ok", sessions to purge}
--
-- KEYS: agent, agents, all_sessions, enabled_index, disabled_index, purge, purges, created_index,
--       updated_index, rules
-- ARGV: agent, actor, request_id

local agent_hash, agents_index = KEYS[1], KEYS[2]
local all_sessions, enabled_index, disabled_index = KEYS[3], KEYS[4], KEYS[5]
local purge_set, purges = KEYS[6], KEYS[7]
local by_created, by_updated = KEYS[8], KEYS[9]     -- sort indexes (see _index.lua); the purge empties
                                                    -- the dimension and expiry indexes session by session
local rules = KEYS[10]                              -- as:rules:{t}:<agent>, its escalation rules
local agent, actor, request_id = ARGV[1], ARGV[2], ARGV[3]

-- Constant time whatever the number of sessions: the session index is renamed, and the two filter
-- indexes are unlinked (Redis frees them in the background).
if redis.call('EXISTS', agent_hash) == 0 then return {'agent_not_found'} end
redis.call('DEL', agent_hash)
redis.call('UNLINK', enabled_index, disabled_index, by_created, by_updated, rules)
redis.call('ZREM', agents_index, agent)
local pending = redis.call('ZCARD', all_sessions)
if pending > 0 then
  if redis.call('EXISTS', purge_set) == 0 then
    redis.call('RENAME', all_sessions, purge_set)
  else
    -- only if an earlier agent with this key were still being purged, which agent_create.lua prevents
    pending = redis.call('ZUNIONSTORE', purge_set, 2, purge_set, all_sessions)
    redis.call('UNLINK', all_sessions)
  end
  redis.call('HSET', purges, agent, actor .. ' ' .. request_id)
end
return {'ok', pending}
