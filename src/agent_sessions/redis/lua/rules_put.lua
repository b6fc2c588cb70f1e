-- rules_put.lua: store an agent's escalation rules if the agent exists (the agent's slot), so the write
-- is one script the caller's WAIT can follow (REDIS_MIN_REPLICA_ACKS), as every other write is.
--
-- Returns 1 (stored) | 0 (no such agent: nothing is written).
--
-- KEYS: agent, rules
-- ARGV: rules

local agent_hash, rules = KEYS[1], KEYS[2]

if redis.call('EXISTS', agent_hash) == 0 then return 0 end
redis.call('SET', rules, ARGV[1])
return 1
