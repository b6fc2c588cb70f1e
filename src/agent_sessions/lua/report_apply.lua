-- report_apply.lua: apply one session event to its agent's report, exactly once, in version order.
--
-- Every event of a session has its own version (1 = created, +1 per change, deleted = last + 1), so
-- (session, version) identifies an event as uniquely as its event_id; dedupe by version needs no
-- per-event keys. Counters (updates_total) count every event once; the session's contribution to
-- sessions_total / sessions_enabled / by_metadata follows the newest version seen, so an older event
-- arriving late changes no state. Dedupe and counter change happen in this one atomic step.
--
-- Key layout:
--   as:report:<agent>                         hash  sessions_total, sessions_enabled, updates_total,
--                                                   escalations_total, m:<dimension>:<value> counts
--   as:report:state:<agent>:<session>:<incarnation>  hash  c (versions 1..c all applied), sv (version of
--                                                   the state counted), live, en, m:<dimension> values,
--                                                   dv (the deleted version)
--   as:report:ooo:<agent>:<session>:<incarnation>    set   versions above c applied out of order
-- (<incarnation>, the creation time in ms, tells apart a session deleted and created again.)
--
-- KEYS[1] report hash    KEYS[2] session state    KEYS[3] out-of-order versions
-- ARGV[1] event type     ARGV[2] version          ARGV[3] enabled ("1"/"0")
-- ARGV[4] seconds to keep a deleted session's state once all its events are applied
-- ARGV[5..] dimension, value pairs of the session's metadata ("" = no value)
--
-- Returns "applied" | "duplicate"

local report, state, ooo = KEYS[1], KEYS[2], KEYS[3]
local v = tonumber(ARGV[2])
local c = tonumber(redis.call('HGET', state, 'c') or '0')
if v <= c or redis.call('SISMEMBER', ooo, v) == 1 then return 'duplicate' end

if v == c + 1 then
  c = v
  while redis.call('SREM', ooo, c + 1) == 1 do c = c + 1 end
  redis.call('HSET', state, 'c', c)
else
  redis.call('SADD', ooo, v)
end
if ARGV[1] == 'session.updated' then redis.call('HINCRBY', report, 'updates_total', 1) end

local function add(field, by)
  if redis.call('HINCRBY', report, field, by) <= 0 and string.sub(field, 1, 2) == 'm:' then
    redis.call('HDEL', report, field)
  end
end

if v > tonumber(redis.call('HGET', state, 'sv') or '0') then
  if redis.call('HGET', state, 'live') == '1' then
    add('sessions_total', -1)
    if redis.call('HGET', state, 'en') == '1' then add('sessions_enabled', -1) end
    local old = redis.call('HGETALL', state)
    for i = 1, #old, 2 do
      if string.sub(old[i], 1, 2) == 'm:' then
        add(old[i] .. ':' .. old[i + 1], -1)
        redis.call('HDEL', state, old[i])
      end
    end
  end
  if ARGV[1] == 'session.deleted' then
    redis.call('HSET', state, 'sv', v, 'live', '0', 'dv', v)
  else
    add('sessions_total', 1)
    if ARGV[3] == '1' then add('sessions_enabled', 1) end
    for i = 5, #ARGV, 2 do
      if ARGV[i + 1] ~= '' then
        add('m:' .. ARGV[i] .. ':' .. ARGV[i + 1], 1)
        redis.call('HSET', state, 'm:' .. ARGV[i], ARGV[i + 1])
      end
    end
    redis.call('HSET', state, 'sv', v, 'live', '1', 'en', ARGV[3])
  end
end

-- A deleted session whose every event is in: keep its state a while for stragglers, then forget it.
local dv = tonumber(redis.call('HGET', state, 'dv') or '0')
if dv > 0 and c >= dv then
  redis.call('EXPIRE', state, tonumber(ARGV[4]))
  redis.call('DEL', ooo)
end
return 'applied'
