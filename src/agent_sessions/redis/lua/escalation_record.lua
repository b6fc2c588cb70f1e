-- prelude: _clock
-- escalation_record.lua: record an escalation once per event, and count it in the agent's report in
-- the same atomic step (a redelivered event finds the record and changes nothing).
--
-- Key layout:
--   as:escalation:<event_id>     hash  agent_key, session_key, rules (the names of the rules that fired,
--                                      comma-separated), body (the webhook body, fixed at first record so
--                                      every endpoint and every retry sends the same bytes), created_at
--   as:escalations:<agent>       zset  event ids, scored by occurred_at (ms)
--   as:report:<agent>            hash  escalations_total (see report_apply.lua)
--
-- Returns {"new" | "exists", body}

local escalation, agent_escalations, report = KEYS[1], KEYS[2], KEYS[3]
local event_id, agent, session, rules, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local occurred_ms = ARGV[6]

local existing = redis.call('HGET', escalation, 'body')
if existing then return {'exists', existing} end

redis.call('HSET', escalation, 'agent_key', agent, 'session_key', session, 'rules', rules,
  'body', body, 'created_at', now_ms())
redis.call('ZADD', agent_escalations, occurred_ms, event_id)
redis.call('HINCRBY', report, 'escalations_total', 1)
return {'new', body}
