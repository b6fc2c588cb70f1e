-- prelude: _clock
-- escalation_record.lua: record an escalation once per event, count it in the agent's report and put
-- it in the partition's outbox as a session.escalated event (for the event log and the feed), in the
-- same atomic step (a redelivered event finds the record and changes nothing).
--
-- Key layout:
--   as:escalation:{t}:<event_id> hash  agent_key, session_key, rules (the names of the rules that fired,
--                                      comma-separated), body (the webhook body, fixed at first record so
--                                      every endpoint and every retry sends the same bytes), created_at;
--                                      expires after ARGV[6] ms (the event log's retention, at least a
--                                      day: the record is also what makes a redelivered event a no-op)
--   as:report:{t}:<agent>        hash  escalations_total (see report_apply.lua)
--   as:outbox:{t}                stream the relay appends the entry to the event log (see _change.lua):
--                                      type session.escalated, event_id (the escalation's, esc_…),
--                                      agent_key, session_key, version, occurred_at (when recorded),
--                                      actor, request_id (the update's), body (the webhook body)
--
-- Returns {"new" | "exists", body}
--
-- KEYS: escalation, report, outbox
-- ARGV: event_id, agent, session, rules, body, keep_ms, escalation_id, version, actor, request_id

local escalation, report, outbox = KEYS[1], KEYS[2], KEYS[3]
local agent, session, rules, body = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local keep_ms = ARGV[6]
local escalation_id, version, actor, request_id = ARGV[7], ARGV[8], ARGV[9], ARGV[10]

local existing = redis.call('HGET', escalation, 'body')
if existing then return {'exists', existing} end

local now = now_ms()
redis.call('HSET', escalation, 'agent_key', agent, 'session_key', session, 'rules', rules,
  'body', body, 'created_at', now)
redis.call('PEXPIRE', escalation, keep_ms)
redis.call('HINCRBY', report, 'escalations_total', 1)
redis.call('XADD', outbox, '*', 'type', 'session.escalated', 'event_id', escalation_id, 'agent_key', agent,
  'session_key', session, 'version', version, 'occurred_at', now, 'actor', actor, 'request_id', request_id,
  'body', body)
return {'new', body}
