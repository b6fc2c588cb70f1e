-- prelude: _clock _delivery
-- delivery_result.lua: record how one attempt went. Delivered: the body is dropped (the row stays in
-- the log). Failed: tried again after an exponential backoff (min_backoff_ms doubled per attempt, at
-- most max_backoff_ms), or, after `tries` attempts, dead (kept until redelivered).
--
-- Key layout: see _delivery.lua; KEYS[9]: the endpoint's attempts, where this one is added (the newest
-- ARGV[9] of each delivery are kept).
--
-- Returns {status, attempts, counted} | {"gone"} (the row no longer exists: its endpoint was deleted);
-- counted: the outcome to add to the workers' counters (as:metrics, another slot: the caller adds it),
-- "delivered", "failed", "dead_lettered" (also a failure) or "" (delivered already: the first counted).
--
-- KEYS: rows, bodies, queue, log, pending, delivered, failed, dead, attempts
-- ARGV: id, outcome, status_code, error, tries, min_backoff_ms, max_backoff_ms, duration_ms,
--       attempts_kept

local rows, bodies, queue = KEYS[1], KEYS[2], KEYS[3]
local id, outcome, status_code, error_text = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tries, min_backoff, max_backoff = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local duration_ms, attempts_kept = tonumber(ARGV[8]), tonumber(ARGV[9])
local attempts = KEYS[9]

local stored = redis.call('HGET', rows, id)
if not stored then return {'gone'} end
local row = cjson.decode(stored)
if row.status == 'delivered' then return {'delivered', row.attempts, ''} end  -- sent twice: first wins

local now = tonumber(now_ms())
local kept = cjson.decode(redis.call('HGET', attempts, id) or '[]')
kept[#kept + 1] = {at = tostring(now), status_code = status_code ~= '' and tonumber(status_code) or cjson.null,
  error = error_text ~= '' and error_text or cjson.null, duration_ms = duration_ms}
while #kept > attempts_kept do table.remove(kept, 1) end
redis.call('HSET', attempts, id, cjson.encode(kept))
row.attempts = row.attempts + 1
row.tries = (row.tries or row.attempts - 1) + 1
row.last_status_code = status_code ~= '' and tonumber(status_code) or cjson.null
row.last_error = error_text ~= '' and error_text or cjson.null
if outcome == 'delivered' then
  set_status(row, id, 'delivered')
  row.delivered_at = tostring(now)
  row.next_attempt_at = cjson.null
  redis.call('ZREM', queue, id)
  redis.call('HDEL', bodies, id)
elseif row.tries >= tries then
  set_status(row, id, 'dead')
  row.next_attempt_at = cjson.null
  redis.call('ZREM', queue, id)
else
  local delay = math.min(max_backoff, min_backoff * 2 ^ (row.tries - 1))
  set_status(row, id, 'failed')
  row.next_attempt_at = string.format('%d', now + delay)
  redis.call('ZADD', queue, now + delay, id)
end
put_row(rows, id, row)
local counted = {delivered = 'delivered', failed = 'failed', dead = 'dead_lettered'}
return {row.status, row.attempts, counted[row.status]}
