-- prelude: _clock
-- escalation_record.lua: record an escalation once per event, and count it in the agent's report in
-- the same atomic step (a redelivered event finds the record and changes nothing).
--
-- Key layout:
--   as:escalation:{t}:<event_id> hash  agent_key, session_key, rules (the names of the rules that fired,
--                                      comma-separated), body (the webhook body, fixed at first record so
--                                      every endpoint and every retry sends the same bytes), created_at;
--                                      expires after ARGV[6] ms (the event log's retention, at least a
--                                      day: the record is also what makes a redelivered event a no-op)
--   as:report:{t}:<agent>        hash  escalations_total (see report_apply.lua)
--
-- ARGV: event id (named by KEYS[1] already), agent, session, rules, body, keep_ms
-- Returns {"new" | "exists", body}

local escalation, report = KEYS[1], KEYS[2]
local agent, session, rules, body = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local keep_ms = ARGV[6]

local existing = redis.call('HGET', escalation, 'body')
if existing then return {'exists', existing} end

redis.call('HSET', escalation, 'agent_key', agent, 'session_key', session, 'rules', rules,
  'body', body, 'created_at', now_ms())
redis.call('PEXPIRE', escalation, keep_ms)
redis.call('HINCRBY', report, 'escalations_total', 1)
return {'new', body}
