-- prelude: _clock _delivery
-- delivery_enqueue.lua: queue one message for one endpoint, at once, once; or, with force, queue it
-- again (a redelivery or a recovery), with a fresh retry schedule (its attempts are kept, and counted on).
--
-- Key layout: see _delivery.lua; KEYS[9] is the endpoint's record (as:whe:{<endpoint>}), which must
-- exist unless check_endpoint is "0" (the endpoint the settings configure has none); KEYS[10] the
-- endpoint's attempts (as:wht:{<endpoint>}).
--
-- Bounds: at most backlog_max rows not yet delivered (pending, failed, dead): past it a new message is
-- refused ("full"; the event log still has the event, and a recovery can send it later). At most
-- log_max rows in all: the oldest delivered rows are dropped to make room.
--
-- Returns "queued" | "exists" (already queued or sent, without force) | "full" | "no_endpoint"
--
-- KEYS: rows, bodies, queue, log, pending, delivered, failed, dead, endpoint, attempts
-- ARGV: id, type, body, backlog_max, log_max, check_endpoint, force

local rows, bodies, queue, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local endpoint, attempts = KEYS[9], KEYS[10]
local id, kind, body = ARGV[1], ARGV[2], ARGV[3]
local backlog_max, log_max = tonumber(ARGV[4]), tonumber(ARGV[5])
local check_endpoint, force = ARGV[6], ARGV[7]

if check_endpoint == '1' and redis.call('EXISTS', endpoint) == 0 then return 'no_endpoint' end
local stored = redis.call('HGET', rows, id)
if stored and force ~= '1' then return 'exists' end
local row = stored and cjson.decode(stored)
local undelivered = redis.call('ZCARD', status_set('pending')) + redis.call('ZCARD', status_set('failed'))
  + redis.call('ZCARD', status_set('dead'))
if undelivered >= backlog_max and not (row and row.status ~= 'delivered') then return 'full' end

local now = now_ms()
if not row then
  while redis.call('ZCARD', log) >= log_max do
    local oldest = redis.call('ZRANGE', status_set('delivered'), 0, 0)[1]
    if not oldest then break end
    redis.call('ZREM', status_set('delivered'), oldest)
    redis.call('ZREM', log, oldest)
    redis.call('HDEL', rows, oldest)
    redis.call('HDEL', attempts, oldest)
  end
  row = {type = kind, seq = redis.call('HINCRBY', rows, '#seq', 1), created_at = now, attempts = 0}
  redis.call('ZADD', log, row.seq, id)
end
row.tries = 0
row.last_status_code = cjson.null
row.last_error = cjson.null
row.next_attempt_at = now
row.delivered_at = cjson.null
set_status(row, id, 'pending')
put_row(rows, id, row)
redis.call('HSET', bodies, id, body)
redis.call('ZADD', queue, now, id)
return 'queued'
