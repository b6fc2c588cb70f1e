-- escalation_record.lua: record an escalation once per event, and count it in the agent's report in
-- the same atomic step (a redelivered event finds the record and changes nothing).
--
-- Key layout:
--   as:escalation:<event_id>     hash  agent_key, session_key, reasons, body (the webhook body, fixed
--                                      at first record so retries send the same bytes), status
--                                      (pending | delivered | dead | unsent), attempts, last_error,
--                                      created_at, delivered_at
--   as:escalations:<agent>       zset  event ids, scored by occurred_at (ms)
--   as:report:<agent>            hash  escalations_total (see report_apply.lua)
--
-- KEYS[1] escalation hash    KEYS[2] agent's escalations    KEYS[3] report hash
-- ARGV[1] event id   ARGV[2] agent key   ARGV[3] session key   ARGV[4] reasons   ARGV[5] body
-- ARGV[6] occurred_at (ms)   ARGV[7] initial status ("pending", or "unsent" without a webhook URL)
--
-- Returns {"new" | "exists", status}

local existing = redis.call('HGET', KEYS[1], 'status')
if existing then return {'exists', existing} end

local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'agent_key', ARGV[2], 'session_key', ARGV[3], 'reasons', ARGV[4],
  'body', ARGV[5], 'status', ARGV[7], 'attempts', 0, 'created_at', t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'escalations_total', 1)
return {'new', ARGV[7]}
