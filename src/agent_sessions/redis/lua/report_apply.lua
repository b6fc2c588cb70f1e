-- report_apply.lua: apply one session event to its agent's report, exactly once, in version order.
--
-- Every event of a session has its own version (1 = created, +1 per change, deleted = last + 1), so
-- (session, version) identifies an event as uniquely as its event_id; dedupe by version needs no
-- per-event keys. Counters (updates_total) count every event once; the session's contribution to
-- sessions_total / sessions_enabled / by_metadata follows the newest version seen, so an older event
-- arriving late changes no state. Dedupe and counter change happen in this one atomic step.
--
-- Values (the rule the README states): a session counts under a dimension when its metadata value
-- there is a string (cut to REPORT_VALUE_MAX_CHARS by the caller). A dimension keeps a bucket for each
-- of the first `max_values` distinct values it ever counts; a bucket is never given up, even at zero,
-- so a value is either always counted in its bucket or always in the dimension's `o:` (other) count.
-- That keeps the report exactly equal to a recount, and bounds the hash whatever values clients send.
--
-- Key layout:
--   as:report:{t}:<agent>                     hash  sessions_total, sessions_enabled, updates_total,
--                                                   escalations_total, m:<dimension>:<value> counts,
--                                                   n:<dimension> (buckets), o:<dimension> (other count)
--   as:report:state:{t}:<agent>:<session>:<incarnation>  hash  c (versions 1..c all applied), sv (version of
--                                                   the state counted), live, en, m:<dimension> value
--                                                   counted in its bucket, o:<dimension> "1" when counted
--                                                   in other, dv (the deleted version)
--   as:report:ooo:{t}:<agent>:<session>:<incarnation>    set   versions above c applied out of order
-- (<incarnation>, the creation time in ms, tells apart a session deleted and created again; {t}: the
-- agent's partition tag, see keys.py.)
--
-- KEYS: report, state, out_of_order
-- ARGV: type, version, enabled, deleted_ttl, max_values, dimension_values...

local report, state, ooo = KEYS[1], KEYS[2], KEYS[3]   -- KEYS[1] report hash, [2] session state, [3] out-of-order versions
local kind = ARGV[1]                      -- event type
local v = tonumber(ARGV[2])               -- event version
local enabled = ARGV[3]                   -- "1" / "0"
local deleted_ttl = tonumber(ARGV[4])     -- seconds to keep a deleted session's state once all its events are in
local max_values = tonumber(ARGV[5])      -- buckets per dimension
local first_dimension = 6                 -- ARGV[6..]: dimension, value pairs; value "" (not counted) or "=" .. string
-- Returns "applied" | "duplicate"

local c = tonumber(redis.call('HGET', state, 'c') or '0')
if v <= c or redis.call('SISMEMBER', ooo, v) == 1 then return 'duplicate' end

if v == c + 1 then
  c = v
  while redis.call('SREM', ooo, c + 1) == 1 do c = c + 1 end
  redis.call('HSET', state, 'c', c)
else
  redis.call('SADD', ooo, v)
end
if kind == 'session.updated' then redis.call('HINCRBY', report, 'updates_total', 1) end

local function count_value(dimension, value)
  local field = 'm:' .. dimension .. ':' .. value
  if redis.call('HEXISTS', report, field) == 0 then
    if tonumber(redis.call('HGET', report, 'n:' .. dimension) or '0') >= max_values then
      redis.call('HINCRBY', report, 'o:' .. dimension, 1)
      redis.call('HSET', state, 'o:' .. dimension, '1')
      return
    end
    redis.call('HINCRBY', report, 'n:' .. dimension, 1)
  end
  redis.call('HINCRBY', report, field, 1)
  redis.call('HSET', state, 'm:' .. dimension, value)
end

if v > tonumber(redis.call('HGET', state, 'sv') or '0') then
  if redis.call('HGET', state, 'live') == '1' then
    redis.call('HINCRBY', report, 'sessions_total', -1)
    if redis.call('HGET', state, 'en') == '1' then redis.call('HINCRBY', report, 'sessions_enabled', -1) end
    local old = redis.call('HGETALL', state)
    for i = 1, #old, 2 do
      local prefix = string.sub(old[i], 1, 2)
      if prefix == 'm:' then
        redis.call('HINCRBY', report, old[i] .. ':' .. old[i + 1], -1)
        redis.call('HDEL', state, old[i])
      elseif prefix == 'o:' then
        redis.call('HINCRBY', report, old[i], -1)
        redis.call('HDEL', state, old[i])
      end
    end
  end
  if kind == 'session.deleted' or kind == 'session.expired' then
    redis.call('HSET', state, 'sv', v, 'live', '0', 'dv', v)
  else
    redis.call('HINCRBY', report, 'sessions_total', 1)
    if enabled == '1' then redis.call('HINCRBY', report, 'sessions_enabled', 1) end
    for i = first_dimension, #ARGV, 2 do
      if ARGV[i + 1] ~= '' then count_value(ARGV[i], string.sub(ARGV[i + 1], 2)) end
    end
    redis.call('HSET', state, 'sv', v, 'live', '1', 'en', enabled)
  end
end

-- A deleted session whose every event is in: keep its state a while for stragglers, then forget it.
local dv = tonumber(redis.call('HGET', state, 'dv') or '0')
if dv > 0 and c >= dv then
  redis.call('EXPIRE', state, deleted_ttl)
  redis.call('DEL', ooo)
end
return 'applied'
