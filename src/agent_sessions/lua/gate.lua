-- gate.lua: the front door of every authenticated request, in one round trip:
-- throttle failed authentications per client address, look up the API key, take a rate-limit token.
--
-- Token buckets: a hash {tokens, ts} per bucket. Tokens refill continuously at `rate` per second up to
-- `burst`, computed from Redis TIME (never an API server's clock, so every API process shares one
-- bucket correctly). A bucket key expires when it would be full again, so idle buckets cost nothing.
--
-- Key layout:
--   as:apikey:<sha256>      hash  the key record (see auth.py): id, role, agents, rate, burst, revoked_at…
--   as:rl:key:<sha256>      hash  the key's bucket
--   as:rl:addr:<address>    hash  failed-authentication bucket of one client address
--
-- KEYS[1] key record    KEYS[2] key bucket    KEYS[3] address bucket
-- ARGV[1] default rate (tokens/s)   ARGV[2] default burst   (used when the key has none of its own)
-- ARGV[3] failure rate (tokens/s)   ARGV[4] failure burst
--
-- Returns
--   {"throttled", ms_until_token}   the address has failed too often: the key is not even looked up
--   {"unknown"} | {"revoked"}       a failed authentication, charged to the address bucket
--   {"ok" | "limited", remaining, ms_until_token, rate, burst, field, value, ...}  (the key record)
-- Times are whole milliseconds, rounded up.

local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000

-- Refill the bucket and, when take is true, take one token if there is one.
-- Returns allowed, tokens left, ms until the next whole token (0 when full).
local function bucket(key, rate, burst, take)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = burst
  if state[1] then
    tokens = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate / 1000)
  end
  local allowed = take and tokens >= 1
  if allowed then tokens = tokens - 1 end
  if take then
    if tokens >= burst then
      redis.call('DEL', key)
    else
      redis.call('HSET', key, 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.3f', now))
      redis.call('PEXPIRE', key, math.ceil((burst - tokens) * 1000 / rate))
    end
  end
  local wait = 0
  if tokens < burst then wait = math.ceil((math.floor(tokens) + 1 - tokens) * 1000 / rate) end
  return allowed, tokens, wait
end

local fail_rate, fail_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local _, fail_tokens, fail_wait = bucket(KEYS[3], fail_rate, fail_burst, false)
if fail_tokens < 1 then return {'throttled', fail_wait} end

local record = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #record, 2 do fields[record[i]] = record[i + 1] end
if #record == 0 or (fields['revoked_at'] or '') ~= '' then
  bucket(KEYS[3], fail_rate, fail_burst, true)
  if #record == 0 then return {'unknown'} end
  return {'revoked'}
end

local rate = tonumber(fields['rate'] or '') or tonumber(ARGV[1])
local burst = tonumber(fields['burst'] or '') or tonumber(ARGV[2])
local allowed, tokens, wait = bucket(KEYS[2], rate, burst, true)
local status = 'limited'
if allowed then status = 'ok' end
local reply = {status, math.floor(tokens), wait, tostring(rate), tostring(burst)}
for i = 1, #record do reply[#reply + 1] = record[i] end
return reply
